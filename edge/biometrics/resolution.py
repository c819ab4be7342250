"""Input checks and resampling to the working resolution of the extractor.

Every stage of the extractor is tuned in millimetres of skin, expressed at one working
resolution (500 dpi, the resolution of most live-scan sensors and of FVC data). An image taken
at another resolution is resampled once, here, and minutiae are mapped back to its pixels at
the end, so that no stage needs a per-sensor constant.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from .errors import InvalidImage, InvalidResolution, NoFingerprint

WORKING_DPI = 500.0
# Resolutions outside this range are not fingerprint sensors (or a unit mistake: dots per cm).
MIN_DPI = 250.0
MAX_DPI = 1200.0
# Smallest image side worth extracting: ~6.5 mm of skin. Largest: 4 inches (a flat thumb
# is well under that; larger arrays are almost certainly not a single finger view).
MIN_SIDE_MM = 6.5
MAX_SIDE_MM = 101.6
# Resampling within this relative tolerance is skipped (R30x modules are 508 dpi).
_RESAMPLE_TOLERANCE = 0.03
# Blank-image test: grey-level spread (standard deviation, 8-bit units) below which there is
# nothing but sensor noise.
MIN_GREY_STD = 4.0


def check_image(image: object, *, dpi: float) -> NDArray[np.uint8]:
    """Validate a fingerprint image and its resolution.

    Parameters
    ----------
    image : (M, N) ndarray of uint8
        Grey image, ridges dark.
    dpi : float
        Resolution in dots per inch.

    Returns
    -------
    image : (M, N) ndarray of uint8
        The same array (not copied).

    Raises
    ------
    InvalidImage
        Not a 2-D uint8 array, or a side too small or too large for a finger at ``dpi``.
    InvalidResolution
        ``dpi`` not finite or outside [250, 1200].
    NoFingerprint
        Blank or saturated image.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImage(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidImage(
            f"image must be 8-bit grey (uint8), got dtype {image.dtype}",
            shape=image.shape,
            dtype=str(image.dtype),
        )
    if image.ndim != 2:
        raise InvalidImage(
            f"image must be 2-D (rows, cols), got shape {image.shape}",
            shape=image.shape,
            dtype=str(image.dtype),
        )
    if not isinstance(dpi, int | float) or not math.isfinite(dpi):
        raise InvalidResolution(f"resolution must be a finite number of dpi, got {dpi!r}", dpi=dpi)
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise InvalidResolution(
            f"resolution {dpi} dpi outside [{MIN_DPI:g}, {MAX_DPI:g}] dpi", dpi=float(dpi)
        )
    px_per_mm = dpi / 25.4
    rows, cols = image.shape
    if min(rows, cols) < MIN_SIDE_MM * px_per_mm:
        raise InvalidImage(
            f"image {rows}x{cols} is too small: at {dpi:g} dpi a side needs at least "
            f"{math.ceil(MIN_SIDE_MM * px_per_mm)} pixels ({MIN_SIDE_MM} mm)",
            shape=image.shape,
            dtype=str(image.dtype),
        )
    if max(rows, cols) > MAX_SIDE_MM * px_per_mm:
        raise InvalidImage(
            f"image {rows}x{cols} is too large for one finger at {dpi:g} dpi "
            f"(limit {math.floor(MAX_SIDE_MM * px_per_mm)} pixels, {MAX_SIDE_MM} mm)",
            shape=image.shape,
            dtype=str(image.dtype),
        )
    spread = float(image[::2, ::2].std())
    if spread < MIN_GREY_STD:
        reason = "saturated" if image.mean() > 250 or image.mean() < 5 else "blank"
        raise NoFingerprint(
            f"image is {reason}: grey-level spread {spread:.1f} < {MIN_GREY_STD}",
            reason=reason,
            value=spread,
        )
    return image


def to_working_resolution(
    image: NDArray[np.uint8], *, dpi: float
) -> tuple[NDArray[np.float32], float]:
    """Resample an image to :data:`WORKING_DPI`.

    Parameters
    ----------
    image : (M, N) ndarray of uint8
    dpi : float

    Returns
    -------
    resampled : (P, Q) ndarray of float32
        Grey levels 0-255, at :data:`WORKING_DPI` (or the input resolution when it is within
        3 % of it).
    scale : float
        Working pixels per input pixel (P ~ M * scale).
    """
    scale = WORKING_DPI / float(dpi)
    grey = image.astype(np.float32)
    if abs(scale - 1.0) <= _RESAMPLE_TOLERANCE:
        return grey, 1.0
    if scale < 1.0:
        # Anti-alias before decimating: keep frequencies under the new Nyquist limit.
        grey = ndimage.gaussian_filter(grey, sigma=0.5 / scale - 0.5 if scale < 0.8 else 0.4)
    out = ndimage.zoom(grey, scale, order=1, grid_mode=True, mode="nearest")
    return out.astype(np.float32, copy=False), scale
