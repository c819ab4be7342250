"""Minutia directions from branches followed along the skeleton (synthetic skeletons)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from skimage.draw import line

from edge.biometrics.minutiae import (
    BIFURCATION,
    ENDING,
    crossing_numbers,
    trace_branches,
    traced_directions,
)

_SIZE = 64
_CENTRE = (32, 32)


def _draw_ray(skeleton: NDArray[np.bool_], angle: float, length: float) -> None:
    """A digital segment from the centre in direction ``angle`` (image coordinates)."""
    r0, c0 = _CENTRE
    r1 = round(r0 + length * math.sin(angle))
    c1 = round(c0 + length * math.cos(angle))
    rr, cc = line(r0, c0, r1, c1)  # type: ignore[no-untyped-call]
    skeleton[rr, cc] = True


def _angle_error(a: float, b: float) -> float:
    return abs((a - b + math.pi) % (2 * math.pi) - math.pi)


def _minutia_at_centre(skeleton: NDArray[np.bool_], kind: int) -> NDArray[np.intp]:
    rc, cn = crossing_numbers(skeleton)
    found = rc[(cn == kind) & (np.abs(rc - np.array(_CENTRE)).max(axis=1) <= 1)]
    assert found.shape[0] == 1, f"expected one minutia of kind {kind} at the centre: {found}"
    return np.asarray(found, dtype=np.intp)


@pytest.mark.parametrize("direction", np.linspace(0.0, 2 * math.pi, 13)[:-1].tolist())
def test_ending_points_along_its_ridge(direction: float) -> None:
    skeleton = np.zeros((_SIZE, _SIZE), dtype=bool)
    _draw_ray(skeleton, direction, 25)
    rc = _minutia_at_centre(skeleton, ENDING)
    angle, followed = traced_directions(skeleton, rc, np.array([ENDING], np.int8), steps=9)
    assert followed[0]
    assert _angle_error(float(angle[0]), direction) < math.radians(8)


@pytest.mark.parametrize("direction", np.linspace(0.0, 2 * math.pi, 9)[:-1].tolist())
def test_bifurcation_points_between_its_arms(direction: float) -> None:
    skeleton = np.zeros((_SIZE, _SIZE), dtype=bool)
    _draw_ray(skeleton, direction + math.pi, 25)  # stem
    _draw_ray(skeleton, direction + math.radians(50), 25)
    _draw_ray(skeleton, direction - math.radians(50), 25)
    rc = _minutia_at_centre(skeleton, BIFURCATION)
    angle, followed = traced_directions(skeleton, rc, np.array([BIFURCATION], np.int8), steps=9)
    assert followed[0]
    assert _angle_error(float(angle[0]), direction) < math.radians(10)


def test_branches_are_followed_for_the_requested_length() -> None:
    skeleton = np.zeros((_SIZE, _SIZE), dtype=bool)
    _draw_ray(skeleton, 0.3, 25)
    rc = _minutia_at_centre(skeleton, ENDING)
    end, length = trace_branches(skeleton, rc, steps=12)
    assert length.tolist() == [[12, 0, 0]]
    # An ending has one branch: the other two stay at the minutia.
    assert np.array_equal(end[0, 1], rc[0].astype(np.float32))
    # Each step moves to a neighbour, 1 or sqrt(2) pixels, along a straight ridge.
    walked = float(np.hypot(*(end[0, 0] - rc[0])))
    assert 12.0 * 0.95 <= walked <= 12.0 * math.sqrt(2)


def test_short_stub_is_not_followed() -> None:
    skeleton = np.zeros((_SIZE, _SIZE), dtype=bool)
    _draw_ray(skeleton, 1.0, 2)
    rc = _minutia_at_centre(skeleton, ENDING)
    _, followed = traced_directions(skeleton, rc, np.array([ENDING], np.int8), steps=9)
    assert not followed[0]


def test_directions_turn_with_the_skeleton() -> None:
    # Transposing the image swaps rows and columns: a direction a becomes pi/2 - a.
    skeleton = np.zeros((_SIZE, _SIZE), dtype=bool)
    _draw_ray(skeleton, 0.4 + math.pi, 25)
    _draw_ray(skeleton, 0.4 + math.radians(50), 25)
    _draw_ray(skeleton, 0.4 - math.radians(50), 25)
    kinds = np.array([BIFURCATION], np.int8)
    rc = _minutia_at_centre(skeleton, BIFURCATION)
    angle, _ = traced_directions(skeleton, rc, kinds, steps=9)
    transposed = np.ascontiguousarray(skeleton.T)
    flipped, _ = traced_directions(transposed, rc[:, ::-1].copy(), kinds, steps=9)
    assert _angle_error(float(flipped[0]), math.pi / 2 - float(angle[0])) < 1e-4
