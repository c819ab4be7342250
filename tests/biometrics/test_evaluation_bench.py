"""The benchmark's report: tables filled from results, and its own section of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

from bench.biometrics import report, write_section
from edge.biometrics.evaluation import SetResult

STICKS = {"skeletonize_ms": 3.0, "fft_ms": 1.5}


def _result(eer: float, extract_ms: float) -> SetResult:
    return SetResult(
        eer_fvc=eer,
        eer_ext=eer,
        fmr100_ext=2 * eer,
        fmr1000_ext=3 * eer,
        zerofmr_ext=4 * eer,
        extract_ms_median=extract_ms,
        compare_ms_median=0.1,
        erc_fnmr_at_fmr1={"0": 0.2, "5": 0.1, "10": 0.05, "20": 0.0},
        images=80,
    )


def test_report_tables(shared_data: Path) -> None:
    text = report(
        {"db1_b": _result(0.02, 30.0), "db2_b": _result(0.04, 40.0)},
        (STICKS, STICKS),
        processes=2,
    )
    lines = text.splitlines()
    assert any(
        line.startswith("| db1_b | 2.0 % | 2.0 % | 4.0 % | 6.0 % | 8.0 % |") for line in lines
    )
    assert any(line.startswith("| **mean** | 3.0 % |") for line in lines)
    assert any(line.startswith("| NIST NBIS mindtct + bozorth3") for line in lines)
    ours = next(line for line in lines if "this project" in line)
    assert "30-40 ms (db1: 30 ms)" in ours
    assert "3.0 % (2.0 / 4.0)" in ours
    assert "| skimage skeletonize | 3.00 ms | 3.00 ms | 10.0 x |" in text


def test_write_section_replaces_only_its_own(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Queue\n\nq\n\n## Biometrics\n\nold\n\n## Link\n\nl\n")
    write_section("new figures\n", path=path)
    assert path.read_text() == (
        "# Benchmarks\n\n## Queue\n\nq\n\n## Biometrics\n\nnew figures\n\n## Link\n\nl\n"
    )
    fresh = tmp_path / "fresh.md"
    write_section("first\n", path=fresh)
    assert fresh.read_text() == "# Benchmarks\n\n## Biometrics\n\nfirst\n"
    write_section("second\n", path=fresh)
    assert fresh.read_text() == "# Benchmarks\n\n## Biometrics\n\nsecond\n"
