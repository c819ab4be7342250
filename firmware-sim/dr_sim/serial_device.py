"""What both simulated devices share: a pty port, an output line with pacing, delays and
byte faults, a control socket, and a run loop that ends cleanly.

Output path: ``send(data)`` queues bytes; the writer applies the reply delay (``slow``), the
seeded byte faults (``line``), then writes them, paced at the configured baud rate if asked
(a pty moves bytes as fast as memory, so a real line's timing has to be made here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dr_sim.control import ControlCommandError, ControlServer
from dr_sim.line_faults import LineFaults
from dr_sim.pty_port import PtyPort

__all__ = ["SerialDevice", "running"]

_log = logging.getLogger(__name__)

# Pacing granularity: bytes are written in slices of about this much line time, so that the
# timer's resolution (~1 ms) costs little against the line rate.
_PACE_SLICE_S = 0.004


class SerialDevice:
    """Base of the simulators. Subclasses implement :meth:`on_bytes` and extra commands."""

    kind = "device"

    def __init__(
        self,
        *,
        link: Path,
        control: Path | None = None,
        baudrate: int = 57600,
        pace: bool = False,
    ) -> None:
        if baudrate <= 0:
            raise ValueError("baudrate must be positive")
        self.link = Path(link)
        self.control_path = control
        self.baudrate = baudrate
        self.pace = pace
        self.delay = 0.0  # seconds before each reply ("slow")
        self.faults = LineFaults()
        self.chunk: int | None = None  # write at most this many bytes per write call
        self.port = PtyPort(self.link, on_bytes=self._receive)
        self._output: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._control: ControlServer | None = None
        self.bytes_out = 0
        self.bytes_in = 0

    # subclass hooks -------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        """Bytes from the host (after the line faults)."""

    def on_unplug(self) -> None:
        """The device lost power."""

    def line_baudrate(self) -> int:
        return self.baudrate

    async def command(self, words: list[str]) -> str:
        """Handle a control command (subclasses extend, then call this one)."""
        name, args = words[0], words[1:]
        if name == "unplug":
            self.unplug()
            return ""
        if name == "replug":
            if self.port.plugged:
                raise ControlCommandError("already plugged")
            return self.port.plug()
        if name == "slow":
            self.delay = _float(args, "slow SECONDS")
            if self.delay < 0:
                raise ControlCommandError("slow: seconds must be >= 0")
            return ""
        if name == "chunk":
            if len(args) != 1:
                raise ControlCommandError("usage: chunk BYTES|off")
            self.chunk = None if args[0] == "off" else int(args[0])
            if self.chunk is not None and self.chunk < 1:
                raise ControlCommandError("chunk: at least 1 byte")
            return ""
        if name == "line":
            self.faults = _parse_line(args)
            return ""
        if name in ("garbage", "raw"):
            if len(args) != 1:
                raise ControlCommandError(f"usage: {name} HEXBYTES")
            self.send(bytes.fromhex(args[0]))
            return ""
        if name == "status":
            return " ".join(f"{k}={v}" for k, v in self.status().items())
        if name == "help":
            return self.help()
        raise ControlCommandError(f"unknown command {name!r} (try help)")

    def help(self) -> str:
        return (
            "unplug | replug | slow SECONDS | chunk BYTES|off"
            " | line drop=P corrupt=P dup=P prefix=N seed=N [limit=N] | line clean"
            " | garbage HEX | status"
        )

    def status(self) -> dict[str, object]:
        return {
            "plugged": int(self.port.plugged),
            "pty": self.port.slave_name or "-",
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "faults_injected": self.faults.injected,
            "delay": self.delay,
        }

    # running ---------------------------------------------------------------------------
    def send(self, data: bytes, *, delay: float | None = None) -> None:
        self._output.put_nowait((self.delay if delay is None else delay, data))

    def unplug(self) -> None:
        self.port.unplug()
        while not self._output.empty():
            self._output.get_nowait()
        self.on_unplug()

    def stop(self) -> None:
        self._stop.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def _receive(self, data: bytes) -> None:
        data = self.faults.mangle(data)
        self.bytes_in += len(data)
        self.on_bytes(data)

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        line_free_at = loop.time()
        while True:
            delay, data = await self._output.get()
            if delay > 0:
                await asyncio.sleep(delay)
            data = self.faults.mangle(data)
            self.bytes_out += len(data)
            if not self.pace:
                if self.chunk is None:
                    await self.port.write(data)
                    continue
                for start in range(0, len(data), self.chunk):
                    await self.port.write(data[start : start + self.chunk])
                    await asyncio.sleep(0)  # let the host read this piece on its own
                continue
            baud = self.line_baudrate()
            byte_time = 10 / baud  # 8N1: start bit, 8 data bits, stop bit
            step = max(1, int(_PACE_SLICE_S / byte_time))
            line_free_at = max(line_free_at, loop.time())
            for start in range(0, len(data), step):
                chunk = data[start : start + step]
                wait = line_free_at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self.port.write(chunk)
                line_free_at += len(chunk) * byte_time

    async def _serve_control(self, words: list[str]) -> str:
        return await self.command(words)

    async def run(self, *, announce: Callable[[str], None] | None = None) -> None:
        """Plug in, serve the control channel, and run until :meth:`stop`."""
        try:
            slave = self.port.plug()
            if self.control_path is not None:
                self._control = ControlServer(self.control_path, self._serve_control)
                await self._control.start()
            if announce is not None:
                announce(slave)
            self._ready.set()
            async with asyncio.TaskGroup() as group:
                writer = group.create_task(self._writer())
                await self._stop.wait()
                writer.cancel()
        finally:
            if self._control is not None:
                await self._control.close()
            self.port.unplug()


@contextlib.asynccontextmanager
async def running(device: SerialDevice) -> AsyncIterator[SerialDevice]:
    """Run ``device`` in this event loop for the duration of the block (for test fixtures)."""
    task = asyncio.create_task(device.run())
    ready = asyncio.create_task(device.wait_ready())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        await task  # raises what made it fail
    try:
        yield device
    finally:
        device.stop()
        await task


def _float(args: list[str], usage: str) -> float:
    if len(args) != 1:
        raise ControlCommandError(f"usage: {usage}")
    return float(args[0])


def _parse_line(args: list[str]) -> LineFaults:
    if args == ["clean"]:
        return LineFaults()
    names = {"drop": "drop", "corrupt": "corrupt", "dup": "duplicate", "duplicate": "duplicate"}
    options: dict[str, float] = {}
    seed, prefix, limit = 0, 0, None
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ControlCommandError(f"line: expected key=value, got {arg!r}")
        if key == "seed":
            seed = int(value)
        elif key == "limit":
            limit = int(value)
        elif key == "prefix":
            prefix = int(value)
        elif key in names:
            options[names[key]] = float(value)
        else:
            raise ControlCommandError(f"line: unknown option {key!r}")
    return LineFaults(
        drop=options.get("drop", 0.0),
        corrupt=options.get("corrupt", 0.0),
        duplicate=options.get("duplicate", 0.0),
        prefix=prefix,
        seed=seed,
        limit=limit,
    )
