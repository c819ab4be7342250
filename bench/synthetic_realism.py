"""How realistic are the synthetic fingers? The project's own extractor and matcher decide.

Genuine and impostor score distributions of ``edge.biometrics`` (extract + compare) on
synthetic prints from ``dr_sim.fingers`` (10 fingers x 8 impressions by default, R30x format:
256 x 288, 508 dpi, 4 bits) next to FVC2002 db1_b (real, optical) and db4_b (synthetic,
SFinGe v2.51), with the protocols of ../shared/data/README.md: genuine = every pair of
impressions of one finger; impostor = first impressions of different fingers (FVC) or every
pair of different fingers (extended). A realistic generator gives a separation (d-prime, EER)
close to the real set's, not a perfect one.

db1_b is also measured through ``ImageFinger`` (resampled, cropped and quantised like the
module's images), which tells apart what the sensor format costs from what the synthesis does.

Speed: master-print generation and impression rendering, with an ``ImageFinger`` capture of a
stored FVC image as the baseline (the alternative to generating is storing). Times are CPU
times of this process (``time.process_time``): the machines are shared and wall time is noisy.

Options: ``--fingers=N``, ``--impressions=M``, ``--first-identity=K``, ``--skip-fvc``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from dr_sim.fingers import (
    SENSOR_DPI,
    ImageFinger,
    ImpressionSettings,
    SyntheticFinger,
    fvc2002_settings,
    master_print,
)
from numpy.typing import NDArray

from edge.biometrics import BiometricError, compare_prepared, extract, prepare
from edge.biometrics.evaluation import (
    Sample,
    eer,
    extended_impostor_pairs,
    fnmr_at_fmr,
    fvc_impostor_pairs,
    genuine_pairs,
    load_grey_image,
)

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fvc2002"
# Captures are seeded from the identity and the impression number, so a run is repeatable.
_CAPTURE_DOMAIN = 0xB1_0C


@dataclass(frozen=True, slots=True)
class SetFigures:
    name: str
    images: int
    failures: int
    minutiae_median: float
    quality_median: float
    genuine: NDArray[np.float64]
    impostor_ext: NDArray[np.float64]
    eer_fvc: float
    eer_ext: float
    fmr100_ext: float
    extract_ms: float

    @property
    def d_prime(self) -> float:
        g = self.genuine[np.isfinite(self.genuine)]
        i = self.impostor_ext[np.isfinite(self.impostor_ext)]
        if g.size < 2 or i.size < 2:
            return math.nan
        spread = math.sqrt((g.var(ddof=1) + i.var(ddof=1)) / 2)
        return float((g.mean() - i.mean()) / spread) if spread > 0 else math.inf


def _evaluate(
    name: str, images: Sequence[tuple[Sample, NDArray[np.uint8]]], dpi: float
) -> SetFigures:
    samples = [s for s, _ in images]
    prepared: list[Any] = []
    minutiae: list[int] = []
    quality: list[float] = []
    times: list[float] = []
    failures = 0
    for _, image in images:
        start = time.process_time()
        try:
            extraction = extract(image, dpi=dpi)
        except BiometricError:
            failures += 1
            prepared.append(None)
            continue
        times.append(time.process_time() - start)
        prepared.append(prepare(extraction.template))
        minutiae.append(len(extraction.template.minutiae))
        quality.append(float(extraction.quality.score))

    def score(pair: tuple[int, int]) -> float:
        a, b = prepared[pair[0]], prepared[pair[1]]
        return -math.inf if a is None or b is None else float(compare_prepared(a, b))

    genuine = np.array([score(p) for p in genuine_pairs(samples)])
    impostor_fvc = np.array([score(p) for p in fvc_impostor_pairs(samples)])
    impostor_ext = np.array([score(p) for p in extended_impostor_pairs(samples)])
    return SetFigures(
        name=name,
        images=len(images),
        failures=failures,
        minutiae_median=statistics.median(minutiae) if minutiae else math.nan,
        quality_median=statistics.median(quality) if quality else math.nan,
        genuine=genuine,
        impostor_ext=impostor_ext,
        eer_fvc=eer(genuine, impostor_fvc),
        eer_ext=eer(genuine, impostor_ext),
        fmr100_ext=fnmr_at_fmr(genuine, impostor_ext, fmr=0.01),
        extract_ms=statistics.median(times) * 1e3 if times else math.nan,
    )


def _fvc_images(db: str) -> list[tuple[Sample, NDArray[np.uint8]]]:
    folder = DATA / db
    if not folder.is_dir():
        raise SystemExit(f"FVC2002 data not found at {folder} (see ../shared/data/README.md)")
    out = []
    for path in sorted(folder.glob("*_*.tif")):
        finger, impression = path.stem.split("_")
        out.append((Sample(finger, int(impression), path), load_grey_image(path)))
    return out


def _as_module(
    images: list[tuple[Sample, NDArray[np.uint8]]],
) -> list[tuple[Sample, NDArray[np.uint8]]]:
    out = []
    for sample, _ in images:
        rng = np.random.default_rng([sample.impression, int(sample.finger), _CAPTURE_DOMAIN])
        out.append((sample, ImageFinger(sample.path).capture(rng)))
    return out


def _time_masters(identities: range) -> list[float]:
    seconds = []
    for identity in identities:
        master_print.cache_clear()
        start = time.process_time()
        master_print(identity)
        seconds.append(time.process_time() - start)
    master_print.cache_clear()
    return seconds


def _synthetic_images(
    identities: range, impressions: int, settings: Callable[[int], ImpressionSettings]
) -> tuple[list[tuple[Sample, NDArray[np.uint8]]], list[float]]:
    images = []
    seconds: list[float] = []
    for identity in identities:
        for k in range(1, impressions + 1):
            finger = SyntheticFinger(identity, settings=settings(k))
            _ = finger.master  # generated once per identity (cached), not timed here
            rng = np.random.default_rng([identity, k, _CAPTURE_DOMAIN])
            start = time.process_time()
            image = finger.capture(rng)
            seconds.append(time.process_time() - start)
            images.append((Sample(str(identity), k, Path(f"{identity}_{k}.png")), image))
    return images, seconds


def _row(f: SetFigures) -> str:
    g = f.genuine[np.isfinite(f.genuine)]
    i = f.impostor_ext[np.isfinite(f.impostor_ext)]
    return (
        f"| {f.name} | {f.images} | {f.failures} | {f.minutiae_median:.0f} | "
        f"{f.quality_median:.0f} | {g.mean():.3f} ± {g.std():.3f} | "
        f"{i.mean():.3f} ± {i.std():.3f} | "
        f"{f.d_prime:.2f} | {100 * f.eer_fvc:.1f} % | {100 * f.eer_ext:.1f} % | "
        f"{100 * f.fmr100_ext:.1f} % | {f.extract_ms:.0f} |"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench synthetic_realism")
    parser.add_argument("--fingers", type=int, default=10)
    parser.add_argument("--impressions", type=int, default=8)
    parser.add_argument("--first-identity", type=int, default=1000)
    parser.add_argument("--skip-fvc", action="store_true", help="synthetic sets only")
    args = parser.parse_args(argv)
    if args.fingers < 2 or args.impressions < 2:
        parser.error("need at least 2 fingers and 2 impressions")

    identities = range(args.first_identity, args.first_identity + args.fingers)
    master_s = _time_masters(identities)
    station, impression_s = _synthetic_images(
        identities, args.impressions, lambda _: ImpressionSettings()
    )
    fvc_like, _ = _synthetic_images(identities, args.impressions, fvc2002_settings)
    size = f"{args.fingers} x {args.impressions}"
    sets = [
        _evaluate(f"synthetic, station use ({size}, R30x format)", station, SENSOR_DPI),
        _evaluate(f"synthetic, FVC2002 protocol ({size}, R30x format)", fvc_like, SENSOR_DPI),
    ]
    image_finger_s = math.nan
    if not args.skip_fvc:
        db1 = _fvc_images("db1_b")
        start = time.process_time()
        db1_module = _as_module(db1)
        image_finger_s = (time.process_time() - start) / len(db1)
        sets += [
            _evaluate("FVC2002 db1_b (optical, 500 dpi)", db1, 500.0),
            _evaluate("FVC2002 db1_b through ImageFinger (R30x format)", db1_module, SENSOR_DPI),
            _evaluate("FVC2002 db4_b (SFinGe v2.51)", _fvc_images("db4_b"), 500.0),
        ]
    print("Project extractor and matcher (`edge.biometrics`); FVC and extended protocols.\n")
    print(
        "| set | images | failed to enrol | minutiae (median) | quality (median) | "
        "genuine score mean ± sd | impostor score mean ± sd | d' | EER (FVC) | EER (ext.) | "
        "FMR100 (ext.) | extraction ms (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for figures in sets:
        print(_row(figures))
    if not args.skip_fvc:
        synth, real, real_module, sfinge = sets[1:]
        print(
            f"\nd' ratio, synthetic under the FVC2002 protocol / db1_b: "
            f"{synth.d_prime / real.d_prime:.2f}; / db1_b in R30x format: "
            f"{synth.d_prime / real_module.d_prime:.2f}; / db4_b (SFinGe): "
            f"{synth.d_prime / sfinge.d_prime:.2f} (1 = as separable as that set; well above 1 "
            "= too easy to be realistic)."
        )
    master_ms = statistics.median(master_s) * 1e3
    impression_ms = statistics.median(impression_s) * 1e3
    print(
        f"\nGeneration (CPU time): master print median {master_ms:.0f} ms (goal < 500 ms), "
        f"impression median {impression_ms:.1f} ms (goal < 100 ms); baseline, an ImageFinger "
        "capture of a stored FVC image (read, resample, crop, quantise): "
        f"{image_finger_s * 1e3:.1f} ms; "
        f"ratio impression / baseline {impression_ms / (image_finger_s * 1e3):.2f}."
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
