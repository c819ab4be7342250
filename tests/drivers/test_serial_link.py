"""The transport layer alone, over an in-memory transport and an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from edge.drivers.errors import DeviceGoneError
from edge.drivers.r30x_codec import Packet, PacketDecoder, Rejected, encode_packet
from edge.drivers.r30x_commands import PacketId
from edge.drivers.serial_link import DecodingLink


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _MemoryTransport(asyncio.WriteTransport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing


ACK = encode_packet(PacketId.ACK, b"\x00")


def _link(clock: _Clock) -> tuple[DecodingLink[Packet | Rejected], _MemoryTransport]:
    link: DecodingLink[Packet | Rejected] = DecodingLink(
        PacketDecoder(), port="mem", stale_after=0.2, clock=clock
    )
    transport = _MemoryTransport()
    link.connection_made(transport)
    return link, transport


async def test_stale_partial_packet_is_dropped() -> None:
    clock = _Clock()
    link, _ = _link(clock)
    link.data_received(ACK[:6])  # the rest of this packet is lost
    clock.now += 1.0
    link.data_received(ACK)
    async with asyncio.timeout(1):
        event = await link.receive()
    assert event == Packet(PacketId.ACK, b"\x00")
    assert link.stats.stale_dropped == 1


async def test_fresh_partial_packet_is_completed() -> None:
    clock = _Clock()
    link, _ = _link(clock)
    link.data_received(ACK[:6])
    clock.now += 0.01
    link.data_received(ACK[6:])
    async with asyncio.timeout(1):
        assert await link.receive() == Packet(PacketId.ACK, b"\x00")
    assert link.stats.stale_dropped == 0


async def test_discard_input_forgets_queued_events_and_partials() -> None:
    link, _ = _link(_Clock())
    link.data_received(ACK + ACK[:5])
    link.discard_input()
    link.data_received(encode_packet(PacketId.ACK, b"\x02"))
    async with asyncio.timeout(1):
        assert await link.receive() == Packet(PacketId.ACK, b"\x02")


async def test_connection_lost_wakes_a_waiting_receiver() -> None:
    link, _ = _link(_Clock())
    waiter = asyncio.ensure_future(link.receive())
    await asyncio.sleep(0)  # let it start waiting (ordering, not timing)
    link.connection_lost(OSError(5, "Input/output error"))
    with pytest.raises(DeviceGoneError, match="link lost"):
        await waiter
    assert not link.is_open
    with pytest.raises(DeviceGoneError):
        link.send(b"x")


async def test_send_writes_to_transport() -> None:
    link, transport = _link(_Clock())
    link.send(ACK)
    assert bytes(transport.written) == ACK
    assert link.stats.bytes_out == len(ACK)
