"""Contextual enhancement: each block's spectrum filtered along its ridge flow.

Each window's spectrum is multiplied by a filter tuned to that block: a radial band-pass
centred on the block's ridge frequency, times an angular raised-cosine centred on the block's
ridge normal whose width grows where the orientation is uncertain (near cores and deltas)
(Chikkerur et al. 2007). Filtering in the frequency domain costs one batched inverse FFT for
the whole image, instead of a spatial Gabor convolution per orientation.

The filter deliberately does not also weight the spectrum by its own magnitude (Chikkerur's
optional ``|F|^k`` term): on smudged or noisy blocks that term passes the noise's strongest
components in the band along with the ridges, and measured on FVC2002 (all four sets, six
crops each) the plain contextual filter gave a lower EER on every set (mean 2.9 -> 2.3 %).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.fft
from numpy.typing import NDArray
from scipy import ndimage

from .blocks import WINDOW, BlockField, BlockSpectra, _spectral_grid, _taper, overlap_add

# Relative bandwidth (standard deviation / centre) of the radial Gaussian.
_RADIAL_BANDWIDTH = 0.35
# Angular half-width of the window: narrow along clear parallel ridges, wide where the
# orientation is uncertain so that curved ridges are not cut.
_MIN_ANGULAR_HALF_WIDTH = np.pi / 7
_MAX_ANGULAR_HALF_WIDTH = np.pi / 2.2


@cache
def _doubled_wave_angle() -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    _, angle, _ = _spectral_grid()
    return np.cos(2 * angle).astype(np.float32), np.sin(2 * angle).astype(np.float32)


def enhance(
    spectra: BlockSpectra, field: BlockField, *, where: NDArray[np.bool_] | None = None
) -> NDArray[np.float32]:
    """Filter every block along its ridges and reassemble the image.

    Parameters
    ----------
    spectra : BlockSpectra
        Spectra of an image, from :func:`.blocks.block_spectra`.
    field : BlockField
        Orientation, coherence and frequency of the same blocks.
    where : (R, C) ndarray of bool, optional
        Blocks to enhance (the foreground); the image is zero where neither a block nor any
        of its 8 neighbours is selected (windows overlap). Default: every block.

    Returns
    -------
    (M, N) ndarray of float32
        Enhanced image, ridges positive, zero-mean, with the shape of the analysed image.
    """
    radius, _, _ = _spectral_grid()
    cos2, sin2 = _doubled_wave_angle()
    grid = field.frequency.shape
    if where is None:
        selected = np.ones(grid, dtype=bool)
    else:
        selected = ndimage.binary_dilation(where, structure=np.ones((3, 3), dtype=bool))
    index = np.nonzero(selected)
    f0 = field.frequency[index][:, None, None]
    radial = np.exp(np.float32(-0.5) * ((radius - f0) / (np.float32(_RADIAL_BANDWIDTH) * f0)) ** 2)
    # Angular window on the doubled angle (a real image's spectrum is point-symmetric, so
    # directions are taken modulo pi): with delta the angle between a bin's wave vector and
    # the ridge normal, cos(2 delta) comes from one product, without wrapping angles, and
    # the window is a smooth bump of cos(2 delta) that vanishes at delta = half-width.
    normal2 = 2 * field.orientation[index] + np.float32(np.pi)  # doubled ridge normal
    cos_d = np.cos(normal2)[..., None, None] * cos2 + np.sin(normal2)[..., None, None] * sin2
    half_width = (
        _MIN_ANGULAR_HALF_WIDTH
        + (_MAX_ANGULAR_HALF_WIDTH - _MIN_ANGULAR_HALF_WIDTH) * (1.0 - field.coherence[index]) ** 2
    )
    edge = np.cos(2 * half_width).astype(np.float32)[..., None, None]
    angular = np.clip((cos_d - edge) / (1.0 - edge), 0.0, None) ** 2
    spec = spectra.spectra[index]
    gain = radial * angular
    filtered = scipy.fft.irfft2(spec * gain, s=(WINDOW, WINDOW), workers=1)
    blocks = np.zeros((*grid, WINDOW, WINDOW), dtype=np.float32)
    blocks[index] = filtered.astype(np.float32, copy=False) * _taper()
    return overlap_add(blocks, spectra.shape)
