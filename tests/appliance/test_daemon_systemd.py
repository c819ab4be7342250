"""The real ``dr-edge run`` process under a fake systemd: a notify socket, a watchdog period.

Against the real parts (mosquitto with TLS, central's service and MQTT side, the sensor and
scanner simulators on ptys): READY=1 comes once the sensor, the outbox and the link are up;
watchdog pings arrive from the event loop; a hung loop stops them; SIGTERM sends STOPPING=1.
After a whole enrolment, the daemon's log output (and central's, through the production log
handler) holds no personal data, no biometric data and no secret.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dr_contracts.identifiers import parse_request_number
from dr_contracts.logsetup import configure_logging
from dr_contracts.rejections import Rejection
from edge.console.client import ConsoleClient
from tests.station.conftest import AGENT, PASSWORD, WAIT_S, StationWorld

WATCHDOG_USEC = 400_000  # pings every 0.2 s
QUIET_S = 2.0  # ten ping periods without a ping: the watchdog is starved

# The daemon's own entry point, plus one thing: SIGUSR1 runs a blocking call on the main
# thread, i.e. on the event loop, which is what a hung loop looks like. It announces itself
# first, so the test knows from when on no ping may arrive.
WRAPPER = textwrap.dedent(
    """
    import os, signal, socket, sys, time

    def hang(signum, frame):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(b"STATUS=hung", os.environ["NOTIFY_SOCKET"])
        time.sleep(3600)

    signal.signal(signal.SIGUSR1, hang)
    from edge.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def write_config(world: StationWorld) -> Path:
    c = world.config
    path = world.directory / "dr-edge.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [device]
            id = "{c.device.id}"
            mairie = "{c.device.mairie}"
            state_dir = "{c.device.state_dir}"
            bundle_dir = "{c.device.bundle_dir}"
            [sensor]
            port = "{c.sensor.port}"
            capture_timeout = 10.0
            [scanner]
            port = "{c.scanner.port}"
            [console]
            port = 0
            [link]
            host = "{c.link.host}"
            port = {c.link.port}
            reconnect_max = 0.5
            ack_timeout = 3.0
            [policy]
            lease_count = 5
            lease_low_water = 2
            """
        )
    )
    return path


class Notifications:
    """Reads the notify socket all the time, as systemd does: a datagram socket's queue is
    short (10 on Linux), and a daemon whose notifications are not read blocks in sendto."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            self._queue.put_nowait(dict(line.split("=", 1) for line in data.decode().splitlines()))

    async def next(self, *, within: float = WAIT_S) -> dict[str, str]:
        async with asyncio.timeout(within):
            return await self._queue.get()

    async def until(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        """Every message up to and including the first with ``key`` (= ``value``)."""
        seen: list[dict[str, str]] = []
        while True:
            fields = await self.next()
            seen.append(fields)
            if key in fields and (value is None or fields[key] == value):
                return seen


class DaemonLog:
    """The daemon's stderr, line by line, read as it comes (a pipe, never left full)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self._changed = asyncio.Condition()

    async def read_forever(self) -> None:
        while line := await self.stream.readline():
            async with self._changed:
                self.lines.append(line.decode("utf-8", errors="replace"))
                self._changed.notify_all()

    async def wait_for(self, text: str) -> None:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: any(text in line for line in self.lines))

    @property
    def text(self) -> str:
        return "".join(self.lines)


@dataclass
class DaemonProcess:
    proc: asyncio.subprocess.Process
    notify: Notifications
    log: DaemonLog


@pytest.fixture
async def daemon(world: StationWorld) -> AsyncIterator[DaemonProcess]:
    path = world.directory / f"notify-{os.urandom(4).hex()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(path),
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
    }
    env.pop("WATCHDOG_PID", None)
    env.pop("JOURNAL_STREAM", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRAPPER,
        "run",
        "--config",
        str(write_config(world)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    notify = Notifications(sock)
    log = DaemonLog(proc.stderr)
    readers = [asyncio.create_task(notify.read_forever()), asyncio.create_task(log.read_forever())]
    try:
        yield DaemonProcess(proc, notify, log)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for reader in readers:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        sock.close()


async def test_ready_after_sensor_queue_link_then_pings_then_stopping(
    world: StationWorld, daemon: DaemonProcess
) -> None:
    before = await daemon.notify.until("READY", "1")
    assert all("WATCHDOG" in m or "STATUS" in m for m in before[:-1])
    url = before[-1]["STATUS"].removeprefix("console ")
    # READY waited for the link: the very next status says so, with no wait in between.
    after = await daemon.notify.until("STATUS")
    assert after[-1]["STATUS"] == f"console {url}; link online"
    client = ConsoleClient(url)
    await asyncio.to_thread(client.sign_in, AGENT, PASSWORD)
    status = await asyncio.to_thread(client.status)
    assert status["sensor"] == "ready"
    assert status["link"]["online"] is True
    assert world.config.outbox_db.exists()
    pings = 0
    while pings < 3:
        pings += "WATCHDOG" in await daemon.notify.next()
    daemon.proc.send_signal(signal.SIGTERM)
    await daemon.notify.until("STOPPING", "1")
    async with asyncio.timeout(WAIT_S):
        assert await daemon.proc.wait() == 0


async def test_a_hung_event_loop_stops_the_watchdog(daemon: DaemonProcess) -> None:
    await daemon.notify.until("READY", "1")
    await daemon.notify.until("WATCHDOG", "1")
    daemon.proc.send_signal(signal.SIGUSR1)
    await daemon.notify.until("STATUS", "hung")
    with pytest.raises(TimeoutError):
        await daemon.notify.next(within=QUIET_S)
    assert daemon.proc.returncode is None  # hung, not dead: systemd's watchdog kills it


def _fragments(blob: bytes) -> list[str]:
    """Text forms a piece of biometric data could take in a log line."""
    piece = blob[16:40]
    return [piece.hex(), base64.b64encode(piece).decode()[:24], repr(piece)[2:30]]


async def test_no_personal_biometric_or_secret_data_in_logs(
    world: StationWorld, daemon: DaemonProcess
) -> None:
    central_log = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(level="DEBUG", fmt="json", stream=central_log, environ={})
    try:
        before = await daemon.notify.until("READY", "1")
        url = before[-1]["STATUS"].removeprefix("console ")
        await daemon.notify.until("STATUS")  # link online
        pre = world.prerequest(surname="Zébulon", given_names="Anatole Firmin")
        client = ConsoleClient(url)
        token = await asyncio.to_thread(client.sign_in, AGENT, PASSWORD)
        sid = (await asyncio.to_thread(client.start))["id"]
        await asyncio.to_thread(client.recall, sid, number=pre.number)
        await asyncio.to_thread(client.documents, sid, checked=["photo", "proof_of_address"])
        world.client = client
        view = await world.capture_until(sid)
        view = await asyncio.to_thread(client.confirm, sid)
        number = parse_request_number(view["request_number"])
        # Central's signed acknowledgement reached the device: central has recorded it.
        await daemon.log.wait_for("acknowledged by central")
        assert not isinstance(world.service.request_status(number), Rejection)
        daemon.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_S):
            assert await daemon.proc.wait() == 0
        record = world.service.enrolment_record(number)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    await daemon.log.wait_for("dr-edge stopped")  # its last line: the whole log is read
    edge_text = daemon.log.text
    central_text = central_log.getvalue()
    assert "agent console on" in edge_text  # the log was captured: absence below means something
    forbidden = [
        pre.number,
        pre.form.surname,
        "Zebulon",
        pre.form.given_names,
        "Anatole",
        pre.form.birth_date.isoformat(),
        pre.form.address_line,
        PASSWORD,
        token,
        "PRIVATE KEY",
    ]
    for finger in record.fingers:
        for blob in (finger.template, finger.image_png):
            if blob:
                forbidden.extend(_fragments(blob))
    for name, text in (("dr-edge", edge_text), ("central", central_text)):
        for item in forbidden:
            assert item not in text, f"{name} logged {item[:12]!r}..."
    # Central's side did log (as JSON, one object per line) while the enrolment went through.
    assert [json.loads(line) for line in central_text.splitlines()]
