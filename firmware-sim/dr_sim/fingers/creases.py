"""Creases and scars: thin lines where the skin does not touch the glass, fixed per finger."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def crease_map(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    count: int,
    rows: tuple[float, float],
) -> NDArray[np.float32]:
    """Draw ``count`` random creases, mostly across the finger.

    Flexion creases run roughly horizontally; a few shorter ones (scars, wrinkles) go any way.

    Parameters
    ----------
    shape : (int, int)
        (rows, cols) of the map.
    rng : numpy.random.Generator, keyword-only
        Draws the lines.
    count : int, keyword-only
        Number of creases.
    rows : (float, float), keyword-only
        Range of rows where crease centres fall.

    Returns
    -------
    (M, N) ndarray of float32
        1 on a crease, 0 elsewhere, soft edges.
    """
    out = np.zeros(shape, dtype=np.float32)
    if count <= 0:
        return out
    r_idx, c_idx = np.indices(shape, dtype=np.float32)
    for _ in range(count):
        centre_r = rng.uniform(*rows)
        centre_c = rng.uniform(0.2 * shape[1], 0.8 * shape[1])
        across = rng.uniform() < 0.7
        angle = rng.normal(0.0, 0.25) if across else rng.uniform(0, np.pi)
        half_length = rng.uniform(60, 180) if across else rng.uniform(15, 60)
        half_width = rng.uniform(0.8, 2.2)
        # Distance of every pixel to the segment, in its own frame (u along, v across).
        dr, dc = r_idx - centre_r, c_idx - centre_c
        u = dc * np.cos(angle) - dr * np.sin(angle)
        v = dc * np.sin(angle) + dr * np.cos(angle)
        beyond = np.maximum(np.abs(u) - half_length, 0.0)
        distance = np.hypot(v, beyond)
        out = np.maximum(out, np.clip(half_width + 0.5 - distance, 0.0, 1.0))
    return out
