"""ImageFinger on real FVC2002 images, and its refusal of files that are no fingerprint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dr_sim.fingers import SENSOR_SHAPE, FingerImageError, FingerSource, ImageFinger
from PIL import Image

from .measures import aligned_correlation


def _fvc(shared_data: Path, db: str, name: str) -> Path:
    return shared_data / "fvc2002" / db / name


def test_fvc_image_becomes_a_module_image(shared_data: Path) -> None:
    finger = ImageFinger(_fvc(shared_data, "db1_b", "101_1.tif"))
    assert isinstance(finger, FingerSource)
    assert finger.dpi == 500.0  # the TIFF tag says 1 dpi; the set's nominal value wins
    image = finger.capture(np.random.default_rng(0))
    assert image.shape == SENSOR_SHAPE
    assert image.dtype == np.uint8
    assert set(np.unique(image).tolist()) <= {17 * k for k in range(16)}
    # The crop is centred on the print: the centre holds ridges (contrast), not background.
    centre = image[94:194, 78:178].astype(np.float64)
    assert centre.std() > 30


def test_resolution_is_taken_from_the_set_and_resampled(shared_data: Path) -> None:
    path = _fvc(shared_data, "db2_b", "101_1.tif")
    default = ImageFinger(path)
    assert default.dpi == 569.0
    still = {"max_shift": 0.0, "max_rotation": 0.0, "noise": 0.0}
    native = ImageFinger(path, dpi=508.0, **still)
    resampled = ImageFinger(path, **still)
    # 569 -> 508 dpi shrinks the print by 11 %: the two views differ, yet show the same finger.
    a = native.capture(np.random.default_rng(0))
    b = resampled.capture(np.random.default_rng(0))
    assert not np.array_equal(a, b)
    with Image.open(path) as img:
        height = img.size[1]
    assert resampled._image.shape[0] == pytest.approx(height * 508 / 569, abs=1)


def test_captures_move_a_little_and_stay_the_same_finger(shared_data: Path) -> None:
    finger = ImageFinger(_fvc(shared_data, "db1_b", "102_1.tif"))
    other = ImageFinger(_fvc(shared_data, "db1_b", "103_1.tif"))
    a = finger.capture(np.random.default_rng(1))
    b = finger.capture(np.random.default_rng(2))
    assert not np.array_equal(a, b)
    assert np.array_equal(a, finger.capture(np.random.default_rng(1)))
    angles = np.arange(-4.0, 4.1, 2.0)
    same = aligned_correlation(a, b, angles=angles)
    different = aligned_correlation(a, other.capture(np.random.default_rng(2)), angles=angles)
    assert same > 0.5
    assert same > different + 0.2


def test_png_with_a_plausible_dpi_tag(tmp_path: Path, shared_data: Path) -> None:
    with Image.open(_fvc(shared_data, "db3_b", "101_1.tif")) as img:
        img.save(tmp_path / "finger.png", dpi=(1000, 1000))
    finger = ImageFinger(tmp_path / "finger.png")
    assert finger.dpi == pytest.approx(1000.0, abs=1)
    assert finger.capture(np.random.default_rng(0)).shape == SENSOR_SHAPE


def test_16_bit_image_is_scaled_not_clipped(tmp_path: Path, shared_data: Path) -> None:
    path = _fvc(shared_data, "db1_b", "101_1.tif")
    with Image.open(path) as img:
        grey = np.asarray(img, dtype=np.uint16)
    Image.fromarray(grey * 257).save(tmp_path / "deep.png")  # 16-bit, same picture
    still = {"max_shift": 0.0, "max_rotation": 0.0, "noise": 0.0}
    deep = ImageFinger(tmp_path / "deep.png", dpi=500.0, **still)
    plain = ImageFinger(path, **still)
    rng = np.random.default_rng(0)
    assert np.array_equal(deep.capture(rng), plain.capture(rng))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FingerImageError, match="no such file") as info:
        ImageFinger(tmp_path / "absent.png")
    assert info.value.path == tmp_path / "absent.png"


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture")
    with pytest.raises(FingerImageError, match="not a readable image"):
        ImageFinger(path)


def test_blank_image(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300), 200, dtype=np.uint8)).save(path)
    with pytest.raises(FingerImageError, match="blank"):
        ImageFinger(path)


def test_tiny_image(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(path)
    with pytest.raises(FingerImageError, match="too small"):
        ImageFinger(path)


def test_bad_dpi(shared_data: Path) -> None:
    with pytest.raises(ValueError, match="dpi"):
        ImageFinger(_fvc(shared_data, "db1_b", "101_1.tif"), dpi=10.0)
