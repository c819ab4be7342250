"""The module image format every finger source must produce."""

from __future__ import annotations

import numpy as np
import pytest
from dr_sim.fingers import quantise_4bit


def test_quantise_keeps_the_high_nibble_times_17() -> None:
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = quantise_4bit(grey)
    assert out.dtype == np.uint8
    assert np.array_equal(out, (grey // 16) * 17)
    assert out.min() == 0
    assert out.max() == 255


def test_quantise_clips_floats() -> None:
    out = quantise_4bit(np.array([[-20.0, 16.5, 300.0]]))
    assert out.tolist() == [[0, 17, 255]]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((4, 4, 3), dtype=np.uint8), "2-D"),
        (np.zeros((4, 4), dtype=np.int32), "uint8 or floating"),
        (np.array([[np.nan, 0.0]]), "NaN"),
    ],
)
def test_quantise_rejects_bad_input(image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quantise_4bit(image)
