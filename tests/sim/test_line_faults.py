"""Seeded byte faults: reproducible, bounded, of the requested kinds."""

from __future__ import annotations

import pytest
from dr_sim.line_faults import LineFaults

DATA = bytes(range(256)) * 40


def test_clean_line_changes_nothing() -> None:
    assert LineFaults().mangle(DATA) == DATA


def test_same_seed_same_faults() -> None:
    a = LineFaults(drop=0.01, corrupt=0.01, duplicate=0.01, seed=5)
    b = LineFaults(drop=0.01, corrupt=0.01, duplicate=0.01, seed=5)
    assert a.mangle(DATA) == b.mangle(DATA)
    assert a.injected == b.injected > 0
    assert LineFaults(drop=0.01, seed=6).mangle(DATA) != a.mangle(DATA)


@pytest.mark.parametrize(
    ("kind", "length_change"), [("drop", -1), ("duplicate", 1), ("corrupt", 0)]
)
def test_each_kind(kind: str, length_change: int) -> None:
    faults = LineFaults(**{kind: 0.01}, seed=1, limit=1)  # type: ignore[arg-type]
    out = faults.mangle(DATA)
    assert faults.injected == 1
    assert len(out) == len(DATA) + length_change
    assert out != DATA
    assert faults.mangle(DATA) == DATA  # the limit is reached: clean from now on
    assert not faults.active


def test_prefix_never_holds_a_header_byte() -> None:
    faults = LineFaults(prefix=500, seed=2)
    out = faults.mangle(b"\xef\x01")
    assert len(out) == 502
    assert b"\xef" not in out[:500]
    assert out.endswith(b"\xef\x01")


def test_validation() -> None:
    with pytest.raises(ValueError, match="probability"):
        LineFaults(drop=1.5)
    with pytest.raises(ValueError, match="more than 1"):
        LineFaults(drop=0.6, corrupt=0.6)
