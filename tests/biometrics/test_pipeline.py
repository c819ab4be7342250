"""The extraction pipeline on real images, and its errors on bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge.biometrics import (
    BiometricError,
    Extraction,
    FingerPosition,
    InvalidImage,
    InvalidResolution,
    MinutiaKind,
    NoFingerprint,
    extract,
)
from tests.fixtures.biometrics import FVC_DPI, fvc_image


@pytest.fixture(scope="module")
def db1_image(shared_data: Path) -> np.ndarray:
    return fvc_image(shared_data, "db1_b", "101_1")


def test_extract_real_image(db1_image: np.ndarray) -> None:
    found = extract(db1_image, dpi=500)
    assert isinstance(found, Extraction)
    assert 15 <= len(found.minutiae) <= 120
    rows, cols = db1_image.shape
    for m in found.minutiae:
        assert 0 <= m.x < cols
        assert 0 <= m.y < rows
        assert 0.0 <= m.angle < 2 * np.pi
        assert m.kind in (MinutiaKind.ENDING, MinutiaKind.BIFURCATION)
        # Minutiae lie on the finger, not on the white background of the optical sensor.
        assert db1_image[max(m.y - 8, 0) : m.y + 9, max(m.x - 8, 0) : m.x + 9].min() < 128
    t = found.template
    assert (t.width, t.height, t.dpi) == (cols, rows, 500.0)
    assert t.minutiae == found.minutiae
    assert t.position == FingerPosition.UNKNOWN
    assert t.quality == found.quality.score
    assert found.mask.shape == db1_image.shape
    assert found.mask.mean() > 0.2
    assert dataclasses.replace(t, position=FingerPosition.RIGHT_INDEX).minutiae == t.minutiae


def test_resolution_is_honoured(shared_data: Path) -> None:
    image = fvc_image(shared_data, "db2_b", "101_1")
    found = extract(image, dpi=FVC_DPI["db2_b"])
    assert found.scale == pytest.approx(500 / 569, rel=1e-3)
    assert found.mask.shape == (
        round(image.shape[0] * found.scale),
        round(image.shape[1] * found.scale),
    )
    assert all(0 <= m.x < image.shape[1] and 0 <= m.y < image.shape[0] for m in found.minutiae)
    # A ridge period of ~0.45 mm whatever the pixel size.
    assert 0.35 < found.quality.measures["ridge_period_mm"] < 0.6


def test_r30x_four_bit_image(db1_image: np.ndarray) -> None:
    # The R30x module sends 256x288 images with 16 grey levels, at 508 dpi.
    crop = db1_image[40:328, 60:316] // 16 * 17
    found = extract(crop.astype(np.uint8), dpi=508)
    assert len(found.minutiae) >= 10


@pytest.mark.parametrize(
    ("image", "dpi", "error", "words"),
    [
        (np.zeros((300, 300), np.float32), 500, InvalidImage, "uint8"),
        (np.zeros((300, 300, 3), np.uint8), 500, InvalidImage, "2-D"),
        (np.zeros((40, 300), np.uint8), 500, InvalidImage, "too small"),
        (np.zeros((5000, 300), np.uint8), 500, InvalidImage, "too large"),
        ([[0, 1], [2, 3]], 500, InvalidImage, "numpy array"),
        (np.full((300, 300), 255, np.uint8), 500, NoFingerprint, "saturated"),
        (np.full((300, 300), 130, np.uint8), 500, NoFingerprint, "blank"),
        (np.zeros((300, 300), np.uint8), float("nan"), InvalidResolution, "finite"),
        (np.zeros((300, 300), np.uint8), 50.0, InvalidResolution, "outside"),
    ],
)
def test_bad_input_is_refused_clearly(
    image: object, dpi: float, error: type[BiometricError], words: str
) -> None:
    with pytest.raises(error, match=words) as caught:
        extract(image, dpi=dpi)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)


def test_noise_is_no_fingerprint() -> None:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (300, 300)).astype(np.uint8)
    with pytest.raises(NoFingerprint) as caught:
        extract(noise, dpi=500)
    assert caught.value.reason == "no_ridges"
