"""Asyncio transport of the drivers: a serial port feeding a sans-IO decoder.

:class:`DecodingLink` is the :class:`asyncio.Protocol` of one open port. It feeds every received
chunk to a decoder (the R30x packet decoder, the scanner's line decoder), drops a partial frame
that has gone stale (its bytes are older than ``stale_after`` when more bytes arrive: the rest
of it was lost), and queues the decoder's events for the client. It knows nothing of commands.

The port is opened through an injectable :data:`Opener` (``serial_asyncio_fast`` by default),
so a test can put any transport underneath.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import serial
import serial_asyncio_fast

from edge.drivers.errors import DeviceGoneError

__all__ = ["Decoder", "DecodingLink", "LinkStats", "Opener", "open_link", "serial_opener"]

_log = logging.getLogger(__name__)

E_co = TypeVar("E_co", covariant=True)
E = TypeVar("E")


class Decoder(Protocol[E_co]):
    """A sans-IO decoder: bytes in, events out."""

    @property
    def pending(self) -> int: ...

    def feed(self, data: bytes) -> Sequence[E_co]: ...

    def reset(self) -> object: ...


# Opens ``port`` and connects it to the protocol the factory builds.
Opener = Callable[
    [str, Callable[[], asyncio.Protocol]], Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]]
]


def serial_opener(*, baudrate: int) -> Opener:
    """The production opener: ``serial_asyncio_fast`` on a real or pseudo terminal, 8N1."""

    async def open_port(
        port: str, factory: Callable[[], asyncio.Protocol]
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await serial_asyncio_fast.create_serial_connection(
                loop, factory, port, baudrate=baudrate, exclusive=True
            )
        except (serial.SerialException, OSError) as exc:
            raise DeviceGoneError(f"cannot open: {exc}", port=port) from exc
        return transport, protocol

    return open_port


@dataclass(slots=True)
class LinkStats:
    bytes_in: int = 0
    bytes_out: int = 0
    stale_dropped: int = 0


class DecodingLink(asyncio.Protocol, Generic[E]):
    """One open port: received bytes -> decoder -> queue of events."""

    def __init__(
        self,
        decoder: Decoder[E],
        *,
        port: str,
        stale_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._decoder = decoder
        self._port = port
        self._stale_after = stale_after
        self._clock = clock
        self._last_rx = clock()
        self._events: asyncio.Queue[E] = asyncio.Queue()
        self._transport: asyncio.WriteTransport | None = None
        self._closed = asyncio.Event()
        self._made = asyncio.Event()
        self._lost_error: BaseException | None = None
        self.stats = LinkStats()

    # asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self._transport = transport
        self._made.set()

    def data_received(self, data: bytes) -> None:
        now = self._clock()
        if self._decoder.pending and now - self._last_rx > self._stale_after:
            self._decoder.reset()
            self.stats.stale_dropped += 1
        self._last_rx = now
        self.stats.bytes_in += len(data)
        for event in self._decoder.feed(data):
            self._events.put_nowait(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost_error = exc
        self._transport = None
        self._closed.set()
        if exc is not None:
            _log.warning("%s: link lost: %s", self._port, exc)

    # client side --------------------------------------------------------------------------
    @property
    def port(self) -> str:
        return self._port

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._closed.is_set()

    def send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise DeviceGoneError("link is closed", port=self._port)
        self.stats.bytes_out += len(data)
        self._transport.write(data)

    def discard_input(self) -> None:
        """Forget queued events and any partial frame (before a new exchange)."""
        while not self._events.empty():
            self._events.get_nowait()
        self._decoder.reset()

    async def receive(self) -> E:
        """The next event; :class:`DeviceGoneError` if the port closes. Callers bound the
        wait with ``asyncio.timeout``."""
        if not self._events.empty():
            return self._events.get_nowait()
        if self._closed.is_set():
            raise DeviceGoneError(f"link lost: {self._lost_error}", port=self._port)
        get = asyncio.ensure_future(self._events.get())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (get, closed):
                if not fut.done():
                    fut.cancel()
        if get.done() and not get.cancelled():
            return get.result()
        raise DeviceGoneError(f"link lost: {self._lost_error}", port=self._port)

    async def close(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        if transport is not None:
            await self._closed.wait()


async def open_link(
    port: str,
    decoder: Decoder[E],
    *,
    opener: Opener,
    stale_after: float,
) -> DecodingLink[E]:
    """Open ``port`` and return its link, ready to send and receive."""
    link: DecodingLink[E] = DecodingLink(decoder, port=port, stale_after=stale_after)
    await opener(port, lambda: link)
    await link._made.wait()  # transports call connection_made on the next loop iteration
    return link
