"""Retry schedule of the outbox: exponential backoff with jitter (pure, injectable rng)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delay before retry ``n``: ``min(maximum, initial * factor**(n-1))`` scaled by a random
    factor in ``[1 - jitter, 1]`` so that a fleet of stations that lost the link together does
    not retry in lock-step when it returns."""

    initial_s: float = 5.0
    factor: float = 2.0
    maximum_s: float = 900.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.maximum_s < self.initial_s:
            raise ValueError("backoff needs 0 < initial_s <= maximum_s")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be within [0, 1]")

    def delay(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after ``attempts`` failed attempts (``attempts >= 1``)."""
        exponent = max(attempts, 1) - 1
        # Cap the exponent first: factor**exponent must not overflow for absurd counts.
        base = self.maximum_s
        if exponent < 64:
            base = min(self.maximum_s, self.initial_s * self.factor**exponent)
        return base * (1.0 - self.jitter * rng.random())
