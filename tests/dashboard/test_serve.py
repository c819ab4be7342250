"""``dr-central serve`` with ``[mqtt]`` (embedded broker) and ``[dashboard]``: the dashboard is
mounted, fed live, and a provisioned device killed mid-test turns offline on the stream."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, ClientSession, CookieJar

from central.dashboard.accounts import OperatorAccounts
from tests.fixtures.dashboard import WAIT_S, spawn_device_proc

DEVICE = "dr-91228-01"
PASSWORD = "un mot de passe assez long"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cli(data: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "central.cli", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def central_serve(tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    """A running ``dr-central serve`` (its own process group: mosquitto goes with it)."""
    data = tmp_path / "central"
    _cli(data, "init")
    _cli(
        data, "device", "provision", DEVICE, "--commune", "Évry", "--out", str(tmp_path / "bundle")
    )
    OperatorAccounts(data / "operators.json").set_password("operateur", PASSWORD)
    mqtt_port, http_port = _free_port(), _free_port()
    config = tmp_path / "central.toml"
    config.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nrun_broker = true\n'
        "[dashboard]\nsecure_cookie = false\nrefresh_s = 1\nmin_push_s = 0.1\n",
        encoding="utf-8",
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "central.cli",
            "--config",
            str(config),
            "--data-dir",
            str(data),
            "serve",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "DR_CENTRAL_HTTP_PORT": str(http_port)},
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the socket listens
        assert line.startswith("central: http://"), line
        yield f"http://127.0.0.1:{http_port}/tableau", tmp_path / "bundle", mqtt_port
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


async def _events(
    response: ClientResponse, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Read snapshots from the SSE stream until one satisfies ``until``."""
    async with asyncio.timeout(WAIT_S):
        data = ""
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif not line and data:
                snapshot: dict[str, Any] = json.loads(data)
                data = ""
                if until(snapshot):
                    return snapshot


def _status(snapshot: dict[str, Any]) -> str | None:
    return next((d["status"] for d in snapshot["devices"] if d["id"] == DEVICE), None)


async def test_serve_mounts_the_live_dashboard(
    central_serve: tuple[str, Path, int], tmp_path: Path
) -> None:
    url, bundle, mqtt_port = central_serve
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        form = await (await http.get(f"{url}/connexion")).text()
        match = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
        assert match is not None
        signed_in = await http.post(
            f"{url}/connexion",
            data={"identifiant": "operateur", "mot_de_passe": PASSWORD, "csrf": match[1]},
        )
        assert signed_in.status == 200
        assert str(signed_in.url).endswith("/tableau/")
        stream = await http.get(f"{url}/flux")
        # The registry lists the provisioned device; the feed is connected to the broker.
        snapshot = await _events(stream, lambda s: s["feed_connected"] and _status(s) is not None)
        assert _status(snapshot) == "unknown"
        config = {
            "device_id": DEVICE,
            "host": "127.0.0.1",
            "port": mqtt_port,
            "ca_file": str(bundle / "tls" / "ca.crt"),
            "cert_file": str(bundle / "tls" / "client.crt"),
            "key_file": str(bundle / "tls" / "client.key"),
            "signing_key": str(bundle / "device-signing.key"),
        }
        device = await spawn_device_proc(config, tmp_path / "device.json")
        try:
            await _events(stream, lambda s: _status(s) == "online")
        finally:
            device.kill()  # SIGKILL: no DISCONNECT, the last will fires
            await device.wait()
        await _events(stream, lambda s: _status(s) == "offline")
        stream.close()
