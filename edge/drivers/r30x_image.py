"""The module's 4-bit image format <-> 8-bit numpy images.

The image buffer is 256 columns x 288 rows, 4 bits per pixel, two pixels per byte with the
high nibble the left pixel. A host scales each nibble by 17 (0x0 -> 0, 0xF -> 255).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edge.drivers.r30x_commands import IMAGE_BYTES, IMAGE_COLS, IMAGE_ROWS

__all__ = ["pack_image", "unpack_image"]


def unpack_image(data: bytes) -> NDArray[np.uint8]:
    """Decode the bytes of an UpImage transfer into an 8-bit image.

    Parameters
    ----------
    data : bytes
        Exactly 36,864 bytes, two pixels per byte, high nibble first.

    Returns
    -------
    image : (288, 256) ndarray of uint8
        Rows x columns; values are multiples of 17.
    """
    if len(data) != IMAGE_BYTES:
        raise ValueError(f"an image is {IMAGE_BYTES} bytes, got {len(data)}")
    packed = np.frombuffer(data, dtype=np.uint8)
    pixels = np.empty(packed.size * 2, dtype=np.uint8)
    pixels[0::2] = packed >> 4
    pixels[1::2] = packed & 0x0F
    pixels *= 17
    return pixels.reshape(IMAGE_ROWS, IMAGE_COLS)


def pack_image(image: NDArray[np.uint8]) -> bytes:
    """Encode an 8-bit image as the module sends it (4 bits per pixel, rounded).

    Parameters
    ----------
    image : (288, 256) ndarray of uint8

    Returns
    -------
    data : bytes
        36,864 bytes.
    """
    if image.shape != (IMAGE_ROWS, IMAGE_COLS) or image.dtype != np.uint8:
        raise ValueError(
            f"expected a ({IMAGE_ROWS}, {IMAGE_COLS}) uint8 image, got {image.shape} {image.dtype}"
        )
    # Round to the nearest of the 16 levels k * 17.
    nibbles = ((image.astype(np.uint16) + 8) // 17).astype(np.uint8).ravel()
    return ((nibbles[0::2] << 4) | nibbles[1::2]).astype(np.uint8).tobytes()
