"""Fingerprint image quality: a 0-100 score, the measures behind it, and advice.

In the spirit of NFIQ 2 (ISO/IEC 29794-4): local measures of the ridge pattern (orientation
certainty, frequency consistency, clarity, contrast) are pooled over the foreground and
combined with global ones (usable area, position, minutiae count and reliability) into one
score that predicts how well the image will match. Each measure is mapped to [0, 1] by a
fixed, documented curve; the score is a weighted geometric mean, so that one failing aspect
(a tiny area, a smudge) pulls the whole score down, as it pulls down matching.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray


class Advice(StrEnum):
    """What the agent can ask the citizen to do to get a better capture."""

    PRESS_HARDER = "press_harder"
    PRESS_LIGHTER = "press_lighter"
    CENTRE_FINGER = "centre_finger"
    CLEAN_SENSOR = "clean_sensor"
    MOISTEN_FINGER = "moisten_finger"
    DRY_FINGER = "dry_finger"
    HOLD_STILL = "hold_still"


ADVICE_FR: dict[Advice, str] = {
    Advice.PRESS_HARDER: "Appuyez un peu plus fort sur le capteur.",
    Advice.PRESS_LIGHTER: "Appuyez moins fort sur le capteur.",
    Advice.CENTRE_FINGER: "Placez le doigt bien au centre du capteur, à plat.",
    Advice.CLEAN_SENSOR: "Nettoyez la vitre du capteur, puis recommencez.",
    Advice.MOISTEN_FINGER: "Le doigt est trop sec : soufflez dessus ou humidifiez-le légèrement.",
    Advice.DRY_FINGER: "Le doigt est trop humide : essuyez-le, puis recommencez.",
    Advice.HOLD_STILL: "Ne bougez pas le doigt pendant la prise.",
}


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Quality of one fingerprint image.

    Attributes
    ----------
    score : int
        0 (unusable) to 100 (excellent).
    measures : dict of str to float
        The measures behind the score (see :func:`assess`).
    advice : tuple of Advice
        What to change for the next capture, most useful first; empty when nothing to say.
    """

    score: int
    measures: dict[str, float] = field(default_factory=dict)
    advice: tuple[Advice, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.score <= 100:
            raise ValueError(f"quality score must be 0-100, got {self.score}")

    @property
    def advice_fr(self) -> tuple[str, ...]:
        """The advice in French, for the agent console."""
        return tuple(ADVICE_FR[a] for a in self.advice)


def _ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high``, linear between (either order)."""
    t = (value - low) / (high - low)
    return min(max(t, 0.0), 1.0)


# Weights of the normalised measures in the score's geometric mean.
_WEIGHTS: Mapping[str, float] = {
    "area": 1.5,
    "orientation_certainty": 1.0,
    "clarity": 1.0,
    "frequency_consistency": 0.5,
    "contrast": 0.5,
    "minutiae": 1.0,
    "minutiae_reliability": 1.0,
}


def assess(
    *,
    grey: NDArray[np.float32],
    mask: NDArray[np.bool_],
    block_mask: NDArray[np.bool_],
    coherence: NDArray[np.float32],
    frequency: NDArray[np.float32],
    band_share: NDArray[np.float32],
    minutiae_quality: NDArray[np.float32],
    px_per_mm: float,
) -> QualityReport:
    """Measure the quality of an analysed fingerprint image.

    Parameters
    ----------
    grey : (M, N) ndarray of float32
        The image at working resolution, grey levels 0-255, ridges dark.
    mask : (M, N) ndarray of bool
        Foreground pixels.
    block_mask : (R, C) ndarray of bool
        Foreground blocks.
    coherence, frequency, band_share : (R, C) ndarray of float32
        Per block: orientation coherence, ridge frequency (cycles/pixel), share of the
        spectral energy in the ridge band.
    minutiae_quality : (K,) ndarray of float32
        Reliability of each kept minutia in [0, 1].
    px_per_mm : float
        Working resolution.

    Returns
    -------
    QualityReport
    """
    fg_blocks = int(block_mask.sum())
    area_mm2 = float(mask.sum()) / px_per_mm**2
    measures: dict[str, float] = {"foreground_area_mm2": round(area_mm2, 1)}
    measures["foreground_fraction"] = round(float(mask.mean()), 3)
    if fg_blocks == 0:
        measures.update(
            contrast=0.0,
            orientation_certainty=0.0,
            frequency_consistency=0.0,
            clarity=0.0,
            minutiae_count=0.0,
            minutiae_quality=0.0,
        )
        return QualityReport(score=0, measures=measures, advice=(Advice.CENTRE_FINGER,))
    fg = grey[mask]
    dark, light = np.percentile(fg[::3], [5.0, 95.0])  # a third of the pixels is plenty
    contrast = float(light - dark)
    measures["contrast"] = round(contrast, 1)
    measures["mean_grey"] = round(float(fg.mean()), 1)
    measures["orientation_certainty"] = round(float(coherence[block_mask].mean()), 3)
    f = frequency[block_mask]
    measures["ridge_period_mm"] = round(float(1.0 / np.median(f)) / px_per_mm, 3)
    measures["frequency_consistency"] = round(float(1.0 - f.std() / f.mean()), 3)
    measures["clarity"] = round(float(band_share[block_mask].mean()), 3)
    rows, cols = np.nonzero(block_mask)
    centre_r = ((rows.mean() + 0.5) / block_mask.shape[0]) - 0.5
    centre_c = ((cols.mean() + 0.5) / block_mask.shape[1]) - 0.5
    measures["centre_offset"] = round(float(math.hypot(centre_r, centre_c)), 3)
    measures["minutiae_count"] = float(minutiae_quality.shape[0])
    reliable = minutiae_quality[minutiae_quality >= 0.5]
    measures["minutiae_quality"] = round(
        float(minutiae_quality.mean()) if minutiae_quality.size else 0.0, 3
    )

    # Normalised measures, 0 (bad) to 1 (good). Anchors in physical units: a usable plain
    # impression covers 60+ mm2 of skin; ~25 reliable minutiae make a match certain.
    normal = {
        "area": _ramp(area_mm2, 20.0, 90.0),
        "orientation_certainty": _ramp(measures["orientation_certainty"], 0.25, 0.75),
        "clarity": _ramp(measures["clarity"], 0.35, 0.8),
        "frequency_consistency": _ramp(measures["frequency_consistency"], 0.6, 0.92),
        "contrast": _ramp(contrast, 15.0, 80.0),
        "minutiae": _ramp(float(reliable.shape[0]), 6.0, 30.0),
        "minutiae_reliability": _ramp(measures["minutiae_quality"], 0.3, 0.75),
    }
    total_weight = sum(_WEIGHTS.values())
    log_score = sum(w * math.log(0.02 + 0.98 * normal[k]) for k, w in _WEIGHTS.items())
    score = round(100.0 * math.exp(log_score / total_weight))
    for key, value in normal.items():
        measures[f"norm_{key}"] = round(value, 3)
    return QualityReport(
        score=min(max(score, 0), 100), measures=measures, advice=_advise(measures, normal)
    )


def _advise(measures: Mapping[str, float], normal: Mapping[str, float]) -> tuple[Advice, ...]:
    advice: list[Advice] = []
    if normal["area"] < 0.6 or measures["centre_offset"] > 0.2:
        advice.append(Advice.CENTRE_FINGER)
    weak = normal["clarity"] < 0.5 or normal["orientation_certainty"] < 0.5
    mean_grey = measures["mean_grey"]
    if weak or normal["contrast"] < 0.5:
        # Dry skin leaves broken, light ridges; wet skin or heavy pressure floods the valleys.
        if mean_grey > 150.0:
            advice.extend((Advice.PRESS_HARDER, Advice.MOISTEN_FINGER))
        elif mean_grey < 90.0:
            advice.extend((Advice.PRESS_LIGHTER, Advice.DRY_FINGER))
        else:
            advice.append(Advice.CLEAN_SENSOR)
    return tuple(advice)
