"""The fingerprint area: SFinGe's silhouette of a rectangle and four elliptic quarters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Silhouette:
    """Fingertip outline, in pixels, around a centre (row, col).

    The outline is a central rectangle ``left + right`` wide and ``middle`` high, closed at the
    top by two elliptic quarters of height ``top`` and at the bottom by two of height
    ``bottom`` (Cappelli, Maio, Maltoni 2002).
    """

    centre: tuple[float, float]
    left: float
    right: float
    top: float
    middle: float
    bottom: float

    def __post_init__(self) -> None:
        if min(self.left, self.right, self.top, self.bottom) <= 0 or self.middle < 0:
            raise ValueError(f"silhouette extents must be positive: {self}")


def silhouette_depth(
    rows: NDArray[np.float64], cols: NDArray[np.float64], silhouette: Silhouette
) -> NDArray[np.float64]:
    """Approximate signed distance to the outline: positive inside, pixels.

    Parameters
    ----------
    rows, cols : ndarray
        Coordinates of the points, any one shape.
    silhouette : Silhouette
        The outline.

    Returns
    -------
    ndarray of float64
        Same shape as ``rows``.
    """
    r0, c0 = silhouette.centre
    x = cols - c0
    y = rows - r0  # down is positive here
    half_mid = silhouette.middle / 2
    sx = np.where(x < 0, silhouette.left, silhouette.right)
    above = y < -half_mid
    below = y > half_mid
    dy = np.where(above, -y - half_mid, np.where(below, y - half_mid, 0.0))
    sy = np.where(above, silhouette.top, silhouette.bottom)
    rho = np.sqrt((x / sx) ** 2 + (dy / sy) ** 2)
    # (1 - rho) times the local radius approximates the distance near the outline.
    radius = np.where(dy > 0, np.minimum(sx, sy), sx)
    return np.asarray((1.0 - rho) * radius, dtype=np.float64)


def silhouette_mask(
    shape: tuple[int, int], silhouette: Silhouette, *, grow: float = 0.0, ramp: float = 2.0
) -> NDArray[np.float32]:
    """Soft mask of the fingerprint area: 1 inside, 0 outside, a ramp between.

    Parameters
    ----------
    shape : (int, int)
        (rows, cols) of the mask.
    silhouette : Silhouette
        The outline.
    grow : float, keyword-only
        Pixels added outside (or, negative, removed inside) the outline.
    ramp : float, keyword-only
        Width of the transition, pixels.

    Returns
    -------
    (M, N) ndarray of float32
        Values in [0, 1].
    """
    rows, cols = np.indices(shape, dtype=np.float64)
    depth = silhouette_depth(rows, cols, silhouette)
    return np.clip(0.5 + (depth + grow) / ramp, 0.0, 1.0).astype(np.float32)
