"""Sans-IO codec of the R30x packet format: bytes <-> :class:`Packet`.

Wire layout (big-endian)::

    EF 01 | address (4) | packet id (1) | length (2) | payload (length - 2) | checksum (2)

``length`` counts the payload and the two checksum bytes; the checksum is the low 16 bits of
the sum of the packet id byte, both length bytes and every payload byte. Example, VfyPwd with
password 0: ``EF01 FFFFFFFF 01 0007 13 00000000 001B``.

:class:`PacketDecoder` accepts bytes in any split (one at a time, several packets at once, with
garbage between), resynchronises on the header and reports rejected frames as events instead of
raising, so a transport never loses the good packets that follow a bad one.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from edge.drivers.r30x_commands import PacketId

__all__ = [
    "DEFAULT_ADDRESS",
    "HEADER",
    "MAX_PAYLOAD",
    "OVERHEAD",
    "Packet",
    "PacketDecoder",
    "RejectReason",
    "Rejected",
    "checksum",
    "encode_packet",
]

HEADER = b"\xef\x01"
DEFAULT_ADDRESS = 0xFFFFFFFF
# Bytes before the payload: header (2) + address (4) + packet id (1) + length (2).
_PREFIX = struct.Struct(">2sIBH")
# Bytes of a packet beyond its payload: the prefix and the checksum.
OVERHEAD = _PREFIX.size + 2
# Largest payload accepted: a 256-byte data packet. Anything longer is a corrupted length.
MAX_PAYLOAD = 256
_VALID_IDS = frozenset(int(p) for p in PacketId)


def checksum(packet_id: int, payload: bytes) -> int:
    """Low 16 bits of the sum of the packet id, both length bytes and the payload bytes."""
    length = len(payload) + 2
    return (packet_id + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet, header and checksum stripped."""

    packet_id: PacketId
    payload: bytes
    address: int = DEFAULT_ADDRESS

    def __post_init__(self) -> None:
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        if not 0 <= self.address <= 0xFFFFFFFF:
            raise ValueError(f"address {self.address:#x} is not a 32-bit value")

    def encode(self) -> bytes:
        return encode_packet(self.packet_id, self.payload, address=self.address)


def encode_packet(packet_id: int, payload: bytes, *, address: int = DEFAULT_ADDRESS) -> bytes:
    """The bytes of one packet on the wire."""
    length = len(payload) + 2
    prefix = _PREFIX.pack(HEADER, address, packet_id, length)
    return prefix + payload + checksum(packet_id, payload).to_bytes(2, "big")


class RejectReason(enum.Enum):
    BAD_CHECKSUM = "bad checksum"
    BAD_HEADER = "bad packet id or length"
    GARBAGE = "bytes outside any packet"
    STALE = "partial packet dropped"


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes the decoder threw away, and why (an event, not an exception)."""

    reason: RejectReason
    size: int


class PacketDecoder:
    """Incremental decoder: ``feed(data)`` returns the packets and rejections it completed."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete packet."""
        return len(self._buffer)

    def reset(self) -> Rejected | None:
        """Drop any partial packet (a stale one, or before a new exchange)."""
        dropped = len(self._buffer)
        self._buffer.clear()
        return Rejected(RejectReason.STALE, dropped) if dropped else None

    def feed(self, data: bytes) -> list[Packet | Rejected]:
        self._buffer += data
        events: list[Packet | Rejected] = []
        buf = self._buffer
        while True:
            start = buf.find(HEADER)
            if start < 0:
                # Keep a trailing 0xEF: it may be the first half of the next header.
                keep = 1 if buf.endswith(HEADER[:1]) else 0
                if len(buf) - keep:
                    events.append(Rejected(RejectReason.GARBAGE, len(buf) - keep))
                    del buf[: len(buf) - keep]
                break
            if start:
                events.append(Rejected(RejectReason.GARBAGE, start))
                del buf[:start]
            if len(buf) < _PREFIX.size:
                break
            _, address, packet_id, length = _PREFIX.unpack_from(buf)
            if packet_id not in _VALID_IDS or not 2 <= length <= MAX_PAYLOAD + 2:
                # Not a real header (EF 01 inside data, or corrupted): skip it and rescan.
                events.append(Rejected(RejectReason.BAD_HEADER, len(HEADER)))
                del buf[: len(HEADER)]
                continue
            total = _PREFIX.size + length
            if len(buf) < total:
                break
            payload = bytes(buf[_PREFIX.size : total - 2])
            received = int.from_bytes(buf[total - 2 : total], "big")
            if received != checksum(packet_id, payload):
                # Skip only the header: a corrupted length may have swallowed a good packet.
                events.append(Rejected(RejectReason.BAD_CHECKSUM, len(HEADER)))
                del buf[: len(HEADER)]
                continue
            events.append(Packet(PacketId(packet_id), payload, address))
            del buf[:total]
        return events
