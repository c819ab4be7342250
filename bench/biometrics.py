"""Accuracy and speed of the biometric core on FVC2002 (4 sets x 10 fingers x 8 impressions).

    python -m bench biometrics [--sets=db1_b,db3_b] [--processes=N] [--no-write]

(``python -m bench`` passes on only the arguments that start with ``-``: write ``--sets=...``.)

Runs the FVC and extended protocols (edge.biometrics.evaluation) on ../shared/data/fvc2002,
prints the figures next to the reference table of ../shared/data/README.md, with a
machine-speed yardstick measured in the same run (scikit-image skeletonize and a numpy FFT of
a db1 image, the operations the README timed), and writes the section ``## Biometrics`` of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from skimage.morphology import skeletonize

from edge.biometrics.evaluation import (
    ERC_REJECT_FRACTIONS,
    SetResult,
    default_processes,
    evaluate_folder,
    load_grey_image,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = PROJECT_ROOT.parent / "shared" / "data"
BENCHMARKS = PROJECT_ROOT / "BENCHMARKS.md"
SECTION = "## Biometrics"
# Nominal resolutions (the TIFF tags say 1 dpi): ../shared/data/README.md.
FVC2002_DPI = {"db1_b": 500.0, "db2_b": 569.0, "db3_b": 500.0, "db4_b": 500.0}
YARDSTICK_IMAGE = "db1_b/101_1.tif"
YARDSTICK_REPEATS = 30


def _median_ms(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def yardsticks() -> dict[str, float]:
    """Median milliseconds of two fixed operations on a db1 image: what this machine does."""
    image = load_grey_image(DATA / "fvc2002" / YARDSTICK_IMAGE)
    binary = image < np.median(image)
    grey = image.astype(np.float32)
    return {
        # skimage ships no type hints for skeletonize.
        "skeletonize_ms": _median_ms(
            lambda: skeletonize(binary),  # type: ignore[no-untyped-call]
            YARDSTICK_REPEATS,
        ),
        "fft_ms": _median_ms(lambda: np.fft.rfft2(grey), YARDSTICK_REPEATS),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f} %"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


def _mean(values: list[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return statistics.fmean(numbers) if numbers else None


def results_table(results: dict[str, SetResult]) -> list[str]:
    erc_heads = " | ".join(f"ERC {f * 100:g} %" for f in ERC_REJECT_FRACTIONS)
    lines = [
        "| set | EER (FVC) | EER (ext) | FMR100 | FMR1000 | ZeroFMR | extraction / image "
        f"| comparison | failures | {erc_heads} |",
        "|---|" + "---|" * (8 + len(ERC_REJECT_FRACTIONS)),
    ]

    def row(name: str, figures: dict[str, float | None], erc: list[float | None], fail: str) -> str:
        erc_cells = " | ".join(_pct(v) for v in erc)
        return (
            f"| {name} | {_pct(figures['eer_fvc'])} | {_pct(figures['eer_ext'])} "
            f"| {_pct(figures['fmr100_ext'])} | {_pct(figures['fmr1000_ext'])} "
            f"| {_pct(figures['zerofmr_ext'])} | {_ms(figures['extract_ms_median'])} "
            f"| {_ms(figures['compare_ms_median'])} | {fail} | {erc_cells} |"
        )

    keys = [f"{f * 100:g}" for f in ERC_REJECT_FRACTIONS]
    per_set = {}
    for name, result in results.items():
        figures: dict[str, float | None] = {
            "eer_fvc": result.eer_fvc,
            "eer_ext": result.eer_ext,
            "fmr100_ext": result.fmr100_ext,
            "fmr1000_ext": result.fmr1000_ext,
            "zerofmr_ext": result.zerofmr_ext,
            "extract_ms_median": result.extract_ms_median,
            "compare_ms_median": result.compare_ms_median,
        }
        erc: list[float | None] = [result.erc_fnmr_at_fmr1.get(k) for k in keys]
        per_set[name] = (figures, erc)
        lines.append(row(name, figures, erc, f"{result.extract_failures}/{result.images}"))
    if len(results) > 1:
        mean_figures = {
            key: _mean([figures[key] for figures, _ in per_set.values()])
            for key in next(iter(per_set.values()))[0]
        }
        mean_erc = [_mean([erc[i] for _, erc in per_set.values()]) for i in range(len(keys))]
        failures = sum(r.extract_failures for r in results.values())
        images = sum(r.images for r in results.values())
        lines.append(row("**mean**", mean_figures, mean_erc, f"{failures}/{images}"))
    return lines


def _span(values: list[float], spec: str) -> str:
    low, high = format(min(values), spec), format(max(values), spec)
    return low if low == high else f"{low}-{high}"


def reference_table(results: dict[str, SetResult]) -> list[str]:
    """The README's reference table, with this project's row added in the same columns."""
    readme = (DATA / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(readme) if line.startswith("| system |"))
    table = []
    for line in readme[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    extract = [r.extract_ms_median for r in results.values() if r.extract_ms_median is not None]
    compare = [r.compare_ms_median for r in results.values() if r.compare_ms_median is not None]
    db1 = results.get("db1_b")
    eers = " / ".join(f"{100 * r.eer_fvc:.1f}" for r in results.values())
    mean_eer = statistics.fmean(r.eer_fvc for r in results.values())
    mean_fmr100 = statistics.fmean(r.fmr100_ext for r in results.values())
    db1_note = (
        f" (db1: {db1.extract_ms_median:.0f} ms)"
        if db1 is not None and db1.extract_ms_median is not None
        else ""
    )
    extract_cell = f"{_span(extract, '.0f')} ms{db1_note}" if extract else "n/a"
    compare_cell = f"{_span(compare, '.2f')} ms" if compare else "n/a"
    table.append(
        f"| **this project: edge.biometrics (Python, numpy)** | {extract_cell} | {compare_cell} "
        f"| {100 * mean_eer:.1f} % ({eers}) | {100 * mean_fmr100:.1f} % |"
    )
    return table


def report(
    results: dict[str, SetResult],
    sticks: tuple[dict[str, float], dict[str, float]],
    *,
    processes: int,
) -> str:
    extract_db1 = results["db1_b"].extract_ms_median if "db1_b" in results else None
    lines = [
        f"FVC2002 B sets (10 fingers x 8 impressions each), nominal resolutions "
        f"({', '.join(f'{k} {v:g} dpi' for k, v in FVC2002_DPI.items() if k in results)}); "
        "protocols as in `../shared/data/README.md`: genuine 280 pairs per set, impostors 45 "
        "(FVC) or 2,880 (extended). Rates are FNMR at the given FMR; ERC x % is the FNMR at "
        "FMR = 1 % (threshold fixed on all impostors) after rejecting the worst x % of images "
        f"by quality score. Extraction ran in {processes} worker process(es); times are "
        "medians per image and per pair, measured inside the workers.",
        "",
        *results_table(results),
        "",
        "Reference figures (from `../shared/data/README.md`, same protocol, same kind of "
        "machine) and this run:",
        "",
        *reference_table(results),
        "",
        "Machine-speed yardstick, measured in this run on `db1_b/101_1.tif`, before and after "
        "the evaluation (the README notes ~3 ms for skeletonize on this kind of machine; a "
        "higher figure means a slower or busier machine, and all times above scale with it):",
        "",
        "| operation | before | after | db1 extraction / operation |",
        "|---|---|---|---|",
    ]
    before, after = sticks
    for name, label in (("skeletonize_ms", "skimage skeletonize"), ("fft_ms", "numpy rfft2")):
        mean = (before[name] + after[name]) / 2
        ratio = f"{extract_db1 / mean:.1f} x" if extract_db1 else "n/a"
        lines.append(f"| {label} | {before[name]:.2f} ms | {after[name]:.2f} ms | {ratio} |")
    return "\n".join(lines) + "\n"


def write_section(text: str, *, path: Path = BENCHMARKS) -> None:
    """Replace (or add) the ``## Biometrics`` section of BENCHMARKS.md, leaving the rest."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{text}"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: section + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    path.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench biometrics")
    parser.add_argument("--sets", default=",".join(FVC2002_DPI), help="comma-separated sets")
    parser.add_argument("--processes", type=int, default=default_processes())
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    unknown = sorted(set(sets) - set(FVC2002_DPI))
    if unknown:
        sys.exit(f"unknown set(s) {unknown}; FVC2002 sets: {', '.join(FVC2002_DPI)}")
    if not (DATA / "fvc2002").is_dir():
        sys.exit(f"FVC2002 data not found at {DATA / 'fvc2002'} (see ../shared/data/README.md)")
    before = yardsticks()
    results = {}
    for name in sets:
        started = time.perf_counter()
        results[name] = evaluate_folder(
            DATA / "fvc2002" / name, dpi=FVC2002_DPI[name], processes=args.processes
        )
        print(f"<!-- {name}: {time.perf_counter() - started:.0f} s -->", flush=True)
    text = report(results, (before, yardsticks()), processes=args.processes)
    print(text)
    if not args.no_write and set(sets) == set(FVC2002_DPI):
        write_section(text)
        print(f"(written to {BENCHMARKS.name}, section {SECTION!r})")
