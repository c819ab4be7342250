"""What every finger source produces: an R30x module image.

The R30x / ZFM / AS608 optical modules deliver 256 x 288 pixels (columns x rows) at 508 dpi,
4 bits per pixel; hosts scale each nibble by 17 (see /work/shared/R30X-PROTOCOL.md). Ridges are
dark on a light background, as on any prism-based optical sensor.
"""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

SENSOR_SHAPE: Final = (288, 256)
"""(rows, cols) of a module image."""

SENSOR_DPI: Final = 508.0
"""Resolution of a module image, in pixels per inch."""


@runtime_checkable
class FingerSource(Protocol):
    """Something a simulated sensor can image: each capture is a fresh impression."""

    def capture(self, rng: np.random.Generator) -> NDArray[np.uint8]:
        """Return a (288, 256) uint8 module image, values ``17 * k`` with ``k`` in 0..15."""
        ...


def quantise_4bit(image: NDArray[np.floating] | NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Quantise a grey image to the module's 4 bits per pixel, expanded back to 8 bits.

    The module keeps the high nibble of its 8-bit sample and the host multiplies that nibble by
    17, so 0 stays 0 and 255 stays 255.

    Parameters
    ----------
    image : (M, N) ndarray
        uint8 grey levels, or floats in [0, 255] (clipped, then truncated like the module's ADC).

    Returns
    -------
    (M, N) ndarray of uint8
        Values in ``{0, 17, 34, ..., 255}``.

    Examples
    --------
    >>> quantise_4bit(np.array([[0, 15, 16, 255]], dtype=np.uint8)).tolist()
    [[0, 0, 17, 255]]
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {image.shape}")
    if image.dtype == np.uint8:
        grey = np.asarray(image, dtype=np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError("image holds NaN or infinite values")
        grey = np.clip(image, 0.0, 255.0).astype(np.uint8)
    else:
        raise ValueError(f"expected uint8 or floating-point pixels, got {image.dtype}")
    return ((grey >> 4) * 17).astype(np.uint8)
