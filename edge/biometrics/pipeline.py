"""The extraction pipeline: grey image in, minutiae, quality and template out.

Stages (each in its own module): input checks and resampling to 500 dpi (:mod:`.resolution`),
block spectra with orientation, coherence and frequency (:mod:`.blocks`), foreground
segmentation (:mod:`.segment`), contextual filtering (:mod:`.enhance`), binarisation and
thinning (here), minutiae detection and cleaning (:mod:`.minutiae`), quality (:mod:`.quality`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from skimage.morphology import skeletonize

from .allocator import keep_large_blocks
from .blocks import STEP, block_field, block_spectra, sample_blocks
from .enhance import enhance
from .errors import NoFingerprint
from .minutiae import BIFURCATION, RawMinutiae, detect, distance_to_background
from .minutiae import remove_false_minutiae as _remove_false
from .quality import QualityReport, assess
from .resolution import WORKING_DPI, check_image, to_working_resolution
from .segment import block_mask, pixel_mask, tile_spread
from .types import FingerTemplate, Minutia, MinutiaKind

# Fewer foreground pixels than this (about 4 x 4 mm of skin) and there is no print to read.
_MIN_FOREGROUND_MM2 = 16.0


@dataclass(frozen=True, slots=True, eq=False)
class Extraction:
    """Everything the extractor found in one image.

    Attributes
    ----------
    minutiae : tuple of Minutia
        In the input image's pixels, ISO/IEC 19794-2 angle convention.
    quality : QualityReport
    template : FingerTemplate
        The minutiae with the image size and resolution; position UNKNOWN (callers set it with
        ``dataclasses.replace``).
    scale : float
        Working pixels per input pixel; the maps below are at working resolution.
    mask : (P, Q) ndarray of bool
        Foreground.
    orientation : (R, C) ndarray of float32
        Ridge orientation per 16-pixel block, [0, pi), image coordinates (y downwards).
    coherence : (R, C) ndarray of float32
    frequency : (R, C) ndarray of float32
        Ridge frequency, cycles per working pixel.
    enhanced : (P, Q) ndarray of float32
        Contextually filtered image, ridges positive.
    skeleton : (P, Q) ndarray of bool
    """

    minutiae: tuple[Minutia, ...]
    quality: QualityReport
    template: FingerTemplate
    scale: float
    mask: NDArray[np.bool_]
    orientation: NDArray[np.float32]
    coherence: NDArray[np.float32]
    frequency: NDArray[np.float32]
    enhanced: NDArray[np.float32]
    skeleton: NDArray[np.bool_]


def _minutia_reliability(
    raw: RawMinutiae,
    *,
    coherence: NDArray[np.float32],
    band_share: NDArray[np.float32],
    border: NDArray[np.float32],
    period: float,
) -> NDArray[np.float32]:
    """Reliability in [0, 1] of each minutia: clear, coherent ridges away from the border."""
    coh = np.clip((sample_blocks(coherence, raw.rc) - 0.2) / 0.6, 0.0, 1.0)
    share = np.clip((sample_blocks(band_share, raw.rc) - 0.3) / 0.5, 0.0, 1.0)
    edge = np.clip(border / (3.0 * period), 0.0, 1.0)
    return np.asarray(np.sqrt(coh * share) * (0.5 + 0.5 * edge), dtype=np.float32)


def extract(image: NDArray[np.uint8], *, dpi: float) -> Extraction:
    """Extract minutiae and quality from a fingerprint image.

    Parameters
    ----------
    image : (M, N) ndarray of uint8
        Grey image, ridges dark, as captured (plain impression).
    dpi : float
        Resolution, dots per inch (250-1200; 500-569 for usual sensors, 508 for R30x).

    Returns
    -------
    Extraction

    Raises
    ------
    InvalidImage, InvalidResolution
        Not a 2-D uint8 array of a plausible size, or an implausible resolution.
    NoFingerprint
        Blank or saturated image, or too little ridge area.
    """
    check_image(image, dpi=dpi)
    keep_large_blocks()  # large temporaries: reuse heap blocks rather than fresh pages
    grey, scale = to_working_resolution(image, dpi=dpi)
    px_per_mm = WORKING_DPI / 25.4
    signal = np.float32(grey.mean()) - grey  # ridges positive
    spectra = block_spectra(signal)
    field = block_field(spectra)
    blocks_fg = block_mask(field, tile_spread(grey))
    mask = pixel_mask(blocks_fg, grey.shape)
    area_mm2 = float(mask.sum()) / px_per_mm**2
    if area_mm2 < _MIN_FOREGROUND_MM2:
        raise NoFingerprint(
            f"no ridge pattern found: {area_mm2:.1f} mm2 of ridges, need {_MIN_FOREGROUND_MM2}",
            reason="no_ridges",
            value=area_mm2,
        )
    enhanced = enhance(spectra, field, where=blocks_fg)
    ridges = (enhanced > 0) & mask
    skeleton = _thin(ridges, mask)
    period = float(1.0 / np.median(field.frequency[blocks_fg]))
    raw = detect(skeleton, ridges, field.orientation, period=period)
    border = distance_to_background(blocks_fg, raw.rc, step=STEP, shape=grey.shape)
    kept = _remove_false(raw, period=period, border_distance=border)
    band_share = field.energy / (field.total_energy + np.float32(1e-6))
    kept_border = distance_to_background(blocks_fg, kept.rc, step=STEP, shape=grey.shape)
    reliability = _minutia_reliability(
        kept, coherence=field.coherence, band_share=band_share, border=kept_border, period=period
    )
    quality = assess(
        grey=grey,
        mask=mask,
        block_mask=blocks_fg,
        coherence=field.coherence,
        frequency=field.frequency,
        band_share=band_share,
        minutiae_quality=reliability,
        px_per_mm=px_per_mm,
    )
    minutiae = _to_minutiae(kept, reliability, scale=scale, shape=image.shape)
    template = FingerTemplate(
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        dpi=float(dpi),
        minutiae=minutiae,
        quality=quality.score,
    )
    return Extraction(
        minutiae=minutiae,
        quality=quality,
        template=template,
        scale=scale,
        mask=mask,
        orientation=field.orientation,
        coherence=field.coherence,
        frequency=field.frequency,
        enhanced=enhanced,
        skeleton=skeleton,
    )


def _thin(ridges: NDArray[np.bool_], mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Skeleton of the ridges, thinned only within the bounding box of the foreground."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    skeleton = np.zeros_like(ridges)
    skeleton[box] = skeletonize(ridges[box])  # type: ignore[no-untyped-call]
    return skeleton


def _to_minutiae(
    raw: RawMinutiae,
    reliability: NDArray[np.float32],
    *,
    scale: float,
    shape: tuple[int, ...],
) -> tuple[Minutia, ...]:
    """Map working-resolution minutiae to the input image and the ISO angle convention."""
    xs = np.clip(np.rint(raw.rc[:, 1] / scale), 0, shape[1] - 1).astype(int)
    ys = np.clip(np.rint(raw.rc[:, 0] / scale), 0, shape[0] - 1).astype(int)
    # Image coordinates have y downwards; ISO angles are counter-clockwise with y upwards.
    angles = np.mod(-raw.angle.astype(np.float64), 2 * np.pi)
    quality = np.clip(np.rint(100.0 * reliability), 0, 100).astype(int)
    kinds = np.where(raw.kind == BIFURCATION, MinutiaKind.BIFURCATION, MinutiaKind.ENDING)
    return tuple(
        Minutia(x=int(x), y=int(y), angle=float(a), kind=MinutiaKind(int(k)), quality=int(q))
        for x, y, a, k, q in zip(xs, ys, angles, kinds, quality, strict=True)
    )
