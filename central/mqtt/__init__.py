"""Central's MQTT side: consumes device topics, answers RPCs, acknowledges enrolments.

``dr-central serve`` calls :func:`serve` when the configuration has an ``[mqtt]`` table::

    [mqtt]
    host = "127.0.0.1"          # the broker
    port = 8883
    ca_file = "ca/ca.crt"        # default <ca_dir>/ca.crt
    cert_file = "ca/central.crt" # default: issued by central's CA on first start (CN "central")
    key_file = "ca/central.key"
    instance = "central-1"       # MQTT client id; unique per central process
    workers = 8                  # messages handled at once
    run_broker = false           # true: start mosquitto here (embedded/demo), on `port`
    websockets_port = 9001       # with run_broker: the operator dashboard's listener

Relative paths are taken from the configuration file's directory. See docs/mqtt.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from central.mqtt.server import CentralLink
from central.mqtt.settings import CentralLinkSettings

if TYPE_CHECKING:
    from central.config import CentralConfig
    from central.service import CentralService

__all__ = ["CentralLink", "CentralLinkSettings", "link_settings", "serve"]

logger = logging.getLogger(__name__)

_KNOWN = frozenset(
    {
        "host",
        "port",
        "ca_file",
        "cert_file",
        "key_file",
        "instance",
        "workers",
        "share_group",
        "replay_window_s",
        "fleet_interval_s",
        "run_broker",
        "websockets_port",
    }
)
REVOCATION_POLL_S = 5.0


def _error(config: CentralConfig, key: str, message: str) -> Exception:
    from central.config import ConfigError

    return ConfigError(config.source, f"mqtt.{key}", message)


def _path(config: CentralConfig, value: object, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise _error(config, key, "expected a path")
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    source = Path(config.source)
    return (source.resolve().parent if source.is_file() else Path.cwd()) / path


def link_settings(config: CentralConfig) -> CentralLinkSettings:
    """Validate ``[mqtt]``; issue central's client certificate from its CA if missing."""
    from central.pki import CertificateAuthority

    raw: Mapping[str, Any] = config.mqtt
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise _error(config, unknown[0], f"unknown key (known: {', '.join(sorted(_KNOWN))})")
    host = raw.get("host", "127.0.0.1")
    port = raw.get("port", 8883)
    if not isinstance(host, str) or not host:
        raise _error(config, "host", "expected a host name")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise _error(config, "port", "a TCP port is 1..65535")
    ca_file = _path(config, raw["ca_file"], "ca_file") if "ca_file" in raw else None
    if "cert_file" in raw or "key_file" in raw:
        if not ("cert_file" in raw and "key_file" in raw):
            raise _error(config, "cert_file", "cert_file and key_file go together")
        cert_file = _path(config, raw["cert_file"], "cert_file")
        key_file = _path(config, raw["key_file"], "key_file")
    else:
        ca = CertificateAuthority.load_or_create(config.ca_dir)
        cert_file, key_file = config.ca_dir / "central.crt", config.ca_dir / "central.key"
        if not cert_file.exists():
            ca.issue_client("central").write(config.ca_dir, name="central")
    options: dict[str, Any] = {}
    for key, kind in (
        ("instance", str),
        ("share_group", str),
        ("workers", int),
        ("replay_window_s", float),
        ("fleet_interval_s", float),
    ):
        if key in raw:
            value = raw[key]
            if kind is float and isinstance(value, int):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise _error(config, key, f"expected {kind.__name__}")
            options[key] = value
    try:
        return CentralLinkSettings(
            host=host,
            port=port,
            ca_file=ca_file or config.ca_dir / "ca.crt",
            cert_file=cert_file,
            key_file=key_file,
            **options,
        )
    except ValueError as exc:
        raise _error(config, "-", str(exc)) from None


async def serve(service: CentralService, config: CentralConfig) -> None:
    """Run central's MQTT side (and, with ``run_broker``, mosquitto) until cancelled."""
    settings = link_settings(config)
    link = CentralLink(settings, backend=service, signing_key=service.keys.signing)
    service.add_revocation_listener(link.forget_device)
    if not config.mqtt.get("run_broker", False):
        await link.run()
        return
    from central.broker import BrokerIdentities, MosquittoBroker
    from central.pki import CertificateAuthority

    ca = CertificateAuthority.load_or_create(config.ca_dir)
    revoked = {d.device_id for d in service.devices() if d.state != "active"}
    ws_port = config.mqtt.get("websockets_port")
    broker = MosquittoBroker(
        config.data_dir / "broker",
        ca=ca,
        identities=BrokerIdentities(revoked=frozenset(revoked)),
        host=settings.host,
        port=settings.port,
        websockets_port=ws_port if isinstance(ws_port, int) else None,
    )
    async with broker, asyncio.TaskGroup() as tg:
        tg.create_task(link.run())
        tg.create_task(_follow_revocations(service, broker, ca, revoked))


async def _follow_revocations(service: Any, broker: Any, ca: Any, revoked: set[str]) -> None:
    """Revocations made anywhere (CLI, API): CRL + ACL regenerated, broker restarted."""
    while True:
        await asyncio.sleep(REVOCATION_POLL_S)  # polling the registry, by design
        devices = await asyncio.to_thread(service.devices)
        now = {d.device_id for d in devices if d.state != "active"}
        if now != revoked:
            for device_id in now - revoked:
                await asyncio.to_thread(ca.revoke, device_id)
            revoked = now
            broker.set_revoked(now)
            await asyncio.to_thread(broker.restart)
            logger.warning("broker restarted with %d revoked device(s)", len(now))
