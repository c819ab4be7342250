"""The matcher: real genuine and impostor pairs, invariances, degenerate templates."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

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
