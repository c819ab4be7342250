"""Minutiae detection: drawn minutiae found at the right place and angle; cleaning rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.biometrics import MinutiaKind, extract
from edge.biometrics.minutiae import (
    BIFURCATION,
    ENDING,
    RawMinutiae,
    crossing_numbers,
    remove_false_minutiae,
)
from tests.fixtures.biometrics import fork, parallel_ridges


def _angle_error(a: float, b: float) -> float:
    return abs((a - b + math.pi) % (2 * math.pi) - math.pi)


@pytest.mark.parametrize("ending", [True, False])
@pytest.mark.parametrize("direction", [0.0, 1.0, 2.5, 4.0, 5.5])
def test_drawn_minutia_found_at_place_and_angle(ending: bool, direction: float) -> None:
    image = fork(centre=(120, 136), direction=direction, ending=ending)
    found = extract(image, dpi=500).minutiae
    assert found, "no minutia found"
    nearest = min(found, key=lambda m: math.hypot(m.x - 136, m.y - 120))
    assert math.hypot(nearest.x - 136, nearest.y - 120) <= 6
    assert nearest.kind == (MinutiaKind.ENDING if ending else MinutiaKind.BIFURCATION)
    assert _angle_error(nearest.angle, direction) < math.radians(20)


def test_parallel_ridges_have_no_minutiae() -> None:
    assert extract(parallel_ridges(normal=0.3), dpi=500).minutiae == ()


def test_crossing_numbers_of_a_small_skeleton() -> None:
    skeleton = np.zeros((9, 9), dtype=bool)
    skeleton[4, 1:8] = True  # a horizontal line ...
    skeleton[1:4, 4] = True  # ... with a branch up from its middle
    rc, cn = crossing_numbers(skeleton)
    found = {(int(r), int(c)): int(k) for (r, c), k in zip(rc, cn, strict=True)}
    assert found == {(4, 1): ENDING, (4, 7): ENDING, (1, 4): ENDING, (4, 4): BIFURCATION}


def _raw(points: list[tuple[float, float, float, int]]) -> RawMinutiae:
    a = np.array(points, dtype=np.float32)
    return RawMinutiae(rc=a[:, :2], angle=a[:, 2], kind=a[:, 3].astype(np.int8))


def test_false_minutiae_rules() -> None:
    period = 9.0
    raw = _raw(
        [
            (50, 50, 0.0, ENDING),  # alone: kept
            (50, 150, 0.0, ENDING),  # a spur: ending next to a bifurcation, both go
            (53, 152, 0.0, BIFURCATION),
            (150, 50, 0.0, ENDING),  # a break: two endings facing each other, both go
            (150, 64, math.pi, ENDING),
            (150, 150, 0.0, BIFURCATION),  # near the border: goes
        ]
    )
    border = np.array([40, 40, 40, 40, 40, 3], dtype=np.float32)
    kept = remove_false_minutiae(raw, period=period, border_distance=border)
    assert kept.rc.tolist() == [[50.0, 50.0]]
