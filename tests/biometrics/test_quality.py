"""Quality: the score falls with the image, the advice says why, in French."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from edge.biometrics import ADVICE_FR, Advice, QualityReport, extract
from tests.fixtures.biometrics import fvc_image


@pytest.fixture(scope="module")
def good(shared_data: Path) -> np.ndarray:
    return fvc_image(shared_data, "db1_b", "102_1")


def test_good_image_scores_well(good: np.ndarray) -> None:
    report = extract(good, dpi=500).quality
    assert report.score >= 60
    assert report.advice == ()
    for key in (
        "foreground_area_mm2",
        "contrast",
        "orientation_certainty",
        "frequency_consistency",
        "clarity",
        "minutiae_count",
        "minutiae_quality",
    ):
        assert key in report.measures


def test_degraded_images_score_lower(good: np.ndarray) -> None:
    base = extract(good, dpi=500).quality.score
    rng = np.random.default_rng(4)
    smudged = ndimage.gaussian_filter(good.astype(np.float32), 2.5)
    smudged += rng.normal(0, 25, good.shape)
    smudged_img = np.clip(smudged, 0, 255).astype(np.uint8)
    assert extract(smudged_img, dpi=500).quality.score < base - 20
    # Only a corner of the finger on the sensor.
    corner = np.full_like(good, 250)
    corner[:120, :140] = good[150:270, 120:260]
    partial = extract(corner, dpi=500).quality
    assert partial.score < base - 20
    assert Advice.CENTRE_FINGER in partial.advice


def test_dark_flooded_image_gets_pressure_or_moisture_advice(good: np.ndarray) -> None:
    # Wet finger or heavy pressure: valleys filled, image dark, ridges barely visible.
    wet = ndimage.gaussian_filter(good.astype(np.float32), 2.0) * 0.35
    report = extract(np.clip(wet, 0, 255).astype(np.uint8), dpi=500).quality
    assert Advice.PRESS_LIGHTER in report.advice or Advice.DRY_FINGER in report.advice


def test_every_advice_has_french_text() -> None:
    assert set(ADVICE_FR) == set(Advice)
    for text in ADVICE_FR.values():
        assert text
        assert text[0].isupper()
        assert text.endswith(".")
    report = QualityReport(score=10, advice=(Advice.CLEAN_SENSOR,))
    assert report.advice_fr == (ADVICE_FR[Advice.CLEAN_SENSOR],)


@pytest.mark.parametrize("score", [-1, 101])
def test_score_out_of_range_refused(score: int) -> None:
    with pytest.raises(ValueError, match="0-100"):
        QualityReport(score=score)
