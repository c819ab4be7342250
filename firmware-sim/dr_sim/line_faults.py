"""Seeded byte-level faults of a serial line: dropped, corrupted and duplicated bytes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LineFaults"]


@dataclass(slots=True, kw_only=True)
class LineFaults:
    """Per-byte probabilities of each fault, and an optional cap on how many happen.

    The same seed and the same traffic give the same faults, so a failing run replays.
    """

    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    prefix: int = 0  # random bytes (never 0xEF, a header's first byte) before each burst
    limit: int | None = None  # stop injecting after this many faults
    seed: int = 0
    injected: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt", "duplicate"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} probability must be in [0, 1], got {p}")
        if self.drop + self.corrupt + self.duplicate > 1.0:
            raise ValueError("fault probabilities add up to more than 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must be non-negative")
        if not 0 <= self.prefix <= 4096:
            raise ValueError("prefix must be 0-4096 bytes")
        self._rng = np.random.default_rng(self.seed)

    @property
    def active(self) -> bool:
        total = self.drop + self.corrupt + self.duplicate
        return total > 0 and (self.limit is None or self.injected < self.limit)

    def mangle(self, data: bytes) -> bytes:
        if data and self.prefix:
            noise = self._rng.integers(0, 0xEF, size=self.prefix, dtype=np.uint8).tobytes()
            data = noise + data
        if not data or not self.active:
            return data
        draws = self._rng.random(len(data))
        hits = np.flatnonzero(draws < self.drop + self.corrupt + self.duplicate)
        if hits.size == 0:
            return data
        out = bytearray()
        previous = 0
        for index in hits.tolist():
            if self.limit is not None and self.injected >= self.limit:
                break
            out += data[previous:index]
            byte, draw = data[index], draws[index]
            if draw < self.drop:
                pass
            elif draw < self.drop + self.corrupt:
                out.append(byte ^ int(self._rng.integers(1, 256)))
            else:
                out += bytes((byte, byte))
            previous = index + 1
            self.injected += 1
        out += data[previous:]
        return bytes(out)
