"""Sans-IO decoder of a QR / barcode scanner's serial output: one payload per line.

A line ends with CR, LF or CRLF (a CRLF split across two reads is one terminator). Empty
lines are ignored. A partial line is never delivered. A line longer than ``max_length`` or
holding control bytes or invalid UTF-8 is rejected (reported, never delivered), and decoding
resumes at the next line.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_LINE", "LineDecoder", "LineRejected"]

MAX_LINE = 1024  # a QR code holds at most ~3 KB; ours (number + signature) is far below 1 KB


@dataclass(frozen=True, slots=True)
class LineRejected:
    reason: str
    size: int


class LineDecoder:
    def __init__(self, *, max_length: int = MAX_LINE) -> None:
        if max_length < 1:
            raise ValueError("max_length must be positive")
        self._max = max_length
        self._buffer = bytearray()
        self._overflow = 0  # bytes discarded from an over-long line so far
        self._after_cr = False

    @property
    def pending(self) -> int:
        return len(self._buffer) + self._overflow

    def reset(self) -> None:
        self._buffer.clear()
        self._overflow = 0
        self._after_cr = False

    def feed(self, data: bytes) -> list[str | LineRejected]:
        events: list[str | LineRejected] = []
        for byte in data:
            if byte == 0x0A and self._after_cr:
                self._after_cr = False  # the LF of a CRLF
                continue
            self._after_cr = byte == 0x0D
            if byte in (0x0A, 0x0D):
                event = self._end_line()
                if event is not None:
                    events.append(event)
            elif self._overflow or len(self._buffer) >= self._max:
                self._overflow += len(self._buffer) + 1
                self._buffer.clear()
            else:
                self._buffer.append(byte)
        return events

    def _end_line(self) -> str | LineRejected | None:
        line, overflow = bytes(self._buffer), self._overflow
        self._buffer.clear()
        self._overflow = 0
        if overflow:
            return LineRejected(f"longer than {self._max} bytes", overflow)
        if not line:
            return None
        if any(b < 0x20 or b == 0x7F for b in line if b != 0x09):
            return LineRejected("control bytes (binary data)", len(line))
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            return LineRejected("not UTF-8 text", len(line))
