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
# the image's block energies (about -15 dB: the faint edge of a print stays in, bare sensor
# with dust and fixed-pattern noise goes; the band-share test below no longer rejects dark
# patches now that each window's mean is removed before its spectrum, see blocks.py)...
_RELATIVE_ENERGY = 0.03
_REFERENCE_PERCENTILE = 90.0
# Inside the print's convex hull, tiles whose grey-level spread is below this fraction of the
# print's hold no print at all (the analysis windows overlap, so energy leaks into them).
_EMPTY_SPREAD = 0.05
# ...and at least this share of its spectral energy lies in the ridge band.
_MIN_BAND_SHARE = 0.2


def tile_spread(image: NDArray[np.float32]) -> NDArray[np.float32]:
    """Grey-level standard deviation of each ``STEP`` x ``STEP`` tile (the block without the
    overlap of its analysis window).

    Parameters
    ----------
    image : (M, N) ndarray of float32

    Returns
    -------
    (ceil(M / STEP), ceil(N / STEP)) ndarray of float32
    """
    rows, cols = image.shape
    n_r, n_c = -(-rows // STEP), -(-cols // STEP)
    padded = np.pad(image, ((0, n_r * STEP - rows), (0, n_c * STEP - cols)), mode="edge")
    tiles = padded.reshape(n_r, STEP, n_c, STEP)
    return np.asarray(tiles.std(axis=(1, 3)), dtype=np.float32)


def block_mask(field: BlockField, spread: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Foreground blocks.

    Parameters
    ----------
    field : BlockField
    spread : (R, C) ndarray of float32
        Grey-level spread of each block's own tile (see :func:`tile_spread`).

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
        # are part of the finger (their minutiae get a low reliability instead). Blocks with no
        # signal at all stay out: a bay of empty background between two lobes of the print.
        hull = convex_hull_image(mask)  # type: ignore[no-untyped-call]
        mask = hull & (spread > _EMPTY_SPREAD * float(np.percentile(spread, _REFERENCE_PERCENTILE)))
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
