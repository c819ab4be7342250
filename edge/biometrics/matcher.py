"""Minutiae matcher: Minutia Cylinder-Code local descriptors, consolidated by relaxation.

Each minutia gets a cylinder: a 3-D histogram of the neighbouring minutiae, in a disc of radius
``RADIUS`` rotated into the minutia's own frame (so it is invariant to rotation and
translation), with ``N_S x N_S`` spatial cells and ``N_D`` angular sections (Cappelli, Ferrara
and Maltoni, "Minutia Cylinder-Code: a new representation and matching technique for
fingerprint recognition", IEEE TPAMI 32(12), 2010). Two templates are compared by the
similarity of all their cylinder pairs, computed at once with matrix products, then by a
global consolidation: the most similar pairs are relaxed against each other's geometric
compatibility (distances, relative directions), so that pairs agreeing with many others keep
their weight and coincidental ones lose it (LSS-R in the same paper). Two departures from the
paper, both for partial prints: the geometric compatibility of two pairs tolerates a distance
difference that grows with the distance (skin stretches: distortion accumulates along a
segment), and the number of pairs that make the score follows the number of minutiae in the
region where the two prints overlap (estimated after aligning them on the best pairs) rather
than the sizes of the whole templates, so that a genuine pair seen through a small common area
is not averaged with pairs that cannot exist. Geometry is in 500-dpi pixels: every template is
scaled from its own resolution first.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import ConvexHull, QhullError
from scipy.special import erf

from .errors import InvalidTemplate
from .types import FingerTemplate

_REFERENCE_DPI = 500.0

# Cylinder geometry (Cappelli et al. 2010, tuned values at 500 dpi).
RADIUS = 70.0
N_S = 16
N_D = 6
_SIGMA_S = 28.0 / 3.0 * (16 / N_S) ** 0.5
_SIGMA_D = 2.0 * math.pi / 9.0
_MU_PSI = 0.01
_TAU_PSI = 400.0
_HULL_MARGIN = 50.0
_MIN_VALID_CELLS = 0.75
_MIN_NEIGHBOURS = 2
_MIN_MATCHABLE = 0.6
_MAX_DIRECTION_DIFFERENCE = math.pi / 2

# Consolidation (LSS-R, parameters of Cappelli et al. 2010).
_MIN_PAIRS, _MAX_PAIRS = 4, 12
_MU_P, _TAU_P = 20.0, 0.4
_RELAX_WEIGHT = 0.5
_RELAX_ITERATIONS = 5
_MU_RHO = (5.0, math.pi / 12, math.pi / 12)
_TAU_RHO = (-8.0 / 5.0, -30.0, -30.0)
# Distance differences are compared net of this share of the distance (3 % strain): elastic
# distortion of the skin between two impressions adds up along a segment, so a fixed 5-pixel
# tolerance (the paper's) rejects true pairs far apart (NBIS bozorth3 likewise scales its
# distance tolerance with the distance).
_DISTANCE_STRAIN = 0.03
# The compatibility sigmoids Z(d) = 1 / (1 + exp(-tau (d - mu))) are computed as
# 1 / (1 + exp(slope d + offset)) with slope = -tau, offset = tau mu: (1, 3, 1) factors that
# broadcast over the stacked (m, 3, m) differences (the geometry is stored times the
# slopes). The exponent is capped (Z = 1e-11 there) so that the product of three terms stays
# finite in float32.
_RHO_SLOPE = -np.array(_TAU_RHO, dtype=np.float32)[None, :, None]
_RHO_OFFSET = (np.array(_TAU_RHO, dtype=np.float32) * np.array(_MU_RHO, dtype=np.float32))[
    None, :, None
]
# A full turn in the units of the two (slope-scaled) angle measures.
_SCALED_TURN = 2 * np.pi * _RHO_SLOPE[:, 1:]
_RHO_EXPONENT_CAP = 25.0

_CELL = 2.0 * RADIUS / N_S
_ANGLE_STEP = 2.0 * math.pi / N_D


@dataclass(frozen=True, slots=True, eq=False)
class PreparedTemplate:
    """A template turned into what :func:`compare_prepared` needs.

    Attributes
    ----------
    xy : (K, 2) ndarray of float32
        Positions of the minutiae with a valid cylinder, 500-dpi pixels, y upwards.
    angle : (K,) ndarray of float32
        Their directions, radians.
    weight : (K,) ndarray of float32
        Their reliability in [0, 1], from the minutia quality.
    values_t : (D * N_D, K) ndarray of float32
        Cylinder cell values in [0, 1] of the D spatial cells inside the disc (the others
        are never valid, so they are not stored), zero outside the valid cells; one column
        per cylinder (stored once, in the layout the products read fastest).
    cell_stack : (2 K, D) ndarray of float32
        Rows 0..K-1: ``values ** 2`` summed over the angular sections of each spatial cell;
        rows K..2K-1: 1 for valid spatial cells, else 0.
    valid_t : (D, K) ndarray of float32
        The validity rows, transposed and contiguous.
    square_t : (D, K) ndarray of float32
        The squared-value rows, transposed and contiguous.
    unit : (K, 2) ndarray of float32
        Unit vectors of the directions.
    geometry : (K, 3, K) ndarray of float32
        For every two minutiae (i, j), at ``[i, :, j]``: their distance, the difference of
        their directions, and the angle from the direction of i to the segment from i to j,
        each multiplied by the slope of its compatibility sigmoid (the geometry the
        consolidation compares, computed once per template and stacked so that two gathers
        serve the three).
    frame : (K, 5) ndarray of float32
        ``x, y, cos, sin, 1`` per cylinder: what the alignment sums over.
    minutiae_count : int
        Minutiae in the template (with or without a valid cylinder).
    points : (minutiae_count, 3) ndarray of float32
        ``x, y, 1`` of every minutia.
    halfplanes : (F, 3) ndarray of float32 or None
        The convex hull of the minutiae as half-planes ``n_x x + n_y y + d <= 0`` (unit
        normals); None when the minutiae span no area.
    """

    xy: NDArray[np.float32]
    angle: NDArray[np.float32]
    weight: NDArray[np.float32]
    values_t: NDArray[np.float32]
    cell_stack: NDArray[np.float32]
    valid_t: NDArray[np.float32]
    square_t: NDArray[np.float32]
    unit: NDArray[np.float32]
    geometry: NDArray[np.float32]
    frame: NDArray[np.float32]
    minutiae_count: int
    points: NDArray[np.float32]
    halfplanes: NDArray[np.float32] | None


def _angle_diff(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """Signed difference a - b wrapped to [-pi, pi)."""
    return np.asarray(np.mod(a - b + np.pi, 2 * np.pi) - np.pi, dtype=np.float32)


def _cell_offsets() -> NDArray[np.float32]:
    idx = (np.arange(N_S, dtype=np.float32) - (N_S - 1) / 2) * _CELL
    ii, jj = np.meshgrid(idx, idx, indexing="ij")
    return np.stack([ii.ravel(), jj.ravel()], axis=1)  # (cells, 2) in the minutia frame


_OFFSETS = _cell_offsets()
_IN_DISC = np.hypot(_OFFSETS[:, 0], _OFFSETS[:, 1]) <= RADIUS
_SECTIONS = (-np.pi + (np.arange(N_D) + 0.5) * _ANGLE_STEP).astype(np.float32)


def _template_arrays(t: FingerTemplate) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    if not (math.isfinite(t.dpi) and t.dpi > 0):
        raise InvalidTemplate(f"template resolution must be a positive number, got {t.dpi}")
    k = _REFERENCE_DPI / t.dpi
    xy = np.array([(m.x * k, -m.y * k) for m in t.minutiae], dtype=np.float32).reshape(-1, 2)
    angle = np.array([m.angle for m in t.minutiae], dtype=np.float32)
    return xy, angle


def _hull_halfplanes(xy: NDArray[np.float32]) -> NDArray[np.float32] | None:
    """The convex hull of ``xy`` as (F, 3) half-planes ``[n_x, n_y, d]``, unit outward normals:
    ``p`` is inside when ``n . p + d <= 0`` for all. None when the points span no area."""
    if xy.shape[0] < 3:
        return None
    try:
        hull = ConvexHull(xy)
    except QhullError:  # collinear minutiae: no area to restrict to
        return None
    return np.asarray(hull.equations, dtype=np.float32)


def _near_hull(
    halfplanes: NDArray[np.float32] | None, points: NDArray[np.float32]
) -> NDArray[np.bool_]:
    """Which points lie in the hull grown by the hull margin (all of them without a hull)."""
    if halfplanes is None:
        return np.ones(points.shape[:-1], dtype=bool)
    dist = points @ halfplanes[:, :2].T + halfplanes[:, 2]
    return np.asarray((dist <= _HULL_MARGIN).all(axis=-1))


def prepare(template: FingerTemplate) -> PreparedTemplate:
    """Compute the cylinders of a template.

    Parameters
    ----------
    template : FingerTemplate

    Returns
    -------
    PreparedTemplate

    Raises
    ------
    InvalidTemplate
        Absurd resolution.
    """
    xy, angle = _template_arrays(template)
    n = xy.shape[0]
    weight = np.array([m.quality for m in template.minutiae], dtype=np.float32) / 100.0
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    # Cell centres in template coordinates: rotate the offsets into each minutia's frame.
    rot = np.stack([np.stack([cos_a, -sin_a], -1), np.stack([sin_a, cos_a], -1)], -2)
    centres = xy[:, None, :] + _OFFSETS[None, :, :] @ rot.transpose(0, 2, 1)  # (n, cells, 2)
    halfplanes = _hull_halfplanes(xy)
    valid_cells = _IN_DISC[None, :] & _near_hull(halfplanes, centres)
    # Spatial contribution of every neighbour to every cell: (n, cells, n).
    d2 = ((centres[:, :, None, :] - xy[None, None, :, :]) ** 2).sum(-1)
    spatial = np.exp(-d2 / (2 * _SIGMA_S**2)) / (_SIGMA_S * math.sqrt(2 * math.pi))
    spatial[d2 > (3 * _SIGMA_S) ** 2] = 0.0
    self_idx = np.arange(n)
    spatial[self_idx, :, self_idx] = 0.0
    # Directional contribution: (n, n, N_D), the Gaussian mass of the angle difference within
    # each section.
    rel = _angle_diff(angle[None, :], angle[:, None])  # direction of neighbour relative to m
    dphi = _angle_diff(_SECTIONS[None, None, :], rel[:, :, None])
    scale = 1.0 / (_SIGMA_D * math.sqrt(2.0))
    directional = 0.5 * (
        erf((dphi + _ANGLE_STEP / 2) * scale) - erf((dphi - _ANGLE_STEP / 2) * scale)
    )
    raw = spatial.astype(np.float32) @ directional.astype(np.float32)  # (n, cells, N_D)
    values = 1.0 / (1.0 + np.exp(-_TAU_PSI * (raw - _MU_PSI)))
    values *= valid_cells[:, :, None]
    neighbours = (
        ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1) <= (RADIUS + 3 * _SIGMA_S) ** 2
    ).sum(1) - 1
    keep = (valid_cells.sum(1) >= _MIN_VALID_CELLS * _IN_DISC.sum()) & (
        neighbours >= _MIN_NEIGHBOURS
    )
    kept = values[keep][:, _IN_DISC].astype(np.float32)  # (K, cells in the disc, N_D)
    valid_kept = valid_cells[keep][:, _IN_DISC].astype(np.float32)
    squares = (kept * kept).sum(axis=2)
    xy_kept, angle_kept = xy[keep], angle[keep]
    seg = xy_kept[None, :, :] - xy_kept[:, None, :]  # (i, j): from minutia i to minutia j
    geometry = np.stack(
        [
            np.hypot(seg[..., 0], seg[..., 1]),
            _angle_diff(angle_kept[:, None], angle_kept[None, :]),
            _angle_diff(angle_kept[:, None], np.arctan2(seg[..., 1], seg[..., 0])),
        ],
        axis=1,
    )
    geometry *= _RHO_SLOPE
    unit = np.stack([np.cos(angle_kept), np.sin(angle_kept)], axis=1).astype(np.float32)
    ones = np.ones((n, 1), dtype=np.float32)
    return PreparedTemplate(
        xy=xy_kept,
        angle=angle_kept,
        weight=weight[keep],
        unit=unit,
        geometry=np.ascontiguousarray(geometry, dtype=np.float32),
        values_t=np.ascontiguousarray(kept.reshape(kept.shape[0], kept.shape[1] * N_D).T),
        cell_stack=np.concatenate([squares, valid_kept]).astype(np.float32),
        valid_t=np.ascontiguousarray(valid_kept.T),
        square_t=np.ascontiguousarray(squares.T, dtype=np.float32),
        frame=np.concatenate([xy_kept, unit, ones[: xy_kept.shape[0]]], axis=1),
        minutiae_count=n,
        points=np.concatenate([xy, ones], axis=1),
        halfplanes=halfplanes,
    )


def local_similarities(a: PreparedTemplate, b: PreparedTemplate) -> NDArray[np.float32]:
    """Similarity in [0, 1] of every cylinder of ``a`` with every cylinder of ``b``.

    Parameters
    ----------
    a, b : PreparedTemplate

    Returns
    -------
    (K_a, K_b) ndarray of float32
    """
    # Only the dot product needs the angular sections; validity is per spatial cell, so the
    # norms restricted to the common cells and the common count are 6 times cheaper: the
    # [squares; valid] stack of a against b's valid cells gives |a|^2 over the cells valid in b
    # and the common count, a's valid cells against b's squares give |b|^2 over a's.
    na = a.values_t.shape[1]
    # ndarray.dot rather than @: the same BLAS call with less dispatch around it.
    dot = a.values_t.T.dot(b.values_t)
    cells = a.cell_stack.dot(b.valid_t)
    norm_a2 = cells[:na]
    common = cells[na:]
    norm_b2 = a.cell_stack[na:].dot(b.square_t)
    denom = np.sqrt(norm_a2)
    denom += np.sqrt(norm_b2)
    # Zero only where fewer cells are common than a comparison needs (valid cells are never
    # 0: the sigmoid of an empty cell is 0.018), and those pairs are masked below.
    denom += 1e-6
    # Distance |a - b| over the common cells, in place (each call costs more than its
    # arithmetic at this size).
    dot *= -2.0
    dot += norm_a2
    dot += norm_b2
    np.maximum(dot, 0.0, out=dot)
    diff = np.sqrt(dot, out=dot)
    ok = common >= _MIN_MATCHABLE * N_S * N_S
    ok &= a.unit.dot(b.unit.T) >= math.cos(_MAX_DIRECTION_DIFFERENCE)
    diff /= denom
    sim: NDArray[np.float32] = np.subtract(1.0, diff, out=diff)
    sim *= ok
    return sim


def _pair_count(na: int, nb: int) -> int:
    """Number of relaxed pairs that make the score: more for templates with more minutiae."""
    z = 1.0 / (1.0 + math.exp(-_TAU_P * (min(na, nb) - _MU_P)))
    return _MIN_PAIRS + round(z * (_MAX_PAIRS - _MIN_PAIRS))


def _relax(
    a: PreparedTemplate,
    b: PreparedTemplate,
    ia: NDArray[np.intp],
    ib: NDArray[np.intp],
    lam0: NDArray[np.float32],
) -> NDArray[np.float32]:
    """Relaxed similarities of the pairs ``(ia[t], ib[t])`` of initial similarity ``lam0``."""
    m = lam0.shape[0]
    # Compatibility of every two selected pairs (t, k): distance, relative direction, and
    # direction of the segment between them, each the same in both templates. The three
    # measures are gathered and compared stacked: at ~30 x 30 the cost is numpy's per-call
    # overhead, not arithmetic, so fewer, larger calls are what makes this fast.
    diff = a.geometry.take(ia, axis=0).take(ia, axis=2)  # (m, 3, m)
    other = b.geometry.take(ib, axis=0).take(ib, axis=2)
    strain = diff[:, 0] + other[:, 0]
    diff -= other
    np.abs(diff, out=diff)
    angles = diff[:, 1:]  # both in [-pi, pi): |difference| < 2 pi, wrap to [0, pi]
    np.minimum(angles, _SCALED_TURN - angles, out=angles)
    strain *= _DISTANCE_STRAIN / 2  # of the mean of the two distances
    diff[:, 0] -= strain
    diff += _RHO_OFFSET
    np.minimum(diff, _RHO_EXPONENT_CAP, out=diff)
    np.exp(diff, out=diff)
    diff += 1.0
    rho = diff[:, 0] * diff[:, 1]
    rho *= diff[:, 2]  # 1 / rho is the product of the three sigmoids
    # One relaxation step is lam <- w lam + spread rho lam (rho without its diagonal): the
    # matrix w I + spread rho, applied _RELAX_ITERATIONS times.
    np.divide((1.0 - _RELAX_WEIGHT) / max(m - 1, 1), rho, out=rho)
    rho.reshape(-1)[:: m + 1] = _RELAX_WEIGHT
    lam = lam0
    for _ in range(_RELAX_ITERATIONS):
        lam = rho.dot(lam)
    return lam


def _overlap_counts(
    a: PreparedTemplate,
    b: PreparedTemplate,
    pa: NDArray[np.intp],
    pb: NDArray[np.intp],
    weight: NDArray[np.float32],
) -> tuple[int, int]:
    """Minutiae of ``a`` inside the hull of ``b``'s and of ``b`` inside ``a``'s, once ``a`` is
    aligned on ``b`` by the pairs ``(pa, pb)``: the rotation is the weighted mean of their
    direction differences, the translation brings the weighted centroids together."""
    fb = b.frame[pb]
    fb *= weight[:, None]
    # Sums over the pairs of w * (x, y, cos, sin, 1)_a (x, y, cos, sin, 1)_b^T: the centroids
    # (last row and column), the total weight, and the sums of cos and sin of the rotation.
    sums = a.frame[pa].T.dot(fb).tolist()
    cos_r, sin_r = sums[2][2] + sums[3][3], sums[2][3] - sums[3][2]
    norm, total = math.hypot(cos_r, sin_r), sums[4][4]
    if norm <= 0.0 or total <= 0.0:
        return a.minutiae_count, b.minutiae_count
    cos_r, sin_r = cos_r / norm, sin_r / norm
    ax, ay = sums[0][4] / total, sums[1][4] / total
    tx = sums[4][0] / total - (cos_r * ax - sin_r * ay)
    ty = sums[4][1] / total - (sin_r * ax + cos_r * ay)
    count_a, count_b = a.minutiae_count, b.minutiae_count
    if b.halfplanes is not None:  # half-planes of b, pulled back into a's frame
        to_b = np.array([[cos_r, -sin_r, tx], [sin_r, cos_r, ty], [0.0, 0.0, 1.0]], np.float32)
        outside = a.points.dot(b.halfplanes.dot(to_b).T)
        count_a = int(np.count_nonzero(np.maximum.reduce(outside, axis=1) <= 0.0))
    if a.halfplanes is not None:
        back_x, back_y = -(cos_r * tx + sin_r * ty), sin_r * tx - cos_r * ty
        to_a = np.array(
            [[cos_r, sin_r, back_x], [-sin_r, cos_r, back_y], [0.0, 0.0, 1.0]], np.float32
        )
        outside = b.points.dot(a.halfplanes.dot(to_a).T)
        count_b = int(np.count_nonzero(np.maximum.reduce(outside, axis=1) <= 0.0))
    return count_a, count_b


def compare_prepared(a: PreparedTemplate, b: PreparedTemplate) -> float:
    """Similarity score of two prepared templates, in [0, 1].

    Local Similarity Sort with Relaxation (LSS-R): the ``min(K_a, K_b)`` cylinder pairs with
    the highest similarity are relaxed against each other: a pair's similarity is repeatedly
    averaged with those of the pairs it is geometrically compatible with (same distance up to
    the skin's strain, same relative directions in both templates), so that pairs that agree
    with many others keep their weight and coincidental ones fade. The score is the mean
    relaxed similarity of the ``n_P`` pairs that kept their weight best, ``n_P`` growing with
    the number of minutiae the two prints have in common view: the templates are aligned on
    those pairs, and the minutiae of each that fall inside the other's convex hull are counted.

    Parameters
    ----------
    a, b : PreparedTemplate

    Returns
    -------
    float
        0 for unrelated fingers; see :data:`MATCH_THRESHOLD`.
    """
    na, nb = a.xy.shape[0], b.xy.shape[0]
    if na == 0 or nb == 0:
        return 0.0
    # Array methods and ufuncs rather than the np.* wrappers: at this size the wrappers'
    # Python-level dispatch costs as much as the work.
    flat = local_similarities(a, b).ravel()
    top = (flat > 0.0).nonzero()[0]
    if top.size == 0:
        return 0.0
    n_relax = min(na, nb)
    if top.size > n_relax:
        top = top[flat[top].argpartition(-n_relax)[-n_relax:]]
    ia, ib = np.divmod(top, nb)
    lam0 = flat[top]
    lam = _relax(a, b, ia, ib, lam0)
    m = int(lam.shape[0])
    order = (lam / lam0).argsort()[::-1]  # by decreasing efficiency
    k = min(_pair_count(a.minutiae_count, b.minutiae_count), m)
    if k > _MIN_PAIRS:  # the overlap can only lower it
        best = order[:k]
        overlap_a, overlap_b = _overlap_counts(a, b, ia[best], ib[best], lam[best])
        k = min(_pair_count(overlap_a, overlap_b), m)
    return float(np.add.reduce(lam[order[:k]])) / k


MATCH_THRESHOLD = 0.055
"""Score at or above which two templates are taken to be of the same finger: FMR = 0.01 %.

Calibrated on the 11,520 impostor pairs of FVC2002 DB1-DB4 B (every two impressions of
different fingers of the same sensor): the upper tail of the impostor scores is fitted with an
exponential (peaks over threshold: the mean excess over a high percentile) and extrapolated to
a false match rate of 1e-4; the threshold is the mean of the fits over the 99th and 98th
percentiles (0.0564 and 0.0540; over the 95th, further from the tail, 0.0521), rounded to
three decimals. None of the 11,520 impostor pairs reaches it (the highest scores 0.0542), and
the FVC2002 genuine pairs are rejected about 8 % of the time. An application that can afford
FMR = 0.1 % may use 0.044 (same fits; FNMR about 5 %). The scores depend on the extractor as
well: re-derive the threshold whenever either changes (with the extractor of a few hours
earlier the same method gave 0.054).
"""

_CACHE_SIZE = 256
_cache: OrderedDict[FingerTemplate, PreparedTemplate] = OrderedDict()
_cache_lock = threading.Lock()  # extraction and matching may run in worker threads


def _prepared(t: FingerTemplate) -> PreparedTemplate:
    with _cache_lock:
        hit = _cache.get(t)
        if hit is not None:
            _cache.move_to_end(t)
            return hit
    prepared = prepare(t)
    with _cache_lock:
        _cache[t] = prepared
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return prepared


def compare(a: FingerTemplate, b: FingerTemplate) -> float:
    """Similarity score of two templates in [0, 1] (symmetric up to ties in pair selection).

    Prepared forms are cached for the most recently used templates, so comparing one probe
    with many references prepares the probe once.
    """
    return compare_prepared(_prepared(a), _prepared(b))


def is_match(a: FingerTemplate, b: FingerTemplate) -> bool:
    """Whether two templates come from the same finger, at :data:`MATCH_THRESHOLD`."""
    return compare(a, b) >= MATCH_THRESHOLD
