"""The matcher: real genuine and impostor pairs, invariances, degenerate templates."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.spatial import ConvexHull

from edge.biometrics import (
    MATCH_THRESHOLD,
    FingerTemplate,
    InvalidTemplate,
    Minutia,
    MinutiaKind,
    compare,
    compare_prepared,
    extract,
    is_match,
    prepare,
)
from edge.biometrics.matcher import _overlap_counts
from tests.fixtures.biometrics import FVC_DPI, fvc_image

# Genuine pairs from three sensors; impostors are the first impressions of other fingers.
_NAMES = [
    ("db1_b", "101_1"),
    ("db1_b", "101_2"),
    ("db1_b", "102_1"),
    ("db2_b", "101_1"),
    ("db2_b", "101_2"),
    ("db2_b", "102_1"),
    ("db3_b", "103_1"),
    ("db3_b", "103_2"),
    ("db3_b", "104_1"),
]


@pytest.fixture(scope="module")
def templates(shared_data: Path) -> dict[tuple[str, str], FingerTemplate]:
    return {
        (db, name): extract(fvc_image(shared_data, db, name), dpi=FVC_DPI[db]).template
        for db, name in _NAMES
    }


@pytest.mark.parametrize("db", ["db1_b", "db2_b", "db3_b"])
def test_genuine_above_impostor_below(
    templates: dict[tuple[str, str], FingerTemplate], db: str
) -> None:
    finger = "103" if db == "db3_b" else "101"
    other = "104" if db == "db3_b" else "102"
    first, second = templates[db, f"{finger}_1"], templates[db, f"{finger}_2"]
    stranger = templates[db, f"{other}_1"]
    assert compare(first, second) >= MATCH_THRESHOLD
    assert is_match(first, second)
    assert compare(first, stranger) < MATCH_THRESHOLD
    assert compare(second, stranger) < MATCH_THRESHOLD
    assert not is_match(first, stranger)


def test_impostors_across_sensors_below(templates: dict[tuple[str, str], FingerTemplate]) -> None:
    keys = list(templates)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if a[1][:3] != b[1][:3] or a[0] != b[0]:
                assert compare(templates[a], templates[b]) < MATCH_THRESHOLD, (a, b)


def _moved(t: FingerTemplate, *, angle: float, dx: float, dy: float) -> FingerTemplate:
    """The same finger rotated by ``angle`` (counter-clockwise as seen) and shifted."""
    cx, cy = t.width / 2, t.height / 2
    moved = []
    for m in t.minutiae:
        x, y = m.x - cx, -(m.y - cy)
        xr = x * math.cos(angle) - y * math.sin(angle)
        yr = x * math.sin(angle) + y * math.cos(angle)
        moved.append(
            dataclasses.replace(
                m,
                x=round(xr + cx + dx),
                y=round(-yr + cy + dy),
                angle=(m.angle + angle) % (2 * math.pi),
            )
        )
    return dataclasses.replace(t, minutiae=tuple(moved), width=t.width * 2, height=t.height * 2)


def test_invariant_to_rotation_and_translation(
    templates: dict[tuple[str, str], FingerTemplate],
) -> None:
    t = templates["db1_b", "101_1"]
    assert compare(t, t) > 0.95
    # Placements on a sensor differ by well under a right angle; the matcher relies on it
    # (cylinders of minutiae more than 90 degrees apart are never paired).
    for angle in (0.3, -0.8, 1.3):
        assert compare(t, _moved(t, angle=angle, dx=60, dy=-25)) > 0.85


def test_resolution_is_taken_into_account(
    templates: dict[tuple[str, str], FingerTemplate],
) -> None:
    a, b = templates["db1_b", "101_1"], templates["db1_b", "101_2"]
    # The same minutiae described at 1000 dpi: coordinates doubled.
    fine = dataclasses.replace(
        b,
        dpi=1000.0,
        minutiae=tuple(dataclasses.replace(m, x=2 * m.x, y=2 * m.y) for m in b.minutiae),
    )
    assert compare(a, fine) == pytest.approx(compare(a, b), abs=0.03)


def test_symmetric_enough(templates: dict[tuple[str, str], FingerTemplate]) -> None:
    a, b = templates["db2_b", "101_1"], templates["db2_b", "101_2"]
    assert compare(a, b) == pytest.approx(compare(b, a), abs=0.02)


def test_symmetric_and_bounded_on_every_pair(
    templates: dict[tuple[str, str], FingerTemplate],
) -> None:
    # The alignment that estimates the overlap is the inverse one when the templates swap
    # roles, and both overlap counts are taken: only float rounding may differ.
    keys = list(templates)
    for i, first in enumerate(keys):
        for second in keys[i + 1 :]:
            a, b = templates[first], templates[second]
            score = compare(a, b)
            assert 0.0 <= score <= 1.0
            assert score == pytest.approx(compare(b, a), abs=1e-4), (first, second)
    pa, pb = prepare(a), prepare(b)
    assert compare_prepared(pa, pb) == pytest.approx(compare(a, b))


def test_empty_and_tiny_templates_score_zero(
    templates: dict[tuple[str, str], FingerTemplate],
) -> None:
    empty = FingerTemplate(width=300, height=300, dpi=500.0, minutiae=())
    lone = dataclasses.replace(empty, minutiae=(Minutia(10, 10, 0.0, MinutiaKind.ENDING),))
    real = templates["db1_b", "101_1"]
    for t in (empty, lone):
        assert compare(t, real) == 0.0
        assert compare(real, t) == 0.0
        assert not is_match(t, t)


def test_absurd_resolution_refused(templates: dict[tuple[str, str], FingerTemplate]) -> None:
    bad = dataclasses.replace(templates["db1_b", "101_1"], dpi=0.0)
    with pytest.raises(InvalidTemplate, match="resolution"):
        prepare(bad)


# Genuine pairs of db1 for the distortion test (different impressions of four fingers).
_DB1_PAIRS = [("101_1", "101_2"), ("102_1", "102_2"), ("103_1", "103_2"), ("104_1", "104_3")]


@pytest.fixture(scope="module")
def db1_templates(shared_data: Path) -> dict[str, FingerTemplate]:
    names = {name for pair in _DB1_PAIRS for name in pair}
    return {
        name: extract(fvc_image(shared_data, "db1_b", name), dpi=FVC_DPI["db1_b"]).template
        for name in names
    }


def _stretched(t: FingerTemplate, factor: float) -> FingerTemplate:
    """The print stretched sideways about its centre (the skin pulled by a sliding press)."""
    cx = t.width / 2
    minutiae = tuple(dataclasses.replace(m, x=round(cx + (m.x - cx) * factor)) for m in t.minutiae)
    return dataclasses.replace(t, minutiae=minutiae, width=math.ceil(t.width * factor))


def test_stretched_print_keeps_most_of_its_score(
    db1_templates: dict[str, FingerTemplate],
) -> None:
    # A 5 % stretch moves minutiae 10 pixels apart per 200: beyond a fixed 5-pixel
    # compatibility tolerance, within the strain the consolidation allows. With the fixed
    # tolerance alone these pairs kept about 76 % of their score on average.
    ratios = []
    for first, second in _DB1_PAIRS:
        a, b = db1_templates[first], db1_templates[second]
        ratios.append(compare(a, _stretched(b, 1.05)) / compare(a, b))
    assert sum(ratios) / len(ratios) >= 0.85, ratios


def _hull_bounds(points: NDArray[np.float64], corners: NDArray[np.float64]) -> tuple[int, int]:
    """How many points are surely inside the hull of ``corners``, and how many may be (on its
    boundary, which float rounding may put either side)."""
    planes = ConvexHull(corners).equations
    dist = points @ planes[:, :2].T + planes[:, 2]
    return int((dist < -0.01).all(axis=1).sum()), int((dist <= 0.01).all(axis=1).sum())


def test_overlap_counts_of_a_part_seen_elsewhere(
    templates: dict[tuple[str, str], FingerTemplate],
) -> None:
    whole = templates["db1_b", "102_1"]
    middle = sorted(m.x for m in whole.minutiae)[len(whole.minutiae) // 2]
    part = dataclasses.replace(whole, minutiae=tuple(m for m in whole.minutiae if m.x >= middle))
    # Turned by a right angle (exact in integer pixels) and shifted.
    a, b = prepare(whole), prepare(_moved(part, angle=math.pi / 2, dx=40, dy=-30))
    moved_xy = {
        (float(x), float(y)): j for j, (x, y) in enumerate(b.xy.tolist())
    }  # every cylinder of b, by position
    pa, pb = [], []
    for m in whole.minutiae:
        if m.x < middle:
            continue
        single = _moved(dataclasses.replace(whole, minutiae=(m,)), angle=math.pi / 2, dx=40, dy=-30)
        where = (float(single.minutiae[0].x), -float(single.minutiae[0].y))
        row = np.flatnonzero((a.xy == np.array([m.x, -m.y], np.float32)).all(axis=1))
        if where in moved_xy and row.size:
            pa.append(int(row[0]))
            pb.append(moved_xy[where])
    assert len(pa) >= 5
    count_a, count_b = _overlap_counts(
        a, b, np.array(pa), np.array(pb), np.ones(len(pa), dtype=np.float32)
    )
    xy_whole = np.array([(m.x, -m.y) for m in whole.minutiae], dtype=np.float64)
    xy_part = np.array([(m.x, -m.y) for m in part.minutiae], dtype=np.float64)
    low_a, high_a = _hull_bounds(xy_whole, xy_part)  # in the frame of the whole print
    low_b, high_b = _hull_bounds(xy_part, xy_whole)
    assert low_a <= count_a <= high_a
    assert low_b <= count_b <= high_b
    assert count_a < len(whole.minutiae)  # the other half is not in common view
    assert count_b >= len(part.minutiae) - (high_b - low_b)
