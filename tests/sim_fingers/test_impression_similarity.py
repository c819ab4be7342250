"""Impressions of one finger are more alike than impressions of different fingers."""

from __future__ import annotations

import itertools

import numpy as np
from dr_sim.fingers import SyntheticFinger

from .measures import aligned_correlation


def test_genuine_pairs_correlate_better_than_impostor_pairs() -> None:
    rng = np.random.default_rng(2024)
    fingers = [SyntheticFinger(i) for i in (31, 32, 33)]
    captures = {f.identity: [f.capture(rng) for _ in range(2)] for f in fingers}
    genuine = [aligned_correlation(*captures[f.identity]) for f in fingers]
    impostor = [
        aligned_correlation(captures[a.identity][0], captures[b.identity][1])
        for a, b in itertools.combinations(fingers, 2)
    ]
    assert min(genuine) > max(impostor), (genuine, impostor)
