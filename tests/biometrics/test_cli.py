"""``dr-bio`` end to end, on real FVC2002 images and the standards' example records."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from edge.biometrics.cli import main
from edge.biometrics.evaluation import FIGURE_KEYS
from edge.biometrics.iso19794 import RecordFormat, decode_template
from edge.biometrics.types import FingerPosition

DB1 = "fvc2002/db1_b"


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_show_the_iso_example(capsys: pytest.CaptureFixture[str], shared_data: Path) -> None:
    code, out, _ = _run(capsys, "show", shared_data / "iso19794/iso19794-2_2005_appendix_c2.raw")
    assert code == 0
    shown = json.loads(out)
    assert shown["format"] == RecordFormat.ISO_19794_2_2005
    assert (shown["length_field"], shown["length"]) == (340, 341)
    assert [len(v["minutiae"]) for v in shown["views"]] == [27, 22]
    assert shown["views"][0]["minutiae"][0] == {
        "x": 100,
        "y": 14,
        "angle_deg": 112.5,
        "kind": "ending",
        "quality": 90,
    }
    assert shown["views"][1]["extended_data"] == [{"type": 1, "data": "0101140c050705"}]


def test_bad_record_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.iso"
    bad.write_bytes(b"not a record at all")
    code, out, err = _run(capsys, "show", bad)
    assert code == 1
    assert out == ""
    assert "format identifier at byte 0" in err
    code, _, err = _run(capsys, "match", bad, tmp_path / "missing.iso")
    assert code == 1
    assert "format identifier" in err


def test_missing_image_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_path = tmp_path / "out.iso"
    code, _, err = _run(capsys, "extract", tmp_path / "nope.tif", "--dpi", 500, "-o", out_path)
    assert code == 1
    assert "nope.tif" in err
    assert not out_path.exists()


def test_extract_then_match(
    capsys: pytest.CaptureFixture[str], shared_data: Path, tmp_path: Path
) -> None:
    records = {}
    for name in ("101_1", "101_2", "102_1"):
        records[name] = tmp_path / f"{name}.iso"
        code, out, _ = _run(
            capsys,
            "extract",
            shared_data / DB1 / f"{name}.tif",
            "--dpi",
            500,
            "-o",
            records[name],
            "--position",
            2,
            "--preview",
            tmp_path / f"{name}.png",
        )
        assert code == 0
        quality = json.loads(out)
        assert 0 <= quality["score"] <= 100
        assert isinstance(quality["measures"], dict)
        assert isinstance(quality["advice"], list)
        record = decode_template(records[name].read_bytes(), strict=True)
        assert record.format is RecordFormat.ISO_19794_2_2005
        (view,) = record.views
        assert (view.width, view.height, view.dpi) == (388, 374, 500.0)
        assert view.position is FingerPosition.RIGHT_INDEX
        assert len(view.minutiae) > 5
        with Image.open(io.BytesIO((tmp_path / f"{name}.png").read_bytes())) as preview:
            assert preview.format == "PNG"
            assert preview.size == (2 * 388, 2 * 374)

    def score(a: str, b: str) -> float:
        code, out, _ = _run(capsys, "match", records[a], records[b])
        assert code == 0
        return float(out)

    assert score("101_1", "101_2") > score("101_1", "102_1")


def _check_figures(figures: dict[str, object], *, extraction: bool) -> None:
    for key in FIGURE_KEYS:
        value = figures[key]
        if key.endswith("_ms_median"):
            if key.startswith("extract") and not extraction:
                assert value is None
            else:
                assert isinstance(value, float)
                assert value > 0
        else:
            assert isinstance(value, float)
            assert 0.0 <= value <= 1.0
    erc = figures["erc_fnmr_at_fmr1"]
    assert isinstance(erc, dict)
    assert set(erc) == {"0", "5", "10", "20"}


def test_eval_images(capsys: pytest.CaptureFixture[str], fvc_subset: Callable[..., Path]) -> None:
    folder = fvc_subset("db1_b", fingers=3, impressions=2)
    code, out, _ = _run(capsys, "eval", folder, "--dpi", 500, "--processes", 1)
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"sets", "mean"}
    assert set(result["sets"]) == {"db1_b"}
    _check_figures(result["sets"]["db1_b"], extraction=True)
    assert result["sets"]["db1_b"]["images"] == 6
    _check_figures(result["mean"], extraction=True)


def test_eval_records_made_by_extract(
    capsys: pytest.CaptureFixture[str], shared_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    for finger in (101, 102, 103):
        for impression in (1, 2):
            name = f"{finger}_{impression}"
            image = shared_data / DB1 / f"{name}.tif"
            code, _, _ = _run(capsys, "extract", image, "--dpi", 500, "-o", folder / f"{name}.iso")
            assert code == 0
    code, out, _ = _run(capsys, "eval", folder, "--dpi", 500, "--processes", 1)
    assert code == 0
    figures = json.loads(out)["sets"]["records"]
    _check_figures(figures, extraction=False)
    assert figures["images"] == 6


def test_eval_refuses_a_folder_without_fvc_names(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "eval", tmp_path, "--dpi", 500)
    assert code == 1
    assert "at least two fingers" in err


def test_console_script(shared_data: Path) -> None:
    script = Path(sys.executable).with_name("dr-bio")
    done = subprocess.run(
        [script, "show", shared_data / "iso19794/ansi378_2004_appendix_b2.raw"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["format"] == RecordFormat.ANSI_378_2004
