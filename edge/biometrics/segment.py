"""Foreground segmentation: where in the image is there a ridge pattern.

A block is foreground when its ridge-band energy is a sizeable fraction of the energy of the
print's strong blocks and its spectrum is concentrated in the ridge band (background noise and
smudges spread their energy over all frequencies). The block mask is then cleaned with
morphology: holes filled, small islands dropped, keeping the main connected region.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage.morphology import convex_hull_image

from .blocks import STEP, BlockField

# A block is foreground if its ridge energy reaches this fraction of a high percentile of
# the image's block energies...
_RELATIVE_ENERGY = 0.01
_REFERENCE_PERCENTILE = 90.0
# ...and at least this share of its spectral energy lies in the ridge band.
_MIN_BAND_SHARE = 0.2


def block_mask(field: BlockField) -> NDArray[np.bool_]:
    """Foreground blocks.

    Parameters
    ----------
    field : BlockField

    Returns
    -------
    (R, C) ndarray of bool
    """
    energy = field.energy
    reference = float(np.percentile(energy, _REFERENCE_PERCENTILE))
    share = energy / (field.total_energy + np.float32(1e-6))
    mask = (energy > _RELATIVE_ENERGY * reference) & (share > _MIN_BAND_SHARE)
    mask = ndimage.binary_opening(mask, iterations=1, border_value=0)
    mask = ndimage.binary_closing(np.pad(mask, 2), iterations=2)[2:-2, 2:-2]
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        # Keep the main region and any region at least a quarter of its size (a print split
        # by a crease stays whole; specks of dirt go).
        keep = sizes >= max(sizes.max() // 4, 1)
        keep[0] = False
        mask = keep[labels]
    if mask.any():
        # A fingertip's contact area is convex: dark smudges, creases and dry patches inside it
        # are part of the finger (their minutiae get a low reliability instead).
        mask = convex_hull_image(mask)
    return np.asarray(mask, dtype=bool)


def pixel_mask(mask: NDArray[np.bool_], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Expand a block mask to pixels.

    Parameters
    ----------
    mask : (R, C) ndarray of bool
    shape : tuple of int
        Image shape (M, N), with R = ceil(M / STEP) and C = ceil(N / STEP).

    Returns
    -------
    (M, N) ndarray of bool
    """
    full = np.repeat(np.repeat(mask, STEP, axis=0), STEP, axis=1)
    return np.ascontiguousarray(full[: shape[0], : shape[1]])
