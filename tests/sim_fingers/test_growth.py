"""Ridge growth on small uniform fields: the pattern takes the asked direction and spacing."""

from __future__ import annotations

import numpy as np
import pytest
from dr_sim.fingers.growth import gabor_bank, grow_ridges

from .measures import angle_difference, gradient_orientation


@pytest.mark.parametrize(("angle", "period"), [(0.3, 8.0), (1.9, 11.0)])
def test_uniform_field_gives_straight_ridges(angle: float, period: float) -> None:
    # Filtering by FFT grows on a torus: a straight pattern must wrap around it, which
    # quantises its direction to ~1/(size * frequency) radians (3 degrees here).
    shape = (192, 192)
    ridges = grow_ridges(
        np.full(shape, angle), np.full(shape, period), rng=np.random.default_rng(1)
    )
    assert ridges.dtype == np.float32
    assert ridges.shape == shape
    assert float(np.abs(ridges).mean()) > 0.8  # saturated everywhere: grown, not faded
    measured = gradient_orientation(ridges)[16:-16, 16:-16]
    assert float(np.degrees(np.median(angle_difference(measured, np.full(1, angle))))) < 4.0
    # Spacing: count sign changes along the normal to the ridges through the centre.
    t = np.arange(-50.0, 50.0)
    rows = np.round(96 - t * np.cos(angle)).astype(int)  # normal = (-cos, -sin) in (row, col)
    cols = np.round(96 - t * np.sin(angle)).astype(int)
    crossings = np.count_nonzero(np.diff(np.sign(ridges[rows, cols])) != 0)
    assert crossings / 2 == pytest.approx(100 / period, abs=1.5)


def test_bank_is_zero_mean_and_peaks_at_the_ridge_frequency() -> None:
    bank = gabor_bank(
        (64, 64), angles=np.array([0.0]), periods=np.array([8.0]), bandwidth=0.3, elongation=1.6
    )
    assert bank.shape == (1, 1, 64, 33)
    assert bank[0, 0, 0, 0] == 0.0
    # Horizontal ridges wave along the rows: the peak is at 64 / 8 = 8 cycles down the rows.
    row, col = np.unravel_index(int(np.argmax(bank[0, 0])), bank.shape[2:])
    assert (int(row), int(col)) in {(8, 0), (56, 0)}


def test_refuses_mismatched_or_empty_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="shape"):
        grow_ridges(np.zeros((8, 8)), np.full((8, 9), 9.0), rng=rng)
    with pytest.raises(ValueError, match="seed"):
        grow_ridges(np.zeros((8, 8)), np.full((8, 8), 9.0), rng=rng, seeds=0)
