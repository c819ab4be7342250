"""Client of a serial QR / barcode scanner (one decoded payload per line).

Usage::

    async with QrScanner(ScannerConfig(port="/dev/ttyACM0")) as scanner:
        async for payload in scanner.payloads():
            ...

An unplugged scanner is reopened when it comes back (``reconnect_timeout`` None: wait for
ever, as a daemon does). Payload contents are never logged, only their length.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from types import TracebackType

from edge.drivers.errors import DeviceGoneError, ScanRejectedError
from edge.drivers.scanner_codec import MAX_LINE, LineDecoder, LineRejected
from edge.drivers.serial_link import DecodingLink, Opener, open_link, serial_opener

__all__ = ["QrScanner", "ScannerConfig"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScannerConfig:
    port: str
    baudrate: int = 9600
    max_length: int = MAX_LINE
    reconnect_timeout: float | None = None  # None: wait for the scanner for ever
    reconnect_poll_interval: float = 0.1

    def __post_init__(self) -> None:
        if self.baudrate <= 0 or self.max_length < 1:
            raise ValueError("baudrate and max_length must be positive")


def _log_rejection(exc: ScanRejectedError) -> None:
    _log.warning("scanner: %s", exc)


class QrScanner:
    def __init__(self, config: ScannerConfig, *, opener: Opener | None = None) -> None:
        self.config = config
        self._opener = opener or serial_opener(baudrate=config.baudrate)
        self._link: DecodingLink[str | LineRejected] | None = None
        self.reconnects = 0
        self._reconnected = asyncio.Condition()

    async def __aenter__(self) -> QrScanner:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        self._link = await open_link(
            self.config.port,
            LineDecoder(max_length=self.config.max_length),
            opener=self._opener,
            # A line's bytes come together; a fragment this old is the tail of a lost line.
            stale_after=1.0,
        )

    async def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    async def _reopen(self) -> None:
        await self.close()
        loop = asyncio.get_running_loop()
        timeout = self.config.reconnect_timeout
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                await self.open()
            except DeviceGoneError:
                pass
            else:
                self.reconnects += 1
                _log.info("%s: scanner reconnected", self.config.port)
                async with self._reconnected:
                    self._reconnected.notify_all()
                return
            if deadline is not None and loop.time() >= deadline:
                raise DeviceGoneError(f"not back after {timeout:.3g} s", port=self.config.port)
            await asyncio.sleep(self.config.reconnect_poll_interval)

    async def wait_reconnects(self, count: int) -> None:
        """Return once the scanner has been reopened ``count`` times in all (a reader must be
        running: reopening happens inside :meth:`read_payload`)."""
        async with self._reconnected:
            await self._reconnected.wait_for(lambda: self.reconnects >= count)

    async def read_payload(self) -> str:
        """The next complete line; :class:`ScanRejectedError` for a refused one (the scanner
        stays usable)."""
        while True:
            if self._link is None or not self._link.is_open:
                await self._reopen()
            assert self._link is not None
            try:
                event = await self._link.receive()
            except DeviceGoneError:
                _log.warning("%s: scanner gone, waiting for it", self.config.port)
                await self._reopen()
                continue
            if isinstance(event, LineRejected):
                raise ScanRejectedError(reason=event.reason, size=event.size)
            return event

    async def payloads(
        self, *, on_rejected: Callable[[ScanRejectedError], None] = _log_rejection
    ) -> AsyncGenerator[str, None]:
        """Every payload, for ever; rejected lines go to ``on_rejected`` (logged by default)."""
        while True:
            try:
                yield await self.read_payload()
            except ScanRejectedError as exc:
                on_rejected(exc)
