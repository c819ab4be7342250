"""The daemon as a real process, killed with SIGKILL in the middle of a session: started
again, it resumes the session (captures included) and the enrolment goes through."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from dr_contracts.identifiers import parse_request_number
from dr_contracts.rejections import Rejection
from edge.biometrics.types import FingerPosition as P
from edge.console.client import ConsoleClient
from tests.station.conftest import AGENT, FINGERS, PASSWORD, WAIT_S, StationWorld


def write_config(world: StationWorld) -> Path:
    c = world.config
    path = world.directory / "dr-edge.toml"
    path.write_text(
        "\n".join(
            [
                "[device]",
                f'id = "{c.device.id}"',
                f'state_dir = "{c.device.state_dir}"',
                f'bundle_dir = "{c.device.bundle_dir}"',
                "[sensor]",
                f'port = "{c.sensor.port}"',
                "[scanner]",
                f'port = "{c.scanner.port}"',
                "[console]",
                "port = 0",
                "[link]",
                f'host = "{c.link.host}"',
                f"port = {c.link.port}",
                "reconnect_max = 0.5",
                "ack_timeout = 3.0",
                "",
            ]
        )
    )
    return path


async def start(config: Path, notify_dir: Path) -> tuple[asyncio.subprocess.Process, ConsoleClient]:
    """Start ``dr-edge run``; wait for its sd_notify READY=1 (with the console URL) and the
    status it sends once the link to central is up."""
    path = notify_dir / f"notify-{os.urandom(4).hex()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge.cli",
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "NOTIFY_SOCKET": str(path)},
        )
        loop = asyncio.get_running_loop()
        url = ""
        async with asyncio.timeout(WAIT_S):
            while True:
                fields = dict(
                    line.split("=", 1)
                    for line in (await loop.sock_recv(sock, 4096)).decode().splitlines()
                )
                if fields.get("READY") == "1":
                    url = fields["STATUS"].removeprefix("console ")
                if fields.get("STATUS", "").endswith("; link online"):
                    break
    finally:
        sock.close()
    client = ConsoleClient(url)
    await asyncio.to_thread(client.sign_in, AGENT, PASSWORD)
    return proc, client


async def test_sigkill_mid_session_then_resume(world: StationWorld) -> None:
    pre = world.prerequest(surname="Crash")
    config = write_config(world)
    proc, client = await start(config, world.directory)
    try:
        sid = (await asyncio.to_thread(client.start))["id"]
        await asyncio.to_thread(client.recall, sid, number=pre.number)
        await asyncio.to_thread(client.documents, sid, checked=["photo", "proof_of_address"])
        await world.place(FINGERS[P.RIGHT_INDEX])
        before = await asyncio.to_thread(client.capture, sid)
        assert before["fingers"]["current"]["attempts"] == 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    proc, client = await start(config, world.directory)
    try:
        view = await asyncio.to_thread(client.session, sid)
        assert view["step"] == "fingers"
        assert view["fingers"]["current"] == before["fingers"]["current"]
        for _ in range(20):
            if view["step"] != "fingers":
                break
            await world.place(FINGERS[P(view["fingers"]["current"]["position"])])
            view = await asyncio.to_thread(client.capture, sid)
        view = await asyncio.to_thread(client.confirm, sid)
        number = parse_request_number(view["request_number"])
        assert world.central_link is not None
        link = world.central_link
        async with asyncio.timeout(WAIT_S):
            while isinstance(world.service.request_status(number), Rejection):
                await link.wait_processed(link.processed + 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_S):
            assert await proc.wait() == 0
