"""central.mqtt.serve, as `dr-central serve` runs it: configuration, embedded broker, a device."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from central.broker import free_port
from central.config import ConfigError, load_config
from central.keyring import CentralKeyring
from central.mqtt import link_settings, serve
from central.pki import CertificateAuthority
from central.service import CentralService
from dr_contracts.keys import SigningKey
from edge.link.client import EdgeLink
from edge.link.errors import RpcTimeoutError
from edge.link.settings import LinkSettings
from tests.fixtures.central import sample_form
from tests.link.conftest import FAST_RECONNECT


def _config(tmp_path: Path, mqtt: str) -> Path:
    path = tmp_path / "central.toml"
    path.write_text(f'[central]\ndata_dir = "data"\n\n[mqtt]\n{mqtt}\n', encoding="utf-8")
    return path


def test_settings_issue_centrals_certificate_on_first_use(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, 'host = "127.0.0.1"\nport = 18883\nworkers = 2'))
    settings = link_settings(config)
    assert settings.port == 18883
    assert settings.workers == 2
    assert settings.cert_file.is_file()
    assert settings.ca_file == config.ca_dir / "ca.crt"


@pytest.mark.parametrize(
    ("mqtt", "key"),
    [
        ("port = 70000", "mqtt.port"),
        ('port = "x"', "mqtt.port"),
        ("colour = 1", "mqtt.colour"),
        ('cert_file = "a.crt"', "mqtt.cert_file"),
        ('workers = "many"', "mqtt.workers"),
    ],
)
def test_bad_settings_name_the_key_and_file(tmp_path: Path, mqtt: str, key: str) -> None:
    path = _config(tmp_path, mqtt)
    with pytest.raises(ConfigError) as info:
        link_settings(load_config(path))
    assert info.value.key == key
    assert info.value.source == str(path)


async def test_serve_with_embedded_broker_answers_a_device(tmp_path: Path) -> None:
    port = free_port()
    config = load_config(_config(tmp_path, f"port = {port}\nrun_broker = true"))
    CentralKeyring.create(config.key_dir)
    service = CentralService.open(database=config.database, key_dir=config.key_dir)
    device_key = SigningKey.generate()
    service.register_device("dr-91228-01", commune_name="Évry", signing_key=device_key.public_key)
    pre = service.create_prerequest(sample_form())
    ca = CertificateAuthority.load_or_create(config.ca_dir)
    files = ca.issue_client("dr-91228-01").write(tmp_path / "device", name="device")
    link = EdgeLink(
        LinkSettings(
            device_id="dr-91228-01",
            host="127.0.0.1",
            port=port,
            ca_file=ca.cert_path,
            cert_file=files.cert,
            key_file=files.key,
            reconnect=FAST_RECONNECT,
            rpc_timeout_s=2.0,
        ),
        signing_key=device_key,
        central_key=service.signing_public_key,
    )
    try:
        async with asyncio.TaskGroup() as tg:
            server = tg.create_task(serve(service, config))
            client = tg.create_task(link.run())
            async with asyncio.timeout(60):
                await link.wait_connected()
                for _ in range(10):  # the device may be up before central has subscribed
                    try:
                        found = await link.lookup_prerequest(pre.number)
                        break
                    except RpcTimeoutError:
                        continue
            assert found["status"] == "validated"
            client.cancel()
            server.cancel()
    finally:
        service.close()
