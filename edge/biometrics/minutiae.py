"""Minutiae from a ridge skeleton: detection, direction, and removal of false minutiae.

Positions are (row, col) in working pixels; directions are angles in image coordinates
(x = column to the right, y = row downwards) in [0, 2 pi). The direction of a minutia points
where its "Y" opens: along the ridge body at an ending, along the valley between the two
branches at a bifurcation (ANSI/INCITS 378, ISO/IEC 19794-2, NIST EFS). The axis of a direction
comes from the smoothed orientation field, its sense from the skeleton itself, followed for
about a ridge period along each branch of the minutia (see :func:`traced_directions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from .blocks import sample_orientation

ENDING = 1
BIFURCATION = 3

# False-minutiae rules (see remove_false_minutiae), in ridge periods.
_BORDER_PERIODS = 1.0
_CROWD = 3

# Offsets of the 8 neighbours in cyclic order (row, col), for the crossing number.
_RING = np.array([(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)])


@dataclass(frozen=True, slots=True, eq=False)
class RawMinutiae:
    """Minutiae candidates in working pixels.

    Attributes
    ----------
    rc : (K, 2) ndarray of float32
        (row, col) positions.
    angle : (K,) ndarray of float32
        Directions in [0, 2 pi), image coordinates.
    kind : (K,) ndarray of int8
        ``ENDING`` (1) or ``BIFURCATION`` (3), the crossing number.
    """

    rc: NDArray[np.float32]
    angle: NDArray[np.float32]
    kind: NDArray[np.int8]

    def take(self, index: NDArray[np.intp] | NDArray[np.bool_]) -> RawMinutiae:
        return RawMinutiae(rc=self.rc[index], angle=self.angle[index], kind=self.kind[index])

    def __len__(self) -> int:
        return int(self.kind.shape[0])


def crossing_numbers(skeleton: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.int8]]:
    """Crossing number of every skeleton pixel.

    Parameters
    ----------
    skeleton : (M, N) ndarray of bool
        One-pixel-wide ridges.

    Returns
    -------
    index : (K, 2) ndarray of intp
        (row, col) of the skeleton pixels whose crossing number is 1 or 3.
    cn : (K,) ndarray of int8
        Their crossing numbers.
    """
    padded = np.pad(skeleton, 1)
    rows, cols = np.nonzero(padded)
    ring = padded[rows[:, None] + _RING[:, 0], cols[:, None] + _RING[:, 1]].astype(np.int8)
    cn = (np.abs(ring - np.roll(ring, -1, axis=1)).sum(axis=1) // 2).astype(np.int8)
    keep = (cn == ENDING) | (cn == BIFURCATION)
    return np.stack([rows[keep] - 1, cols[keep] - 1], axis=1), cn[keep]


@cache
def _direction_stencil(reach: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    along = np.concatenate([np.arange(-reach, -1), np.arange(2, reach + 1)]).astype(np.float32)
    across = np.arange(-1, 2, dtype=np.float32)
    t, s = np.meshgrid(along, across, indexing="ij")
    return t.ravel(), s.ravel()


def minutia_directions(
    ridges: NDArray[np.bool_],
    rc: NDArray[np.intp],
    orientation: NDArray[np.float32],
    kind: NDArray[np.int8],
    *,
    reach: int,
) -> NDArray[np.float32]:
    """Directions of minutiae from the local ridge orientation and the binary ridges around them.

    The ridge orientation (modulo pi) gives the axis; the sense is the side where the "Y" of
    the minutia opens (ANSI/INCITS 378, ISO/IEC 19794-2): along the ridge at an ending, along
    the valley between the two branches at a bifurcation. So an ending points to the side of
    its axis covered by ridge, a bifurcation to the side covered by valley; the two rules are
    the same under tonal inversion, which keeps directions stable when pressure turns an
    ending into a bifurcation.

    Parameters
    ----------
    ridges : (M, N) ndarray of bool
        Binarised ridges (True) and valleys (False) of the foreground.
    rc : (K, 2) ndarray of intp
        Minutiae positions (row, col).
    orientation : (K,) ndarray of float32
        Ridge orientation at each minutia, modulo pi, image coordinates.
    kind : (K,) ndarray of int8
        ``ENDING`` or ``BIFURCATION``.
    reach : int
        Length in pixels of the band on each side (about one ridge period).

    Returns
    -------
    (K,) ndarray of float32
        Directions in [0, 2 pi), image coordinates.
    """
    t, s = _direction_stencil(reach)
    cos_o, sin_o = np.cos(orientation)[:, None], np.sin(orientation)[:, None]
    # Axis u = (cos, sin) in (x, y); across v = (-sin, cos).
    cols = np.rint(rc[:, 1:2] + t * cos_o - s * sin_o).astype(np.intp)
    rows = np.rint(rc[:, 0:1] + t * sin_o + s * cos_o).astype(np.intp)
    rows = np.clip(rows, 0, ridges.shape[0] - 1)
    cols = np.clip(cols, 0, ridges.shape[1] - 1)
    on_ridge = ridges[rows, cols]
    target = np.where((kind == ENDING)[:, None], on_ridge, ~on_ridge)
    forward = (target & (t > 0)).sum(axis=1)
    backward = (target & (t < 0)).sum(axis=1)
    flip = backward > forward
    return np.asarray(np.mod(orientation + np.pi * flip, 2 * np.pi), dtype=np.float32)


def trace_branches(
    skeleton: NDArray[np.bool_], rc: NDArray[np.intp], *, steps: int
) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """Follow the skeleton from each minutia along each of its (up to three) branches.

    All branches are walked at once, one pixel per iteration: from the current pixel to its
    skeleton neighbour farthest from the previous pixel (so the walk goes on along the ridge
    and cuts the corners of staircases), stopping at a dead end.

    Parameters
    ----------
    skeleton : (M, N) ndarray of bool
    rc : (K, 2) ndarray of intp
        (row, col) of skeleton pixels (minutiae).
    steps : int
        Pixels to walk along each branch.

    Returns
    -------
    end : (K, 3, 2) ndarray of float32
        (row, col) reached on each branch; the minutia itself for a branch it does not have.
    length : (K, 3) ndarray of intp
        Pixels walked on each branch, 0 for a branch the minutia does not have. Branches are
        in the cyclic order of the neighbours, so an ending's branch is the first.
    """
    padded = np.pad(skeleton, 1)
    row0, col0 = rc[:, 0] + 1, rc[:, 1] + 1
    ring = padded[row0[:, None] + _RING[:, 0], col0[:, None] + _RING[:, 1]]  # (K, 8)
    # A branch leaves through each run of skeleton pixels around the minutia; its first
    # pixel is the run's 4-neighbour when the run starts on a diagonal neighbour.
    starts = ring & ~np.roll(ring, 1, axis=1)
    positions = np.arange(8)
    diagonal = positions % 2 == 0
    first = np.where(starts & diagonal & np.roll(ring, -1, axis=1), (positions + 1) % 8, positions)
    slots = np.argsort(~starts, axis=1, kind="stable")[:, :3]
    exists = np.take_along_axis(starts, slots, axis=1)
    first = np.take_along_axis(first, slots, axis=1)
    row = np.where(exists, row0[:, None] + _RING[first, 0], row0[:, None])
    col = np.where(exists, col0[:, None] + _RING[first, 1], col0[:, None])
    prev_row = np.repeat(row0[:, None], 3, axis=1)
    prev_col = np.repeat(col0[:, None], 3, axis=1)
    walking = exists.copy()
    length = exists.astype(np.intp)
    for _ in range(steps - 1):
        next_row = row[..., None] + _RING[:, 0]  # (K, 3, 8); inside the padding
        next_col = col[..., None] + _RING[:, 1]
        on = padded[next_row, next_col]
        away = (next_row - prev_row[..., None]) ** 2 + (next_col - prev_col[..., None]) ** 2
        # Neighbours of the previous pixel (squared distance <= 2) are behind the walk.
        score = np.where(on & (away > 2), away, 0)
        best = score.argmax(axis=-1)
        walking &= np.take_along_axis(score, best[..., None], axis=-1)[..., 0] > 0
        if not walking.any():
            break
        prev_row = np.where(walking, row, prev_row)
        prev_col = np.where(walking, col, prev_col)
        row = np.where(walking, row + _RING[best, 0], row)
        col = np.where(walking, col + _RING[best, 1], col)
        length += walking
    end = np.stack([row - 1, col - 1], axis=-1).astype(np.float32)
    return end, length


def traced_directions(
    skeleton: NDArray[np.bool_],
    rc: NDArray[np.intp],
    kind: NDArray[np.int8],
    *,
    steps: int,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Directions of minutiae from their branches followed along the skeleton.

    An ending points along its ridge (where its one branch leads); a bifurcation between its
    two arms, the two branches closest in angle (the third is the stem), which is where its
    "Y" opens: the convention of :func:`minutia_directions`.

    Parameters
    ----------
    skeleton : (M, N) ndarray of bool
    rc : (K, 2) ndarray of intp
        (row, col) of the minutiae, on the skeleton.
    kind : (K,) ndarray of int8
        ``ENDING`` or ``BIFURCATION``.
    steps : int
        Pixels to follow each branch (about a ridge period).

    Returns
    -------
    angle : (K,) ndarray of float32
        Directions in [0, 2 pi), image coordinates.
    followed : (K,) ndarray of bool
        Whether each branch the direction depends on could be followed for at least half of
        ``steps`` pixels (otherwise ``angle`` is unreliable).
    """
    end, length = trace_branches(skeleton, rc, steps=steps)
    vector = end - rc[:, None, :].astype(np.float32)  # (K, 3, 2) as (d row, d col)
    unit = vector / np.maximum(np.hypot(vector[..., 0], vector[..., 1]), 1e-6)[..., None]
    cosine = np.einsum("kid,kjd->kij", unit, unit)
    cosine[:, np.arange(3), np.arange(3)] = -2.0  # a branch is not its own neighbour
    stem = cosine.max(axis=2).argmin(axis=1)  # the branch farthest from both others
    arms = np.ones(length.shape, dtype=bool)
    arms[np.arange(rc.shape[0]), stem] = False
    bifurcation = (kind == BIFURCATION)[:, None]
    pointing = np.where(bifurcation, (unit * arms[..., None]).sum(axis=1), unit[:, 0])
    angle = np.mod(np.arctan2(pointing[:, 0], pointing[:, 1]), 2 * np.pi)
    long_enough = length >= steps // 2
    followed = np.where(bifurcation[:, 0], long_enough.all(axis=1), long_enough[:, 0])
    return angle.astype(np.float32), np.asarray(followed, dtype=bool)


def remove_false_minutiae(
    raw: RawMinutiae,
    *,
    period: float,
    border_distance: NDArray[np.float32],
) -> RawMinutiae:
    """Drop the usual artefacts of skeleton-based extraction.

    Rules, all in units of the ridge period ``period``:

    - border: minutiae nearer than one period to the edge of the foreground;
    - spurs, bridges, holes, short ridges: any two minutiae closer than ~0.8 period are both
      dropped (an ending next to a bifurcation is a spur; two bifurcations a bridge or a hole);
    - breaks: two endings within two periods that face each other are both dropped;
    - clusters: a minutia with three or more others within two periods sits in noise.

    Parameters
    ----------
    raw : RawMinutiae
    period : float
        Ridge period in pixels.
    border_distance : (K,) ndarray of float32
        Distance of each minutia to the background, pixels.

    Returns
    -------
    RawMinutiae
    """
    if len(raw) == 0:
        return raw
    keep = border_distance >= _BORDER_PERIODS * period
    delta = raw.rc[:, None, :] - raw.rc[None, :, :]
    dist = np.hypot(delta[..., 0], delta[..., 1])
    np.fill_diagonal(dist, np.inf)
    close = dist < 0.8 * period
    keep &= ~close.any(axis=1)
    ends = raw.kind == ENDING
    both_ends = ends[:, None] & ends[None, :]
    dtheta = np.abs(np.mod(raw.angle[:, None] - raw.angle[None, :] + np.pi, 2 * np.pi) - np.pi)
    facing = dtheta > np.pi * 0.7
    # The segment from one ending to the other should run along the first one's direction.
    seg_angle = np.arctan2(-delta[..., 0], -delta[..., 1])
    along = np.abs(np.mod(seg_angle - raw.angle[:, None] + np.pi, 2 * np.pi) - np.pi) < np.pi / 4
    breaks = both_ends & facing & along & (dist < 2.0 * period)
    keep &= ~(breaks.any(axis=1) | breaks.any(axis=0))
    crowd = (dist < 2.0 * period).sum(axis=1)
    keep &= crowd < _CROWD
    return raw.take(keep)


def detect(
    skeleton: NDArray[np.bool_],
    ridges: NDArray[np.bool_],
    block_orientation: NDArray[np.float32],
    *,
    period: float,
) -> RawMinutiae:
    """Endings and bifurcations of a skeleton, with their directions.

    Parameters
    ----------
    skeleton : (M, N) ndarray of bool
    ridges : (M, N) ndarray of bool
        The binarised ridges the skeleton was thinned from.
    block_orientation : (R, C) ndarray of float32
        Ridge orientation per block (see :mod:`.blocks`), modulo pi.
    period : float
        Typical ridge period in pixels.

    Returns
    -------
    RawMinutiae
    """
    rc, cn = crossing_numbers(skeleton)
    if rc.shape[0] == 0:
        empty = np.zeros(0, dtype=np.float32)
        return RawMinutiae(np.zeros((0, 2), np.float32), empty, np.zeros(0, np.int8))
    orient = sample_orientation(block_orientation, rc)
    reach = max(4, round(period))
    angle = minutia_directions(ridges, rc, orient, cn, reach=reach)
    # The smoothed field gives the axis (the skeleton wobbles by a pixel or two); the branches
    # followed along the skeleton give the sense, which the ridge/valley count around the
    # minutia gets wrong where ridges curve or smudge. The count stays for minutiae whose
    # branches are too short to follow.
    traced, followed = traced_directions(skeleton, rc, cn, steps=reach)
    backwards = np.cos(traced - orient) < 0
    angle = np.where(followed, np.mod(orient + np.pi * backwards, 2 * np.pi), angle)
    return RawMinutiae(rc=rc.astype(np.float32), angle=angle.astype(np.float32), kind=cn)


def distance_to_background(
    block_mask: NDArray[np.bool_],
    rc: NDArray[np.floating],
    *,
    step: int,
    shape: tuple[int, int],
) -> NDArray[np.float32]:
    """Distance of pixels to the nearest background pixel or image edge.

    The foreground is a union of ``step`` x ``step`` blocks, so the distance is computed on a
    grid four times finer than the blocks (exact to a quarter block), not on every pixel.

    Parameters
    ----------
    block_mask : (R, C) ndarray of bool
        Foreground blocks.
    rc : (K, 2) ndarray
        (row, col) pixel positions inside the blocks.
    step : int
        Block size in pixels (a multiple of 4).
    shape : tuple of int
        Image shape (M, N): the image edge counts as background, even where the last row or
        column of blocks overhangs it.

    Returns
    -------
    (K,) ndarray of float32
        Distances in pixels.
    """
    sub = step // 4
    fine = np.repeat(np.repeat(block_mask, 4, axis=0), 4, axis=1)
    fine = fine[: -(-shape[0] // sub), : -(-shape[1] // sub)]
    dist = ndimage.distance_transform_edt(np.pad(fine, 1))[1:-1, 1:-1]
    r = np.clip((rc[:, 0] // sub).astype(np.intp), 0, fine.shape[0] - 1)
    c = np.clip((rc[:, 1] // sub).astype(np.intp), 0, fine.shape[1] - 1)
    # A cell centre is half a cell deeper than the cell's own edge.
    return np.asarray(np.maximum(dist[r, c] - 0.5, 0.0) * sub, dtype=np.float32)
