"""Ridge period maps: how far apart ridges are, pixel by pixel."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage


def smooth_noise(
    shape: tuple[int, int], *, rng: np.random.Generator, scale: float
) -> NDArray[np.float64]:
    """Gaussian-filtered white noise, rescaled to unit standard deviation.

    Parameters
    ----------
    shape : (int, int)
        (rows, cols).
    rng : numpy.random.Generator, keyword-only
        Source of the noise.
    scale : float, keyword-only
        Correlation length (Gaussian sigma), pixels.

    Returns
    -------
    (M, N) ndarray of float64
        Zero mean, unit standard deviation.
    """
    # Filter a coarse grid and zoom it: same look, a fraction of the cost for long scales.
    step = max(1, int(scale // 4))
    coarse_shape = (shape[0] // step + 3, shape[1] // step + 3)
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), scale / step, mode="wrap")
    field = ndimage.zoom(coarse, step, order=1, grid_mode=True, mode="nearest")[
        : shape[0], : shape[1]
    ]
    field = field - field.mean()
    return np.asarray(field / max(float(field.std()), 1e-12), dtype=np.float64)


def ridge_period_map(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    mean_period: float,
    variation: float,
    upper_row: float,
    lower_row: float,
    widening: float,
) -> NDArray[np.float64]:
    """Ridge period (pixels per ridge) over the fingerprint.

    Following SFinGe, ridges are wider apart above the highest core and below the lowest delta
    than between them; a smooth random field adds the rest of the variation.

    Parameters
    ----------
    shape : (int, int)
        (rows, cols).
    rng : numpy.random.Generator, keyword-only
        Source of the random variation.
    mean_period : float, keyword-only
        Period between the singular points, pixels (about 9 at 500 dpi).
    variation : float, keyword-only
        Standard deviation of the random variation, pixels.
    upper_row, lower_row : float, keyword-only
        Rows of the highest core and the lowest delta (or of the arch).
    widening : float, keyword-only
        Relative increase of the period far above ``upper_row`` and below ``lower_row``.

    Returns
    -------
    (M, N) ndarray of float64
        Periods, pixels.
    """
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    ramp = 1.0 / (1.0 + np.exp((rows - upper_row + 40.0) / 25.0))  # above the cores
    ramp += 1.0 / (1.0 + np.exp(-(rows - lower_row - 40.0) / 25.0))  # below the deltas
    period = mean_period * (1.0 + widening * ramp)
    period = period + variation * smooth_noise(shape, rng=rng, scale=60.0)
    return np.asarray(period, dtype=np.float64)
