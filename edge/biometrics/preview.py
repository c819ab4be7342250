"""A PNG preview of a fingerprint with its minutiae drawn, for the agent's console.

Endings are drawn as circles, bifurcations as squares and minutiae of other types as diamonds,
each with a line in its direction. The colour says how much the extractor trusts the minutia:
green (quality >= 60), orange (30-59), red (below 30), so that an agent sees at a glance
whether a capture is worth keeping.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from .errors import InvalidImage
from .types import Minutia, MinutiaKind

__all__ = ["QUALITY_COLOURS", "mark_centre", "quality_colour", "render_preview"]

# (lowest quality of the band, RGB colour), best band first.
QUALITY_COLOURS: tuple[tuple[int, tuple[int, int, int]], ...] = (
    (60, (0, 200, 0)),
    (30, (255, 150, 0)),
    (0, (230, 0, 0)),
)
# Largest preview side: a console tile, not a poster (also bounds memory on a bad scale).
MAX_PREVIEW_SIDE = 4096
# Zlib level: the preview is made once per capture and shown at once; size matters little.
_PNG_COMPRESS_LEVEL = 3


def quality_colour(quality: int) -> tuple[int, int, int]:
    """The RGB colour of a minutia of the given quality (0-100)."""
    for lowest, colour in QUALITY_COLOURS:
        if quality >= lowest:
            return colour
    return QUALITY_COLOURS[-1][1]


def render_preview(
    image: NDArray[np.uint8],
    minutiae: Sequence[Minutia],
    *,
    scale: float = 2.0,
    radius: int | None = None,
    line_length: int | None = None,
) -> bytes:
    """Draw minutiae over a fingerprint image and encode the result as PNG.

    Parameters
    ----------
    image : (M, N) ndarray of uint8
        Grey image, in the coordinates of the minutiae.
    minutiae : sequence of Minutia
        ``x`` is the column, ``y`` the row; angles counter-clockwise from the x axis with y up.
    scale : float
        Magnification of the preview (the marks are drawn at the magnified size, so they stay
        thin).
    radius : int, optional
        Half-size of a mark in preview pixels (default ``max(3, round(3 * scale))``).
    line_length : int, optional
        Length of the direction line in preview pixels (default ``3 * radius``).

    Returns
    -------
    png : bytes
        An RGB PNG of ``round(M * scale)`` rows and ``round(N * scale)`` columns.

    Raises
    ------
    InvalidImage
        The image is not a 2-D uint8 array.
    ValueError
        The scale is not positive or the preview would be too large.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        shape = getattr(image, "shape", ())
        dtype = str(getattr(image, "dtype", type(image).__name__))
        raise InvalidImage(
            f"preview needs a 2-D uint8 image, got {dtype} of shape {shape}",
            shape=tuple(shape),
            dtype=dtype,
        )
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    rows, cols = image.shape
    out_rows, out_cols = max(1, round(rows * scale)), max(1, round(cols * scale))
    if max(out_rows, out_cols) > MAX_PREVIEW_SIDE:
        raise ValueError(
            f"preview of {out_rows}x{out_cols} pixels exceeds {MAX_PREVIEW_SIDE} per side"
        )
    if radius is None:
        radius = max(3, round(3 * scale))
    if line_length is None:
        line_length = 3 * radius
    if radius < 1 or line_length < 0:
        raise ValueError(f"radius must be >= 1 and line_length >= 0, got {radius}, {line_length}")

    canvas = Image.fromarray(np.ascontiguousarray(image), mode="L")
    if (out_rows, out_cols) != (rows, cols):
        canvas = canvas.resize((out_cols, out_rows), Image.Resampling.BILINEAR)
    canvas = canvas.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for minutia in minutiae:
        _draw_minutia(draw, minutia, scale=scale, radius=radius, line_length=line_length)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def mark_centre(minutia: Minutia, *, scale: float) -> tuple[float, float]:
    """(x, y) of a minutia in preview pixels: the centre of its source pixel, magnified."""
    return ((minutia.x + 0.5) * scale - 0.5, (minutia.y + 0.5) * scale - 0.5)


def _draw_minutia(
    draw: ImageDraw.ImageDraw, minutia: Minutia, *, scale: float, radius: int, line_length: int
) -> None:
    colour = quality_colour(minutia.quality)
    # Pillow truncates float coordinates: round to whole pixels first, or 29.999... lands on 29.
    x, y = mark_centre(minutia, scale=scale)
    cx, cy = round(x), round(y)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if minutia.kind is MinutiaKind.ENDING:
        draw.ellipse(box, outline=colour, width=1)
    elif minutia.kind is MinutiaKind.BIFURCATION:
        draw.rectangle(box, outline=colour, width=1)
    else:
        diamond = [(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)]
        draw.polygon(diamond, outline=colour)
    if line_length == 0:
        return
    # The image's y axis points down, the angle's up: hence the minus sign on the row step.
    end = (
        round(cx + line_length * math.cos(minutia.angle)),
        round(cy - line_length * math.sin(minutia.angle)),
    )
    draw.line([(cx, cy), end], fill=colour, width=1)
