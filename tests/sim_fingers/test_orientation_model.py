"""The orientation models, and the agreement of grown ridges with them."""

from __future__ import annotations

import numpy as np
import pytest
from dr_sim.fingers import FingerClass, master_print
from dr_sim.fingers.orientation import (
    ArgCorrection,
    SingularPoints,
    arch_orientation,
    zero_pole_orientation,
)

from .measures import angle_difference, gradient_orientation


def _turning(field: np.ndarray, centre: tuple[int, int], radius: int) -> float:
    """Total rotation of the ridge direction around a circle, in half turns (the index x 2)."""
    t = np.linspace(0, 2 * np.pi, 361)
    r = np.round(centre[0] - radius * np.sin(t)).astype(int)
    c = np.round(centre[1] + radius * np.cos(t)).astype(int)
    angles = field[r, c]
    steps = np.diff(angles)
    steps = (steps + np.pi / 2) % np.pi - np.pi / 2  # undirected: unwrap modulo pi
    return float(steps.sum() / np.pi)


@pytest.mark.parametrize("correct", [False, True])
def test_core_and_delta_have_their_index(correct: bool) -> None:
    rng = np.random.default_rng(0)
    corrections = (ArgCorrection(sin_terms=(0.1, -0.05), cos_terms=(0.08,)),) if correct else ()
    points = SingularPoints(
        cores=((60.0, 60.0),),
        deltas=((140.0, 100.0),),
        core_corrections=corrections,
        delta_corrections=corrections,
    )
    field = zero_pole_orientation((200, 200), points, base_angle=float(rng.uniform(0, 1)))
    assert field.min() >= 0.0
    assert field.max() < np.pi
    assert _turning(field, (60, 60), 20) == pytest.approx(1.0, abs=0.02)
    assert _turning(field, (140, 100), 20) == pytest.approx(-1.0, abs=0.02)
    assert _turning(field, (100, 160), 20) == pytest.approx(0.0, abs=0.02)


def test_arch_has_no_singular_point_and_arches_up() -> None:
    field = arch_orientation((200, 200), centre=(100.0, 100.0), height=50.0, width=40.0, reach=60.0)
    for centre in ((100, 100), (60, 100), (140, 60)):
        assert _turning(field, centre, 30) == pytest.approx(0.0, abs=0.02)
    # Left of the top, ridges rise to the right (angle in (0, pi/2)); right of it they fall.
    assert 0.1 < field[100, 60] < np.pi / 2
    assert np.pi / 2 < field[100, 140] < np.pi - 0.1
    assert angle_difference(field[100, 100:101], np.zeros(1))[0] < 0.01


def test_arch_rejects_a_bump_that_would_fold() -> None:
    with pytest.raises(ValueError, match="height"):
        arch_orientation((10, 10), centre=(5.0, 5.0), height=100.0, width=5.0, reach=10.0)


@pytest.mark.parametrize(
    ("identity", "finger_class"),
    [(21, FingerClass.LEFT_LOOP), (22, FingerClass.WHORL), (23, FingerClass.ARCH)],
)
def test_grown_ridges_follow_the_model(identity: int, finger_class: FingerClass) -> None:
    master = master_print(identity, finger_class=finger_class)
    measured = gradient_orientation(master.ridges)
    error = angle_difference(measured, master.orientation)

    height, width = master.ridges.shape
    rows, cols = np.indices((height, width))
    keep = master.mask > 0.99
    keep &= (rows > 20) & (rows < height - 20) & (cols > 20) & (cols < width - 20)
    for r, c in master.singular_points.cores + master.singular_points.deltas:
        keep &= np.hypot(rows - r, cols - c) > 30
    assert keep.sum() > 20_000
    assert float(np.degrees(np.median(error[keep]))) < 6.0
    assert float(np.degrees(np.quantile(error[keep], 0.9))) < 15.0


def test_measure_can_tell_a_wrong_orientation() -> None:
    # The check above is not vacuous: a master does not follow another finger's model.
    a, b = master_print(21, finger_class=FingerClass.LEFT_LOOP), master_print(22)
    error = angle_difference(gradient_orientation(a.ridges), b.orientation)
    assert float(np.degrees(np.median(error[a.mask > 0.99]))) > 10.0


def test_ridge_period_matches_the_model() -> None:
    master = master_print(21, finger_class=FingerClass.LEFT_LOOP)
    # Dominant spatial frequency of a central patch (Hann window, zero-padded spectrum peak)
    # against the model's mean frequency there.
    rows, cols = slice(150, 278), slice(128, 256)
    patch = master.ridges[rows, cols].astype(np.float64)
    window = np.outer(np.hanning(128), np.hanning(128))
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2((patch - patch.mean()) * window, (512, 512))))
    fr, fc = np.unravel_index(int(np.argmax(spectrum)), spectrum.shape)
    measured = float(np.hypot(fr - 256, fc - 256) / 512.0)
    model = float(np.mean(1.0 / master.period[rows, cols]))
    assert measured == pytest.approx(model, rel=0.1)
