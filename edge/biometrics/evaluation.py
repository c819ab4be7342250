"""Accuracy and speed of the extractor and the matcher on folders of real fingerprints.

Protocols (as in ../shared/data/README.md, so that figures compare with published ones), on a
folder in FVC naming ``<finger>_<impression>.<ext>``:

* genuine pairs: every pair of impressions of the same finger (280 for 10 x 8 images);
* FVC impostor pairs: the first impression of each finger against the first impression of
  every other finger (45);
* extended impostor pairs: every pair of impressions of different fingers (2,880).

Rates are fractions. A threshold ``t`` accepts a pair whose score is ``>= t``:
``FMR(t)`` is the share of impostor scores ``>= t``, ``FNMR(t)`` the share of genuine scores
``< t``. The EER follows FVC (Maio et al., "FVC2000: Fingerprint Verification Competition",
IEEE TPAMI 24(3), 2002): ``t1`` is the highest threshold with ``FNMR <= FMR``, ``t2`` the lowest
with ``FNMR >= FMR``, and the EER is the middle of the interval of the two rates at whichever
of ``t1``, ``t2`` brings them closer. ``FMR100``, ``FMR1000`` and ``ZeroFMR`` are the lowest
FNMR at FMR <= 1 %, 0.1 % and 0.

An image the extractor refuses counts as a failure to enrol: each of its comparisons gets the
score minus infinity (a false non-match for genuine pairs, a correct rejection otherwise).

The error-versus-reject curve (Grother and Tabassi, "Performance of biometric quality
measures", IEEE TPAMI 29(4), 2007; ISO/IEC 29794-1) asks whether quality predicts failure:
the threshold is fixed at FMR = 1 % on all extended impostor pairs, then the worst 0, 5, 10
and 20 % of images by quality score are rejected (a genuine pair is dropped when either of its
images is) and the FNMR of the genuine pairs that remain is reported. A quality measure that
works makes the curve fall.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from . import compare_prepared, extract, prepare
from .errors import BiometricError
from .iso19794 import TemplateFormatError, decode_template
from .quality import QualityReport
from .types import FingerTemplate

__all__ = [
    "ERC_REJECT_FRACTIONS",
    "FIGURE_KEYS",
    "Engine",
    "Sample",
    "SetResult",
    "default_engine",
    "default_processes",
    "eer",
    "error_versus_reject",
    "evaluate_folder",
    "extended_impostor_pairs",
    "fnmr_at_fmr",
    "fvc_impostor_pairs",
    "genuine_pairs",
    "load_grey_image",
    "scan_folder",
    "summarise",
]

IMAGE_SUFFIXES = frozenset({".tif", ".tiff", ".png", ".bmp"})
RECORD_SUFFIXES = frozenset({".iso", ".ansi", ".fmr", ".ist"})
ERC_REJECT_FRACTIONS: tuple[float, ...] = (0.0, 0.05, 0.10, 0.20)
ERC_FMR = 0.01
# The figures of a set that ``summarise`` averages (besides the error-versus-reject curve).
FIGURE_KEYS: tuple[str, ...] = (
    "eer_fvc",
    "eer_ext",
    "fmr100_ext",
    "fmr1000_ext",
    "zerofmr_ext",
    "extract_ms_median",
    "compare_ms_median",
)
_FVC_NAME = re.compile(r"^(?P<finger>\d+)_(?P<impression>\d+)$")
# Rates are compared against counts; a tiny slack keeps 0.01 * 2880 = 28.8 from rounding to
# 28.799999... in floating point.
_RATE_SLACK = 1e-9
# Pairs per task when comparisons are spread over processes: enough to make the per-task
# overhead negligible, few enough to keep both workers busy to the end.
_PAIRS_PER_CHUNK = 100

Pair = tuple[int, int]


# --- metrics ------------------------------------------------------------------------------


def _as_scores(values: ArrayLike, name: str) -> NDArray[np.float64]:
    scores = np.asarray(values, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError(f"{name} scores are empty")
    if np.isnan(scores).any():
        raise ValueError(f"{name} scores contain NaN")
    return scores


def _rates(
    genuine: NDArray[np.float64], impostor: NDArray[np.float64], thresholds: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """FMR(t) = share of impostors >= t and FNMR(t) = share of genuine < t, for each t."""
    gen = np.sort(genuine)
    imp = np.sort(impostor)
    fnmr = np.searchsorted(gen, thresholds, side="left") / gen.size
    fmr = (imp.size - np.searchsorted(imp, thresholds, side="left")) / imp.size
    return fmr, fnmr


def eer(genuine: ArrayLike, impostor: ArrayLike) -> float:
    """Equal error rate as FVC computes it (see the module docstring).

    Parameters
    ----------
    genuine, impostor : (K,) array_like of float
        Scores of mated and non-mated pairs; higher means more similar. ``-inf`` is allowed
        (failure to enrol).

    Returns
    -------
    eer : float
        A fraction in [0, 1].

    Examples
    --------
    >>> eer([0.6, 0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.65])
    0.25
    """
    gen = _as_scores(genuine, "genuine")
    imp = _as_scores(impostor, "impostor")
    thresholds = np.unique(np.concatenate([gen, imp, [np.inf]]))
    fmr, fnmr = _rates(gen, imp, thresholds)
    below = np.flatnonzero(fnmr <= fmr)  # never empty: at the lowest score FNMR = 0
    above = np.flatnonzero(fnmr >= fmr)  # never empty: at +inf FMR = 0 and FNMR = 1
    t1, t2 = below[-1], above[0]
    if fnmr[t1] + fmr[t1] <= fnmr[t2] + fmr[t2]:
        low, high = fnmr[t1], fmr[t1]
    else:
        low, high = fmr[t2], fnmr[t2]
    return float((low + high) / 2.0)


def _threshold_at_fmr(impostor: NDArray[np.float64], fmr: float) -> float:
    """The lowest threshold whose FMR is <= ``fmr``: just above the (k+1)-th highest impostor
    score, k being the number of impostors the target allows. Returned as that score, to be
    used with a strict ``>``."""
    allowed = math.floor(fmr * impostor.size + _RATE_SLACK)
    if allowed >= impostor.size:
        return -math.inf
    return float(np.sort(impostor)[::-1][allowed])


def fnmr_at_fmr(genuine: ArrayLike, impostor: ArrayLike, *, fmr: float) -> float:
    """Lowest FNMR over the thresholds whose FMR is at most ``fmr``.

    Parameters
    ----------
    genuine, impostor : (K,) array_like of float
    fmr : float
        Target false match rate, a fraction: 0.01 for FMR100, 0.001 for FMR1000, 0 for
        ZeroFMR.

    Returns
    -------
    fnmr : float

    Examples
    --------
    >>> fnmr_at_fmr([0.5, 0.6, 0.9, 0.95], [0.1, 0.2, 0.7, 0.8], fmr=0.25)
    0.5
    """
    if not 0.0 <= fmr <= 1.0:
        raise ValueError(f"fmr must be a fraction in [0, 1], got {fmr}")
    gen = _as_scores(genuine, "genuine")
    imp = _as_scores(impostor, "impostor")
    cut = _threshold_at_fmr(imp, fmr)
    return float(np.count_nonzero(gen <= cut) / gen.size)


def error_versus_reject(
    genuine: ArrayLike,
    genuine_pairs: Sequence[Pair],
    impostor: ArrayLike,
    quality: ArrayLike,
    *,
    fractions: Sequence[float] = ERC_REJECT_FRACTIONS,
    fmr: float = ERC_FMR,
) -> dict[float, float]:
    """FNMR at a fixed FMR after rejecting the lowest-quality images.

    Parameters
    ----------
    genuine : (G,) array_like of float
        Genuine scores, ``genuine[k]`` for the images ``genuine_pairs[k]``.
    genuine_pairs : sequence of (int, int)
        Image indices of each genuine pair.
    impostor : (I,) array_like of float
        Impostor scores that fix the threshold (before any rejection).
    quality : (N,) array_like of float
        Quality score of each image; lower is worse. Ties are broken by image index.
    fractions : sequence of float
        Shares of images to reject, in [0, 1).
    fmr : float
        The false match rate that fixes the threshold.

    Returns
    -------
    curve : dict of float to float
        FNMR of the remaining genuine pairs for each rejected fraction (NaN when no genuine
        pair remains).
    """
    gen = _as_scores(genuine, "genuine")
    if len(genuine_pairs) != gen.size:
        raise ValueError(f"{gen.size} genuine scores but {len(genuine_pairs)} genuine pairs")
    cut = _threshold_at_fmr(_as_scores(impostor, "impostor"), fmr)
    q = np.asarray(quality, dtype=np.float64).ravel()
    order = np.lexsort((np.arange(q.size), q))  # worst first, stable on index
    pairs = np.asarray(genuine_pairs, dtype=np.intp).reshape(-1, 2)
    curve: dict[float, float] = {}
    for fraction in fractions:
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"reject fraction must be in [0, 1), got {fraction}")
        rejected = np.zeros(q.size, dtype=bool)
        rejected[order[: round(fraction * q.size)]] = True
        kept = ~(rejected[pairs[:, 0]] | rejected[pairs[:, 1]])
        curve[fraction] = (
            float(np.count_nonzero(gen[kept] <= cut) / kept.sum()) if kept.any() else math.nan
        )
    return curve


# --- data sets ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One image (or record) of a data set in FVC naming."""

    finger: str
    impression: int
    path: Path


def scan_folder(folder: Path) -> tuple[list[Sample], str]:
    """List the samples of a folder in FVC naming, images first.

    Returns the samples sorted by (finger, impression) and their kind, ``"images"`` or
    ``"records"``: a folder with images is evaluated on its images (any records beside them
    are ignored); a folder with records only is evaluated on its records.

    Raises
    ------
    ValueError
        The folder does not exist, or holds fewer than two fingers in FVC naming, or a finger
        with fewer than two impressions.
    """
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory")
    found: dict[str, list[Sample]] = {"images": [], "records": []}
    for path in folder.iterdir():
        match = _FVC_NAME.match(path.stem)
        suffix = path.suffix.lower()
        if match is None or not path.is_file():
            continue
        kind = (
            "images" if suffix in IMAGE_SUFFIXES else "records" if suffix in RECORD_SUFFIXES else ""
        )
        if kind:
            found[kind].append(Sample(match["finger"], int(match["impression"]), path))
    kind = "images" if found["images"] else "records"
    samples = sorted(found[kind], key=lambda s: (int(s.finger), s.finger, s.impression))
    fingers = {s.finger for s in samples}
    if len(fingers) < 2:
        raise ValueError(
            f"{folder}: needs at least two fingers named <finger>_<impression>.<ext> "
            f"(images: {', '.join(sorted(IMAGE_SUFFIXES))}; records: "
            f"{', '.join(sorted(RECORD_SUFFIXES))}), found {len(fingers)}"
        )
    keys = [(s.finger, s.impression) for s in samples]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{folder}: the same <finger>_<impression> appears twice")
    return samples, kind


def genuine_pairs(samples: Sequence[Sample]) -> list[Pair]:
    """Every pair of impressions of the same finger, (i, j) with i < j."""
    return [
        (i, j)
        for i in range(len(samples))
        for j in range(i + 1, len(samples))
        if samples[i].finger == samples[j].finger
    ]


def fvc_impostor_pairs(samples: Sequence[Sample]) -> list[Pair]:
    """The first impression of each finger against the first of every other finger."""
    first: dict[str, int] = {}
    for index, sample in enumerate(samples):
        best = first.get(sample.finger)
        if best is None or sample.impression < samples[best].impression:
            first[sample.finger] = index
    heads = sorted(first.values())
    return [(a, b) for k, a in enumerate(heads) for b in heads[k + 1 :]]


def extended_impostor_pairs(samples: Sequence[Sample]) -> list[Pair]:
    """Every pair of impressions of different fingers, (i, j) with i < j."""
    return [
        (i, j)
        for i in range(len(samples))
        for j in range(i + 1, len(samples))
        if samples[i].finger != samples[j].finger
    ]


def load_grey_image(path: Path) -> NDArray[np.uint8]:
    """Read an image file as an (M, N) uint8 grey array (colour is converted to luminance)."""
    with Image.open(path) as picture:
        grey = picture if picture.mode == "L" else picture.convert("L")
        return np.asarray(grey, dtype=np.uint8).copy()


# --- the engine under test ----------------------------------------------------------------


class _Extraction(Protocol):
    @property
    def template(self) -> FingerTemplate: ...

    @property
    def quality(self) -> QualityReport: ...


class Extractor(Protocol):
    def __call__(self, image: NDArray[np.uint8], *, dpi: float) -> _Extraction: ...


@dataclass(frozen=True, slots=True)
class Engine:
    """The extractor and matcher to evaluate. Functions must be importable at module level
    (they are sent to worker processes by reference)."""

    extract: Extractor
    prepare: Callable[[FingerTemplate], Any]
    compare: Callable[[Any, Any], float]


def default_engine() -> Engine:
    """The project's own extractor and matcher (``edge.biometrics``)."""
    return Engine(extract=extract, prepare=prepare, compare=compare_prepared)


@dataclass(frozen=True, slots=True)
class _Enrolled:
    template: FingerTemplate | None  # None: the extractor refused the image
    quality: float
    seconds: float | None  # extraction time; None for a record made elsewhere
    error: str = ""


def _extract_sample(task: tuple[Path, float, Extractor]) -> _Enrolled:
    path, dpi, extract = task
    image = load_grey_image(path)
    start = time.perf_counter()
    try:
        extraction = extract(image, dpi=dpi)
    except BiometricError as error:
        return _Enrolled(None, -math.inf, time.perf_counter() - start, f"{path.name}: {error}")
    elapsed = time.perf_counter() - start
    return _Enrolled(extraction.template, float(extraction.quality.score), elapsed)


def _read_record(path: Path) -> _Enrolled:
    try:
        record = decode_template(path.read_bytes())
    except TemplateFormatError as error:
        raise TemplateFormatError(
            error.reason, field=f"{path.name}: {error.field}", offset=error.offset
        ) from error
    if not record.views:
        return _Enrolled(None, -math.inf, None, f"{path.name}: record holds no finger view")
    view = record.views[0]
    return _Enrolled(view, float(view.quality), None)


class _Comparer:
    """Scores pairs of a set's templates, preparing each template once (per process)."""

    def __init__(self, templates: Sequence[FingerTemplate | None], engine: Engine) -> None:
        self.templates = templates
        self.engine = engine
        self.prepared: dict[int, Any] = {}

    def _prepared(self, index: int) -> Any:
        if index not in self.prepared:
            template = self.templates[index]
            self.prepared[index] = None if template is None else self.engine.prepare(template)
        return self.prepared[index]

    def run(self, pairs: Sequence[Pair]) -> list[tuple[float, float | None]]:
        """Score and comparison time (None for a failure to enrol) of each pair."""
        results: list[tuple[float, float | None]] = []
        for a, b in pairs:
            pa, pb = self._prepared(a), self._prepared(b)
            if pa is None or pb is None:
                results.append((-math.inf, None))
                continue
            start = time.perf_counter()
            score = self.engine.compare(pa, pb)
            results.append((float(score), time.perf_counter() - start))
        return results


# The comparer of a worker process, set once by the pool's initializer.
_worker_comparer: _Comparer | None = None


def _start_comparer(templates: Sequence[FingerTemplate | None], engine: Engine) -> None:
    global _worker_comparer  # one per worker process, set once at its start
    _worker_comparer = _Comparer(templates, engine)


def _compare_in_worker(pairs: Sequence[Pair]) -> list[tuple[float, float | None]]:
    assert _worker_comparer is not None, "pool started without _start_comparer"
    return _worker_comparer.run(pairs)


# --- running a set ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetResult:
    """The figures of one data set (rates as fractions, times in milliseconds)."""

    eer_fvc: float
    eer_ext: float
    fmr100_ext: float
    fmr1000_ext: float
    zerofmr_ext: float
    # Times differ from run to run: they take no part in comparing results.
    extract_ms_median: float | None = field(compare=False)
    compare_ms_median: float | None = field(compare=False)
    erc_fnmr_at_fmr1: dict[str, float]
    images: int = 0
    extract_failures: int = 0
    failures: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, object]:
        """The set's entry of ``dr-bio eval``'s JSON (failures are listed by count only)."""
        return {
            "eer_fvc": self.eer_fvc,
            "eer_ext": self.eer_ext,
            "fmr100_ext": self.fmr100_ext,
            "fmr1000_ext": self.fmr1000_ext,
            "zerofmr_ext": self.zerofmr_ext,
            "extract_ms_median": self.extract_ms_median,
            "compare_ms_median": self.compare_ms_median,
            "erc_fnmr_at_fmr1": {
                k: None if math.isnan(v) else v for k, v in self.erc_fnmr_at_fmr1.items()
            },
            "images": self.images,
            "extract_failures": self.extract_failures,
        }


def _pool(
    processes: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> concurrent.futures.ProcessPoolExecutor:
    # Spawned, not forked: the caller may run threads (pytest-xdist, an asyncio loop) that a
    # fork would copy in an unknown state.
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer,
        initargs=initargs,
    )


def _chunks(pairs: Sequence[Pair], size: int) -> Iterable[Sequence[Pair]]:
    for start in range(0, len(pairs), size):
        yield pairs[start : start + size]


def evaluate_folder(
    folder: Path,
    *,
    dpi: float,
    engine: Engine | None = None,
    processes: int = 1,
) -> SetResult:
    """Run the FVC and extended protocols on one folder.

    Parameters
    ----------
    folder : Path
        Images ``<finger>_<impression>.(tif|png|bmp)``, or, when it holds no image, minutiae
        records (ISO/IEC 19794-2 or ANSI/INCITS 378) in the same naming: then only the matcher
        is measured, the extraction figures are ``None`` and the error-versus-reject curve
        uses the records' finger quality.
    dpi : float
        Resolution of the images (records carry their own).
    engine : Engine, optional
        Extractor and matcher (default: :func:`default_engine`).
    processes : int
        Worker processes for extraction and comparison (1: run in this process). Times are
        measured per image and per pair inside the workers.

    Returns
    -------
    result : SetResult
    """
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    samples, kind = scan_folder(folder)
    engine = engine or default_engine()
    gen_pairs = genuine_pairs(samples)
    ext_pairs = extended_impostor_pairs(samples)
    fvc_pairs = fvc_impostor_pairs(samples)
    if kind == "images":
        tasks = [(s.path, float(dpi), engine.extract) for s in samples]
        if processes == 1:
            enrolled = [_extract_sample(task) for task in tasks]
        else:
            with _pool(processes) as pool:
                enrolled = list(pool.map(_extract_sample, tasks))
    else:
        enrolled = [_read_record(s.path) for s in samples]
    templates = [e.template for e in enrolled]
    all_pairs = gen_pairs + ext_pairs
    if processes == 1:
        compared = _Comparer(templates, engine).run(all_pairs)
    else:
        # Each worker gets every template once and prepares those it meets; chunks are
        # small enough to balance the two workers.
        with _pool(processes, initializer=_start_comparer, initargs=(templates, engine)) as pool:
            chunks = pool.map(_compare_in_worker, _chunks(all_pairs, _PAIRS_PER_CHUNK))
            compared = [result for chunk in chunks for result in chunk]
    scores = dict(zip(all_pairs, (score for score, _ in compared), strict=True))
    genuine = np.array([scores[p] for p in gen_pairs], dtype=np.float64)
    impostor_ext = np.array([scores[p] for p in ext_pairs], dtype=np.float64)
    impostor_fvc = np.array([scores[p] for p in fvc_pairs], dtype=np.float64)
    erc = error_versus_reject(genuine, gen_pairs, impostor_ext, [e.quality for e in enrolled])
    extract_times = [e.seconds for e in enrolled if e.seconds is not None]
    compare_times = [seconds for _, seconds in compared if seconds is not None]
    failures = tuple(e.error for e in enrolled if e.template is None)
    return SetResult(
        eer_fvc=eer(genuine, impostor_fvc),
        eer_ext=eer(genuine, impostor_ext),
        fmr100_ext=fnmr_at_fmr(genuine, impostor_ext, fmr=0.01),
        fmr1000_ext=fnmr_at_fmr(genuine, impostor_ext, fmr=0.001),
        zerofmr_ext=fnmr_at_fmr(genuine, impostor_ext, fmr=0.0),
        extract_ms_median=_median_ms(extract_times),
        compare_ms_median=_median_ms(compare_times),
        erc_fnmr_at_fmr1={_percent_key(f): v for f, v in erc.items()},
        images=len(samples),
        extract_failures=len(failures),
        failures=failures,
    )


def _median_ms(seconds: Sequence[float]) -> float | None:
    return statistics.median(seconds) * 1000.0 if seconds else None


def _percent_key(fraction: float) -> str:
    return f"{fraction * 100:g}"


def summarise(results: dict[str, SetResult]) -> dict[str, object]:
    """``{"sets": {name: figures}, "mean": figures}``: the mean of each figure over the sets
    that have it (``None`` when none has)."""
    sets = {name: result.to_json() for name, result in results.items()}

    def mean(values: Iterable[object]) -> float | None:
        numbers = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
        return statistics.fmean(numbers) if numbers else None

    averaged: dict[str, object] = {key: mean(s[key] for s in sets.values()) for key in FIGURE_KEYS}
    erc_keys = [_percent_key(f) for f in ERC_REJECT_FRACTIONS]
    averaged["erc_fnmr_at_fmr1"] = {
        k: mean(_erc(s).get(k) for s in sets.values()) for k in erc_keys
    }
    return {"sets": sets, "mean": averaged}


def _erc(figures: dict[str, object]) -> dict[str, object]:
    value = figures.get("erc_fnmr_at_fmr1")
    return value if isinstance(value, dict) else {}


def default_processes() -> int:
    """Worker processes for a run: the CPUs this process may use, at most 2 (the DR box)."""
    return max(1, min(2, len(os.sched_getaffinity(0))))
