"""``python -m dr_sim.fingers`` writes impressions that ImageFinger reads back unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dr_sim.fingers import ImageFinger, SyntheticFinger, fvc2002_settings
from dr_sim.fingers.__main__ import main
from PIL import Image


def test_writes_fvc_named_pngs_that_read_back(tmp_path: Path) -> None:
    assert main(["--identity", "5", "6", "--count", "2", "--fvc2002", "-o", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["5_1.png", "5_2.png", "6_1.png", "6_2.png"]
    with Image.open(tmp_path / "6_2.png") as img:
        written = np.asarray(img)
    expected = SyntheticFinger(6, settings=fvc2002_settings(2)).capture(
        np.random.default_rng([0, 6, 2])
    )
    assert np.array_equal(written, expected)
    # The resolution travels with the file: ImageFinger takes it and does not resample.
    still = ImageFinger(tmp_path / "6_2.png", max_shift=0, max_rotation=0, noise=0)
    assert still.dpi == pytest.approx(508.0, abs=0.5)
    assert still._image.shape == written.shape


def test_refuses_a_bad_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--count", "0", "-o", str(tmp_path)])
    assert "--count" in capsys.readouterr().err
