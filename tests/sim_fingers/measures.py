"""Measures the finger-source tests make on images, written independently of the generator."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage


def gradient_orientation(image: NDArray[np.floating], *, sigma: float = 6.0) -> NDArray[np.float64]:
    """Ridge direction from the smoothed structure tensor, radians in [0, pi) (x right, y up)."""
    img = np.asarray(image, dtype=np.float64)
    g_r = ndimage.sobel(img, axis=0)
    g_c = ndimage.sobel(img, axis=1)
    g_x, g_y = g_c, -g_r
    gxx = ndimage.gaussian_filter(g_x * g_x, sigma)
    gyy = ndimage.gaussian_filter(g_y * g_y, sigma)
    gxy = ndimage.gaussian_filter(g_x * g_y, sigma)
    gradient_dir = 0.5 * np.arctan2(2 * gxy, gxx - gyy)
    return np.asarray(np.mod(gradient_dir + np.pi / 2, np.pi), dtype=np.float64)


def angle_difference(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Smallest difference between two undirected angles, radians in [0, pi/2]."""
    d = np.mod(a - b, np.pi)
    return np.asarray(np.minimum(d, np.pi - d), dtype=np.float64)


def _standardise(image: NDArray[np.uint8]) -> NDArray[np.float64]:
    # Band-pass: remove the background and the finest noise, keep the ridges.
    img = image.astype(np.float64)
    band = ndimage.gaussian_filter(img, 1.5) - ndimage.gaussian_filter(img, 6.0)
    return np.asarray(band / (band.std() + 1e-9), dtype=np.float64)


def aligned_correlation(
    a: NDArray[np.uint8], b: NDArray[np.uint8], *, angles: NDArray[np.float64] | None = None
) -> float:
    """Best normalised cross-correlation of two images over rotations and shifts.

    Shifts are searched by FFT over the central overlap (at most 40 pixels each way), rotations
    over ``angles`` (degrees); the correlation is divided by the number of overlapping pixels.
    """
    if angles is None:
        angles = np.arange(-12.0, 12.1, 3.0)
    fa = _standardise(a)
    best = -1.0
    shape = (a.shape[0] * 2, a.shape[1] * 2)
    spec_a = np.fft.rfft2(fa, shape)
    ones = np.ones(a.shape)
    overlap = np.fft.irfft2(np.fft.rfft2(ones, shape) * np.conj(np.fft.rfft2(ones, shape)), shape)
    for angle in angles:
        fb = _standardise(ndimage.rotate(b, angle, reshape=False, order=1, mode="nearest"))
        corr = np.fft.irfft2(spec_a * np.conj(np.fft.rfft2(fb, shape)), shape)
        corr = corr / np.maximum(overlap, 1.0)
        # Keep shifts up to 40 pixels: more would compare small corners.
        window = np.concatenate([corr[:41], corr[-40:]])
        window = np.concatenate([window[:, :41], window[:, -40:]], axis=1)
        best = max(best, float(window.max()))
    return best
