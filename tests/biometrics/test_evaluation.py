"""Evaluation metrics on hand-made scores, protocols on hand-made folders."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from edge.biometrics.errors import NoFingerprint
from edge.biometrics.evaluation import (
    Engine,
    Sample,
    eer,
    error_versus_reject,
    evaluate_folder,
    extended_impostor_pairs,
    fnmr_at_fmr,
    fvc_impostor_pairs,
    genuine_pairs,
    scan_folder,
    summarise,
)
from edge.biometrics.iso19794 import (
    TemplateFormatError,
    encode_ansi378_2004,
    encode_iso19794_2,
)
from edge.biometrics.quality import QualityReport
from edge.biometrics.types import FingerTemplate, Minutia, MinutiaKind

# --- EER ----------------------------------------------------------------------------------


def test_eer_of_one_crossing() -> None:
    # At t = 0.65 one genuine of four is rejected and one impostor of four accepted.
    assert eer([0.6, 0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.65]) == 0.25


def test_eer_of_separated_scores_is_zero() -> None:
    assert eer([5, 6, 7], [1, 2, 3]) == 0.0


def test_eer_of_identical_distributions_is_a_half() -> None:
    assert eer([0.5] * 4, [0.5] * 4) == 0.5


def test_eer_of_swapped_distributions_is_one() -> None:
    assert eer([1, 2, 3], [5, 6, 7]) == 1.0


def test_eer_without_an_equal_rate_threshold_takes_t1() -> None:
    # t = 3: FNMR 0 <= FMR 1/3 (t1); t = 4: FNMR 1/2 >= FMR 1/3 (t2). t1's rates are closer
    # (sum 1/3 against 5/6): EER is the middle of [0, 1/3].
    assert eer([3, 5], [1, 2, 4]) == pytest.approx(1 / 6)


def test_eer_without_an_equal_rate_threshold_takes_t2() -> None:
    # t = 3: FNMR 1/3 <= FMR 1/2 (t1, sum 5/6); t = 4: FNMR 1/3 >= FMR 0 (t2, sum 1/3).
    assert eer([2, 4, 6], [1, 3]) == pytest.approx(1 / 6)


def test_eer_with_failures_to_enrol() -> None:
    # A failed image scores -inf: a genuine pair lost whatever the threshold.
    assert eer([-math.inf, 0.9, 0.8, 0.7], [0.1, 0.2, 0.3, 0.4]) == 0.25


def test_eer_refuses_empty_or_nan() -> None:
    with pytest.raises(ValueError, match="empty"):
        eer([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        eer([math.nan], [1.0])


# --- FNMR at a fixed FMR ------------------------------------------------------------------


def test_fnmr_at_fmr_counts_allowed_impostors() -> None:
    impostor = np.arange(100) / 100.0  # 0.00 ... 0.99
    genuine = np.array([0.5, 0.975, 0.985, 0.995, 1.5])
    # FMR <= 1 %: one impostor (0.99) may pass, the threshold sits just above 0.98.
    assert fnmr_at_fmr(genuine, impostor, fmr=0.01) == pytest.approx(2 / 5)
    # ZeroFMR: above 0.99.
    assert fnmr_at_fmr(genuine, impostor, fmr=0.0) == pytest.approx(3 / 5)
    # FMR <= 10 %: above 0.89.
    assert fnmr_at_fmr(genuine, impostor, fmr=0.1) == pytest.approx(1 / 5)
    assert fnmr_at_fmr(genuine, impostor, fmr=1.0) == 0.0


def test_fnmr_at_fmr_with_tied_impostors() -> None:
    # Two impostors tie at the top: allowing one is not possible, so the threshold goes
    # above both.
    assert fnmr_at_fmr([0.8, 0.95], [0.1, 0.9, 0.9, 0.2], fmr=0.25) == 0.5


def test_fmr_rounding_on_2880_impostors() -> None:
    # 1 % of 2880 is 28.8: 28 impostors may pass, not 29.
    impostor = np.arange(2880, dtype=np.float64)
    genuine = np.array([2880 - 29.5, 2880 - 28.5])
    assert fnmr_at_fmr(genuine, impostor, fmr=0.01) == 0.5


def test_fnmr_at_fmr_refuses_a_bad_rate() -> None:
    with pytest.raises(ValueError, match="fraction"):
        fnmr_at_fmr([1.0], [0.0], fmr=1.5)


# --- error versus reject ------------------------------------------------------------------


def test_error_versus_reject_drops_pairs_of_rejected_images() -> None:
    # Four images; the worst (index 3) spoils both genuine pairs it is in.
    quality = [80, 70, 60, 10]
    pairs = [(0, 1), (0, 3), (1, 3), (0, 2)]
    genuine = [0.9, 0.1, 0.2, 0.8]
    impostor = np.linspace(0.0, 0.5, 100)
    curve = error_versus_reject(genuine, pairs, impostor, quality, fractions=(0.0, 0.25, 0.5))
    assert curve[0.0] == 0.5  # threshold just above 0.49...: 0.1 and 0.2 fail
    assert curve[0.25] == 0.0  # image 3 rejected: its two pairs are gone
    assert curve[0.5] == 0.0  # image 2 too: only (0, 1) is left, and passes


def test_error_versus_reject_with_nothing_left() -> None:
    curve = error_versus_reject([0.9], [(0, 1)], [0.1], [1, 2], fractions=(0.5,))
    assert math.isnan(curve[0.5])


def test_error_versus_reject_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="genuine pairs"):
        error_versus_reject([0.9, 0.8], [(0, 1)], [0.1], [1, 2])
    with pytest.raises(ValueError, match="reject fraction"):
        error_versus_reject([0.9], [(0, 1)], [0.1], [1, 2], fractions=(1.0,))


# --- protocols ----------------------------------------------------------------------------


def _samples(fingers: int, impressions: int) -> list[Sample]:
    return [
        Sample(str(100 + f), i, Path(f"{100 + f}_{i}.tif"))
        for f in range(1, fingers + 1)
        for i in range(1, impressions + 1)
    ]


def test_fvc2002_pair_counts() -> None:
    samples = _samples(10, 8)
    assert len(genuine_pairs(samples)) == 280
    assert len(fvc_impostor_pairs(samples)) == 45
    assert len(extended_impostor_pairs(samples)) == 2880
    for i, j in fvc_impostor_pairs(samples):
        assert samples[i].impression == samples[j].impression == 1
        assert samples[i].finger != samples[j].finger


def test_scan_folder(tmp_path: Path) -> None:
    for name in ("101_1.tif", "101_2.png", "102_1.bmp", "102_2.TIF", "notes.txt", "x_1.tif"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "101_1.iso").write_bytes(b"")
    samples, kind = scan_folder(tmp_path)
    assert kind == "images"
    assert [(s.finger, s.impression) for s in samples] == [
        ("101", 1),
        ("101", 2),
        ("102", 1),
        ("102", 2),
    ]


def test_scan_folder_refuses_what_it_cannot_evaluate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        scan_folder(tmp_path / "missing")
    (tmp_path / "101_1.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="at least two fingers"):
        scan_folder(tmp_path)


# --- a whole folder, with a stand-in engine -----------------------------------------------
# The engine reads a finger from the grey level of a flat image (20 levels per finger, one
# per impression) and scores pairs by how close their levels are; a white image is refused.


@dataclass(frozen=True)
class _FakeExtraction:
    template: FingerTemplate
    quality: QualityReport


def fake_extract(image: NDArray[np.uint8], *, dpi: float) -> _FakeExtraction:
    level = int(image[0, 0])
    if level == 255:
        raise NoFingerprint("white image", reason="blank", value=0.0)
    minutia = Minutia(x=level, y=0, angle=0.0, kind=MinutiaKind.ENDING, quality=50)
    template = FingerTemplate(width=8, height=8, dpi=dpi, minutiae=(minutia,), quality=50)
    return _FakeExtraction(template, QualityReport(score=50))


def fake_prepare(template: FingerTemplate) -> int:
    return template.minutiae[0].x


def fake_compare(a: int, b: int) -> float:
    return -float(abs(a - b))


FAKE_ENGINE = Engine(extract=fake_extract, prepare=fake_prepare, compare=fake_compare)


def _flat_images(folder: Path, *, fingers: int, impressions: int, white: str = "") -> Path:
    folder.mkdir()
    for f in range(fingers):
        for i in range(1, impressions + 1):
            name = f"{101 + f}_{i}"
            level = 255 if name == white else 20 * (f + 1) + i
            Image.fromarray(np.full((8, 8), level, dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def test_folder_of_separable_fingers(tmp_path: Path) -> None:
    folder = _flat_images(tmp_path / "set", fingers=3, impressions=4)
    result = evaluate_folder(folder, dpi=500, engine=FAKE_ENGINE)
    assert result.images == 12
    assert (result.eer_fvc, result.eer_ext, result.fmr100_ext, result.zerofmr_ext) == (0, 0, 0, 0)
    assert result.extract_ms_median is not None
    assert result.compare_ms_median is not None
    assert result.extract_failures == 0


def test_a_refused_image_counts_against_genuine_pairs_and_is_rejected_first(
    tmp_path: Path,
) -> None:
    folder = _flat_images(tmp_path / "set", fingers=3, impressions=4, white="101_1")
    result = evaluate_folder(folder, dpi=500, engine=FAKE_ENGINE)
    assert result.extract_failures == 1
    assert "101_1.png" in result.failures[0]
    # 3 of the 18 genuine pairs hold the refused image.
    assert result.fmr100_ext == pytest.approx(3 / 18)
    assert result.zerofmr_ext == pytest.approx(3 / 18)
    # Rejecting the worst 5 % of 12 images (one) removes exactly the refused image.
    assert result.erc_fnmr_at_fmr1 == {"0": pytest.approx(3 / 18), "5": 0, "10": 0, "20": 0}


def test_worker_processes_give_the_same_figures(tmp_path: Path) -> None:
    folder = _flat_images(tmp_path / "set", fingers=3, impressions=3, white="102_2")
    alone = evaluate_folder(folder, dpi=500, engine=FAKE_ENGINE)
    pooled = evaluate_folder(folder, dpi=500, engine=FAKE_ENGINE, processes=2)
    assert pooled == alone


@pytest.mark.parametrize("suffix", [".iso", ".ansi"])
def test_folder_of_records_measures_the_matcher_only(tmp_path: Path, suffix: str) -> None:
    encode = encode_iso19794_2 if suffix == ".iso" else encode_ansi378_2004
    folder = tmp_path / "records"
    folder.mkdir()
    for f in range(3):
        for i in range(1, 4):
            minutia = Minutia(x=20 * (f + 1) + i, y=0, angle=0.0, kind=MinutiaKind.ENDING)
            template = FingerTemplate(
                width=8, height=8, dpi=500, minutiae=(minutia,), quality=10 * i
            )
            (folder / f"{101 + f}_{i}{suffix}").write_bytes(encode([template]))
    result = evaluate_folder(folder, dpi=500, engine=FAKE_ENGINE)
    assert result.images == 9
    assert result.extract_ms_median is None
    assert result.compare_ms_median is not None
    assert result.eer_ext == 0.0


def test_summary_averages_each_figure(tmp_path: Path) -> None:
    clean = evaluate_folder(
        _flat_images(tmp_path / "a", fingers=3, impressions=4), dpi=500, engine=FAKE_ENGINE
    )
    spoilt = evaluate_folder(
        _flat_images(tmp_path / "b", fingers=3, impressions=4, white="101_1"),
        dpi=500,
        engine=FAKE_ENGINE,
    )
    summary = summarise({"a": clean, "b": spoilt})
    sets = summary["sets"]
    mean = summary["mean"]
    assert isinstance(sets, dict)
    assert isinstance(mean, dict)
    assert set(sets) == {"a", "b"}
    assert mean["fmr100_ext"] == pytest.approx(3 / 36)
    assert mean["erc_fnmr_at_fmr1"] == {
        "0": pytest.approx(3 / 36),
        "5": 0.0,
        "10": 0.0,
        "20": 0.0,
    }


def test_a_malformed_record_names_its_file(tmp_path: Path) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    template = FingerTemplate(width=8, height=8, dpi=500, minutiae=())
    for name in ("101_1", "102_1"):
        (folder / f"{name}.iso").write_bytes(encode_iso19794_2([template]))
    (folder / "102_2.iso").write_bytes(b"FMR\x00 20\x00\x00")
    with pytest.raises(TemplateFormatError, match=r"102_2\.iso: record length"):
        evaluate_folder(folder, dpi=500, engine=FAKE_ENGINE)
