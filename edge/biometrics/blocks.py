"""Short-time Fourier analysis of a fingerprint in overlapping blocks.

The image is cut into windows of ``WINDOW`` x ``WINDOW`` pixels every ``STEP`` pixels (50 %
overlap), each tapered by a sine window, and all windows are transformed at once with one
batched real FFT. From the spectra come, per block, the ridge orientation and its coherence,
the ridge frequency and the ridge energy (Chikkerur, Cartwright and Govindaraju, "Fingerprint
enhancement using STFT analysis", Pattern Recognition 40(1), 2007). The same spectra are then
filtered by :mod:`.enhance`, so the image is transformed once.

Block ``(i, j)`` covers the tile ``rows [STEP*i, STEP*(i+1))``, ``cols [STEP*j, STEP*(j+1))`` of
the image, and its window reaches ``STEP/2`` pixels beyond the tile on each side.

Angles are in image coordinates (x = column to the right, y = row downwards), in radians; a
ridge *orientation* is defined modulo pi.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import ndimage

STEP = 16
WINDOW = 2 * STEP
# Ridge frequencies of human fingers at 500 dpi: periods from ~5 px (children, fine ridges)
# to ~18 px (wide ridges of large fingers), i.e. 1/18 to 1/5 cycles per pixel.
MIN_FREQUENCY = 1.0 / 18.0
MAX_FREQUENCY = 1.0 / 5.0
DEFAULT_FREQUENCY = 1.0 / 9.0


@cache
def _spectral_grid() -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
    """Radial frequency, wave angle and ridge-band mask of the rfft2 bins of one window."""
    fy = scipy.fft.fftfreq(WINDOW).astype(np.float32)[:, None]
    fx = scipy.fft.rfftfreq(WINDOW).astype(np.float32)[None, :]
    radius = np.hypot(fy, fx)
    angle = np.arctan2(fy, fx).astype(np.float32)
    band = (radius >= MIN_FREQUENCY) & (radius <= MAX_FREQUENCY)
    return radius, angle, band


@cache
def _taper() -> NDArray[np.float32]:
    # sin(pi n / W): its square is a periodic Hann window, and Hann windows shifted by half
    # their length sum to one, so analysis and synthesis with this taper reconstruct exactly.
    t = np.sin(np.pi * np.arange(WINDOW) / WINDOW).astype(np.float32)
    return np.outer(t, t)


@dataclass(frozen=True, slots=True, eq=False)
class BlockSpectra:
    """Spectra of the overlapping windows of an image.

    Attributes
    ----------
    spectra : (R, C, WINDOW, WINDOW // 2 + 1) ndarray of complex64
        rfft2 of each tapered window.
    shape : tuple of int
        Shape (M, N) of the analysed image.
    """

    spectra: NDArray[np.complex64]
    shape: tuple[int, int]


@dataclass(frozen=True, slots=True, eq=False)
class BlockField:
    """Ridge measures per block.

    Attributes
    ----------
    orientation : (R, C) ndarray of float32
        Ridge orientation in [0, pi), image coordinates.
    coherence : (R, C) ndarray of float32
        Strength of the dominant orientation in [0, 1] (1: parallel ridges).
    frequency : (R, C) ndarray of float32
        Ridge frequency, cycles per pixel, in [MIN_FREQUENCY, MAX_FREQUENCY].
    energy : (R, C) ndarray of float32
        Spectral energy in the ridge band (grey level squared).
    total_energy : (R, C) ndarray of float32
        Spectral energy of the whole window except its mean.
    """

    orientation: NDArray[np.float32]
    coherence: NDArray[np.float32]
    frequency: NDArray[np.float32]
    energy: NDArray[np.float32]
    total_energy: NDArray[np.float32]


def block_spectra(image: NDArray[np.float32]) -> BlockSpectra:
    """Transform overlapping tapered windows of an image.

    Parameters
    ----------
    image : (M, N) ndarray of float32
        Image, ridges positive.

    Returns
    -------
    BlockSpectra
        ``ceil(M / STEP) x ceil(N / STEP)`` spectra, of windows whose taper-weighted mean is
        removed (so every spectrum's zero-frequency bin is 0).
    """
    rows, cols = image.shape
    n_r, n_c = -(-rows // STEP), -(-cols // STEP)
    half = STEP // 2
    padded = np.pad(
        image,
        ((half, n_r * STEP - rows + half), (half, n_c * STEP - cols + half)),
        mode="reflect",
    )
    taper = _taper()
    windows = sliding_window_view(padded, (WINDOW, WINDOW))[::STEP, ::STEP]
    # Remove each window's own mean (weighted by the taper) before tapering: otherwise the
    # local grey level, far from the image's mean in dark wet patches or on a dark print on a
    # light background, leaks from the zero frequency into the low bins through the taper's
    # spectrum, and that leakage makes a clear but dark ridge pattern look like a smudge.
    local_mean = np.einsum("rcij,ij->rc", windows, taper) / taper.sum()
    windows = (windows - local_mean[..., None, None]) * taper
    spectra = scipy.fft.rfft2(windows, workers=1).astype(np.complex64, copy=False)
    return BlockSpectra(spectra=spectra, shape=(rows, cols))


def overlap_add(blocks: NDArray[np.float32], shape: tuple[int, int]) -> NDArray[np.float32]:
    """Assemble filtered windows (already multiplied by the synthesis taper) into an image.

    Parameters
    ----------
    blocks : (R, C, WINDOW, WINDOW) ndarray of float32
    shape : tuple of int
        Shape (M, N) of the image the blocks were cut from.

    Returns
    -------
    (M, N) ndarray of float32
    """
    n_r, n_c = blocks.shape[:2]
    quads = blocks.reshape(n_r, n_c, 2, STEP, 2, STEP)
    tiles = np.zeros((n_r + 1, n_c + 1, STEP, STEP), dtype=np.float32)
    tiles[:-1, :-1] += quads[:, :, 0, :, 0, :]
    tiles[1:, :-1] += quads[:, :, 1, :, 0, :]
    tiles[:-1, 1:] += quads[:, :, 0, :, 1, :]
    tiles[1:, 1:] += quads[:, :, 1, :, 1, :]
    full = tiles.transpose(0, 2, 1, 3).reshape((n_r + 1) * STEP, (n_c + 1) * STEP)
    half = STEP // 2
    return np.ascontiguousarray(full[half : half + shape[0], half : half + shape[1]])


def block_field(spectra: BlockSpectra, *, smoothing: float = 1.0) -> BlockField:
    """Estimate ridge orientation, coherence and frequency per block.

    Parameters
    ----------
    spectra : BlockSpectra
    smoothing : float, optional
        Standard deviation, in blocks, of the Gaussian that pools the estimates of
        neighbouring blocks (weighted by their ridge energy).

    Returns
    -------
    BlockField
    """
    radius, angle, band = _spectral_grid()
    power = np.abs(spectra.spectra) ** 2
    power[..., 0, 0] = 0.0
    total = power.sum(axis=(-2, -1))
    in_band = power[..., band]  # (R, C, K)
    energy = in_band.sum(axis=-1)
    # Sharpen the spectrum towards its peaks for the frequency and orientation estimates:
    # broadband noise then weighs less than the ridge peak.
    sharp = in_band * in_band
    sharp_sum = sharp.sum(axis=-1) + np.float32(1e-12)
    wave = angle[band]
    doubled = np.exp(2j * wave).astype(np.complex64)
    vector = sharp @ doubled / sharp_sum  # unit-weight orientation vector, |.| <= 1
    freq = sharp @ radius[band] / sharp_sum
    weight = np.sqrt(energy)
    # Pool with neighbours, weighted by energy, so that a weak block follows strong ones.
    smooth_w = ndimage.gaussian_filter(weight, smoothing, mode="nearest") + np.float32(1e-12)
    v_re = ndimage.gaussian_filter(vector.real * weight, smoothing, mode="nearest") / smooth_w
    v_im = ndimage.gaussian_filter(vector.imag * weight, smoothing, mode="nearest") / smooth_w
    f_s = ndimage.gaussian_filter(freq * weight, smoothing, mode="nearest") / smooth_w
    coherence = np.clip(np.hypot(v_re, v_im), 0.0, 1.0)
    # The spectral peak is the wave vector; ridges run perpendicular to it.
    orientation = np.mod(0.5 * np.arctan2(v_im, v_re) + np.pi / 2, np.pi)
    frequency = np.clip(f_s, MIN_FREQUENCY, MAX_FREQUENCY)
    return BlockField(
        orientation=orientation.astype(np.float32),
        coherence=coherence.astype(np.float32),
        frequency=frequency.astype(np.float32),
        energy=energy.astype(np.float32),
        total_energy=total.astype(np.float32),
    )


def sample_blocks(values: NDArray[np.float32], rc: NDArray[np.number]) -> NDArray[np.float32]:
    """Bilinear interpolation of a per-block map at pixel positions.

    Parameters
    ----------
    values : (R, C) ndarray of float32
    rc : (K, 2) ndarray
        (row, col) pixel positions.

    Returns
    -------
    (K,) ndarray of float32
    """
    coords = (np.asarray(rc, dtype=np.float32).T - (STEP - 1) / 2) / STEP
    out = ndimage.map_coordinates(values, coords, order=1, mode="nearest")
    return np.asarray(out, dtype=np.float32)


def sample_orientation(
    orientation: NDArray[np.float32], rc: NDArray[np.number]
) -> NDArray[np.float32]:
    """Interpolate a block orientation field (modulo pi) at pixel positions.

    Parameters
    ----------
    orientation : (R, C) ndarray of float32
    rc : (K, 2) ndarray
        (row, col) pixel positions.

    Returns
    -------
    (K,) ndarray of float32
        Orientations in [0, pi), interpolated as doubled-angle vectors.
    """
    c = sample_blocks(np.cos(2 * orientation), rc)
    s = sample_blocks(np.sin(2 * orientation), rc)
    return np.mod(0.5 * np.arctan2(s, c), np.pi).astype(np.float32)
