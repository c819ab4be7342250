"""PNG previews: they decode, and the marks sit where the minutiae are."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from edge.biometrics.errors import InvalidImage
from edge.biometrics.evaluation import load_grey_image
from edge.biometrics.iso19794 import decode_template
from edge.biometrics.preview import QUALITY_COLOURS, mark_centre, quality_colour, render_preview
from edge.biometrics.types import Minutia, MinutiaKind

GREEN, ORANGE, RED = (colour for _, colour in QUALITY_COLOURS)
GREY = 128


def _decode(png: bytes) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.format == "PNG"
        return np.asarray(picture.convert("RGB"))


def _pixel(rgb: NDArray[np.uint8], x: float, y: float) -> tuple[int, int, int]:
    r, g, b = rgb[round(y), round(x)]
    return (int(r), int(g), int(b))


def _flat(rows: int = 60, cols: int = 80) -> NDArray[np.uint8]:
    return np.full((rows, cols), GREY, dtype=np.uint8)


def test_size_and_background() -> None:
    rgb = _decode(render_preview(_flat(), [], scale=1.5))
    assert rgb.shape == (90, 120, 3)
    assert (rgb == GREY).all()


def test_ending_is_a_circle_bifurcation_a_square() -> None:
    ending = Minutia(x=20, y=20, angle=math.pi, kind=MinutiaKind.ENDING, quality=90)
    bifurcation = Minutia(x=50, y=30, angle=math.pi, kind=MinutiaKind.BIFURCATION, quality=90)
    radius, scale = 6, 2.0
    rgb = _decode(
        render_preview(_flat(), [ending, bifurcation], scale=scale, radius=radius, line_length=0)
    )
    for minutia in (ending, bifurcation):
        cx, cy = mark_centre(minutia, scale=scale)
        # Both shapes pass through the points straight above and below the centre ...
        assert _pixel(rgb, cx, cy - radius) == GREEN
        assert _pixel(rgb, cx, cy + radius) == GREEN
        # ... and leave the centre itself alone.
        assert _pixel(rgb, cx, cy) == (GREY,) * 3
    # Only the square reaches its corners.
    cx, cy = mark_centre(bifurcation, scale=scale)
    assert _pixel(rgb, cx + radius, cy + radius) == GREEN
    cx, cy = mark_centre(ending, scale=scale)
    assert _pixel(rgb, cx + radius, cy + radius) == (GREY,) * 3


@pytest.mark.parametrize(
    ("angle", "step"),
    [(0.0, (1, 0)), (math.pi / 2, (0, -1)), (math.pi, (-1, 0)), (3 * math.pi / 2, (0, 1))],
)
def test_direction_line_points_along_the_angle(angle: float, step: tuple[int, int]) -> None:
    minutia = Minutia(x=40, y=30, angle=angle, kind=MinutiaKind.ENDING, quality=10)
    radius, length = 3, 15
    rgb = _decode(render_preview(_flat(), [minutia], scale=1.0, radius=radius, line_length=length))
    cx, cy = mark_centre(minutia, scale=1.0)
    tip = (cx + step[0] * (length - 1), cy + step[1] * (length - 1))
    opposite = (cx - step[0] * (length - 1), cy - step[1] * (length - 1))
    assert _pixel(rgb, *tip) == RED
    assert _pixel(rgb, *opposite) == (GREY,) * 3


@pytest.mark.parametrize(("quality", "colour"), [(100, GREEN), (60, GREEN), (59, ORANGE), (0, RED)])
def test_colour_by_quality(quality: int, colour: tuple[int, int, int]) -> None:
    assert quality_colour(quality) == colour


def test_real_image_with_the_iso_example_minutiae(shared_data: Path, iso_example: bytes) -> None:
    # The example record is of a 512x512 image: draw its minutiae on a real print cropped to
    # that frame (padded), and find a mark at every minutia.
    image = load_grey_image(shared_data / "fvc2002" / "db1_b" / "101_1.tif")
    frame = np.full((512, 512), 255, dtype=np.uint8)
    frame[: image.shape[0], : image.shape[1]] = image[:512, :512]
    view = decode_template(iso_example).views[0]
    radius = 4
    rgb = _decode(render_preview(frame, view.minutiae, scale=1.0, radius=radius))
    for minutia in view.minutiae:
        cx, cy = mark_centre(minutia, scale=1.0)
        window = rgb[
            max(0, round(cy) - radius) : round(cy) + radius + 1,
            max(0, round(cx) - radius) : round(cx) + radius + 1,
        ]
        colour = np.array(quality_colour(minutia.quality), dtype=np.uint8)
        assert (window == colour).all(axis=-1).any(), minutia


def test_bad_inputs() -> None:
    with pytest.raises(InvalidImage, match="2-D uint8"):
        render_preview(np.zeros((4, 4), dtype=np.float32), [])
    with pytest.raises(InvalidImage):
        render_preview(np.zeros((4, 4, 3), dtype=np.uint8), [])
    with pytest.raises(ValueError, match="scale"):
        render_preview(_flat(), [], scale=0.0)
    with pytest.raises(ValueError, match="exceeds"):
        render_preview(_flat(), [], scale=1000.0)
