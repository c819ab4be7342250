"""The simulators' control channel: a Unix socket speaking one command per line.

Each request is one line of words; each answer is one line, ``ok [details]`` or
``error <message>``. The commands are listed in docs/simulator.md and by ``help``.

:class:`ControlClient` is the Python side, for tests and the demo::

    async with await ControlClient.connect(path) as control:
        await control.place_synthetic(7)
        await control.fault("messy")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

__all__ = [
    "ControlClient",
    "ControlCommandError",
    "ControlError",
    "ControlServer",
    "control_command",
]

_log = logging.getLogger(__name__)

Handler = Callable[[list[str]], Awaitable[str]]
MAX_LINE = 64 * 1024


class ControlError(Exception):
    """The simulator refused a control command (the ``error`` answer)."""


class ControlCommandError(ControlError):
    """Raised by a command handler: becomes an ``error`` answer."""


class ControlServer:
    """Serves a :data:`Handler` on a Unix socket."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_LINE
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.close()  # ends their readline: each _serve returns
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while line := await reader.readline():
                answer = await self._answer(line)
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> str:
        try:
            words = shlex.split(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return f"error cannot parse the command: {exc}"
        if not words:
            return "error empty command"
        try:
            details = await self._handler(words)
        except ControlCommandError as exc:
            return f"error {exc}"
        except (ValueError, OSError) as exc:
            return f"error {words[0]}: {exc}"
        return f"ok {details}".rstrip()


class ControlClient:
    """Async client of a simulator's control socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path: Path | str) -> ControlClient:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
        return cls(reader, writer)

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def command(self, *words: str | int | float) -> str:
        """Send one command; returns the details of its ``ok`` answer."""
        line = shlex.join(str(w) for w in words)
        async with self._lock:
            self._writer.write(line.encode() + b"\n")
            await self._writer.drain()
            answer = (await self._reader.readline()).decode().rstrip("\n")
        if not answer:
            raise ControlError("the simulator closed the control channel")
        status, _, details = answer.partition(" ")
        if status != "ok":
            raise ControlError(details or answer)
        return details

    # Sensor ------------------------------------------------------------------------------
    async def place_synthetic(self, identity: int) -> None:
        await self.command("place", "synthetic", identity)

    async def place_image(self, path: Path | str) -> None:
        await self.command("place", "image", str(path))

    async def lift(self) -> None:
        await self.command("lift")

    async def auto_finger(self, identity: int | None) -> None:
        await self.command("auto", "off" if identity is None else identity)

    async def fault(self, kind: str, count: int = 1) -> None:
        """Force the next ``count`` captures' outcome: nofinger, imagefail, messy,
        fewfeatures."""
        await self.command("fault", kind, count)

    async def stuck(self, on: bool = True) -> None:
        await self.command("stuck", "on" if on else "off")

    # Both simulators --------------------------------------------------------------------
    async def slow(self, seconds: float) -> None:
        await self.command("slow", seconds)

    async def line(
        self,
        *,
        drop: float = 0.0,
        corrupt: float = 0.0,
        duplicate: float = 0.0,
        prefix: int = 0,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        words: list[str | int | float] = [
            "line",
            f"drop={drop}",
            f"corrupt={corrupt}",
            f"dup={duplicate}",
            f"prefix={prefix}",
            f"seed={seed}",
        ]
        if limit is not None:
            words.append(f"limit={limit}")
        await self.command(*words)

    async def garbage(self, data: bytes) -> None:
        """Send raw bytes to the host now."""
        await self.command("garbage", data.hex())

    async def chunk(self, size: int | None) -> None:
        """Write at most ``size`` bytes per write (None: whole replies)."""
        await self.command("chunk", "off" if size is None else size)

    async def unplug(self) -> None:
        await self.command("unplug")

    async def replug(self) -> None:
        await self.command("replug")

    async def status(self) -> dict[str, str]:
        details = await self.command("status")
        return dict(word.split("=", 1) for word in shlex.split(details))

    # Scanner ---------------------------------------------------------------------------
    async def scan(self, payload: str) -> None:
        await self.command("scan", payload)


def control_command(path: Path | str, *words: str | int | float, timeout: float = 10.0) -> str:
    """Blocking one-shot command, for scripts: returns the ``ok`` details."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(shlex.join(str(w) for w in words).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    status, _, details = answer.decode().rstrip("\n").partition(" ")
    if status != "ok":
        raise ControlError(details or "no answer")
    return details
