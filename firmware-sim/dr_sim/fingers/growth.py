"""Ridge growth by iterated oriented filtering (the SFinGe approach), in the frequency domain.

Starting from a few random seeds, each iteration filters the image with Gabor filters tuned to
the local ridge orientation and period, then saturates it. Ridges grow outwards from the seeds
and fill the area; where growth fronts meet out of phase, ridge endings and bifurcations
appear, as minutiae do on real fingers.

A filter that changes from pixel to pixel cannot be applied by one FFT. Here a bank of
``orientations x periods`` Gabor filters is applied by FFT (one forward transform, one inverse
per filter) and the responses are blended pixel by pixel with linear interpolation weights on
orientation and frequency. ``skimage.filters.gabor`` convolves directly and would take seconds
per filter.

References
----------
.. [1] R. Cappelli, A. Erol, D. Maio, D. Maltoni, "Synthetic fingerprint-image generation",
       ICPR 2000.
.. [2] D. Maltoni, D. Maio, A. K. Jain, S. Prabhakar, *Handbook of Fingerprint Recognition*,
       2nd ed., Springer 2009, chapter 6 (synthetic fingerprint generation).
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.typing import NDArray
from scipy import ndimage


def _bank_weights(
    values: NDArray[np.float64], bins: NDArray[np.float64], *, periodic: bool
) -> list[tuple[int, NDArray[np.float32]]]:
    """Per-pixel linear interpolation weights of ``values`` on sorted ``bins``.

    Returns the bins that some pixel uses, each with its (M, N) weight map.
    """
    n = len(bins)
    if periodic:
        step = np.pi / n
        u = np.mod(values, np.pi) / step
        k0 = np.floor(u).astype(np.intp) % n
        w1 = (u - np.floor(u)).astype(np.float32)
        k1 = (k0 + 1) % n
    else:
        u = np.interp(values, bins, np.arange(n, dtype=np.float64))
        k0 = np.minimum(np.floor(u).astype(np.intp), n - 1)
        w1 = (u - k0).astype(np.float32)
        k1 = np.minimum(k0 + 1, n - 1)
    out = []
    for k in range(n):
        w = np.where(k0 == k, 1.0 - w1, 0.0) + np.where(k1 == k, w1, 0.0)
        if np.any(w > 0):
            out.append((k, w.astype(np.float32)))
    return out


def gabor_bank(
    shape: tuple[int, int],
    *,
    angles: NDArray[np.float64],
    periods: NDArray[np.float64],
    bandwidth: float,
    elongation: float,
) -> NDArray[np.float32]:
    """Frequency responses of even Gabor filters, on the half-plane grid of ``rfft2``.

    Parameters
    ----------
    shape : (int, int)
        (rows, cols) of the images to filter.
    angles : (K,) ndarray
        Ridge directions, radians (see :mod:`.orientation` for the convention).
    periods : (P,) ndarray
        Ridge periods, pixels.
    bandwidth : float, keyword-only
        Frequency-domain standard deviation across the ridges, relative to the centre frequency.
    elongation : float, keyword-only
        How much narrower the response is along the ridges (the filter is that much longer
        along them than across): > 1 favours long continuous ridges.

    Returns
    -------
    (K, P, M, N // 2 + 1) ndarray of float32
        Real responses, zero at DC.
    """
    fr = scipy.fft.fftfreq(shape[0])[:, None]
    fc = scipy.fft.rfftfreq(shape[1])[None, :]
    bank = np.empty((len(angles), len(periods), len(fr), fc.shape[1]), dtype=np.float32)
    for i, theta in enumerate(angles):
        # Unit normal to the ridges, in (row, col): the direction along which grey levels wave.
        n_r, n_c = -np.cos(theta), -np.sin(theta)
        # Components of each frequency across (u) and along (v) the ridges.
        u = fr * n_r + fc * n_c
        v = -fr * n_c + fc * n_r
        for j, period in enumerate(periods):
            f0 = 1.0 / period
            s_u = bandwidth * f0
            s_v = s_u / elongation
            lobe_v = np.exp(-(v**2) / (2 * s_v**2))
            response = (
                np.exp(-((u - f0) ** 2) / (2 * s_u**2)) + np.exp(-((u + f0) ** 2) / (2 * s_u**2))
            ) * lobe_v
            response[0, 0] = 0.0
            bank[i, j] = response
    return bank


def grow_ridges(
    orientation: NDArray[np.float64],
    period: NDArray[np.float64],
    *,
    rng: np.random.Generator,
    seeds: int = 40,
    iterations: int = 12,
    n_angles: int = 12,
    n_periods: int = 2,
    bandwidth: float = 0.3,
    elongation: float = 1.6,
    gain: float = 2.5,
    settle: int = 3,
) -> NDArray[np.float32]:
    """Grow a ridge pattern that follows an orientation field and a period map.

    Parameters
    ----------
    orientation : (M, N) ndarray
        Ridge direction, radians in [0, pi).
    period : (M, N) ndarray
        Ridge period, pixels (typically 7 to 12 at 500 dpi).
    rng : numpy.random.Generator, keyword-only
        Places the seeds.
    seeds : int, keyword-only
        Number of initial random spots; more seeds give more minutiae.
    iterations : int, keyword-only
        Filter-and-saturate rounds.
    n_angles, n_periods : int, keyword-only
        Size of the filter bank.
    bandwidth, elongation : float, keyword-only
        Filter shape, see :func:`gabor_bank`.
    gain : float, keyword-only
        Amplification before saturation at each round.
    settle : int, keyword-only
        Final rounds that normalise by the local ridge amplitude, so that the zones where
        growth fronts met, and those around singular points, saturate too.

    Returns
    -------
    (M, N) ndarray of float32
        Ridge pattern in [-1, 1], ridges positive, with a near-sinusoidal profile across the
        ridges (unit local amplitude).
    """
    if orientation.shape != period.shape or orientation.ndim != 2:
        raise ValueError(
            f"orientation {orientation.shape} and period {period.shape} must be one 2-D shape"
        )
    if seeds < 1 or iterations < 1:
        raise ValueError(f"need at least one seed and one iteration, got {seeds}, {iterations}")
    shape = (orientation.shape[0], orientation.shape[1])
    angles = np.arange(n_angles, dtype=np.float64) * (np.pi / n_angles)
    p_lo, p_hi = float(period.min()), float(period.max())
    periods = np.linspace(p_lo, p_hi, n_periods) if p_hi - p_lo > 0.5 else np.array([p_lo])
    # Interpolate in frequency, not period: the filters are spaced evenly there.
    freq_bins = np.sort(1.0 / periods)
    periods = 1.0 / freq_bins
    bank = gabor_bank(
        shape, angles=angles, periods=periods, bandwidth=bandwidth, elongation=elongation
    )
    angle_w = _bank_weights(orientation, angles, periodic=True)
    freq_w = _bank_weights(1.0 / period, freq_bins, periodic=False)
    weights = [(i, j, wa * wf) for i, wa in angle_w for j, wf in freq_w]
    weights = [(i, j, w) for i, j, w in weights if np.any(w > 0)]

    image = np.zeros(shape, dtype=np.float32)
    r = rng.integers(0, shape[0], seeds)
    c = rng.integers(0, shape[1], seeds)
    image[r, c] = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), seeds)
    envelope_sigma = 1.5 * float(np.median(period))
    for iteration in range(iterations):
        spectrum = scipy.fft.rfft2(image)
        response = np.zeros(shape, dtype=np.float32)
        for i, j, w in weights:
            response += w * scipy.fft.irfft2(spectrum * bank[i, j], s=shape)
        peak = float(np.abs(response).max())
        if peak == 0.0:
            break
        if iteration < iterations - settle:
            # Growth: one scale for the whole image, so ridges spread out from the seeds.
            scale = peak / gain
        else:
            # Settling: saturate every ridge, including weak ones where fronts met.
            energy = ndimage.gaussian_filter(response * response, envelope_sigma)
            scale = (np.sqrt(energy) + 0.02 * peak) / gain
            if iteration == iterations - 1:
                # Last round: unit amplitude without saturation, a near-sinusoidal profile,
                # so that impressions can make ridges thicker or thinner by moving a level.
                scale = scale * gain / np.sqrt(2.0)
        image = np.clip(response / scale, -1.0, 1.0).astype(np.float32)
    return image
