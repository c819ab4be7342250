"""Master prints: the whole ridge pattern of one synthetic finger, generated from its identity."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from .creases import crease_map
from .frequency import ridge_period_map
from .growth import grow_ridges
from .orientation import (
    CLASS_FREQUENCIES,
    ArgCorrection,
    FingerClass,
    SingularPoints,
    arch_orientation,
    zero_pole_orientation,
)
from .sensor import SENSOR_DPI
from .shape import Silhouette, silhouette_mask

MASTER_SHAPE: Final = (448, 384)
"""(rows, cols) of a master print at the sensor's 508 dpi: 22.4 x 19.2 mm, a whole fingertip."""

# Mixed into every identity's seed so that finger identities and other seeded draws in the
# simulator never share a random stream.
_DOMAIN: Final = 0x5F1_6E6E


@dataclass(frozen=True, slots=True, eq=False)
class MasterPrint:
    """A synthetic finger: its ridge pattern and the models it was grown from.

    Arrays are read-only (masters are cached and shared). All are (M, N) = ``MASTER_SHAPE``.

    Attributes
    ----------
    identity : int
        The seed it was generated from.
    finger_class : FingerClass
        Henry class.
    ridges : (M, N) ndarray of float32
        Ridge pattern in [-1, 1], ridges positive.
    mask : (M, N) ndarray of float32
        Fingerprint area, 1 inside and 0 outside.
    creases : (M, N) ndarray of float32
        Creases and scars, 1 on them: the skin there never touches the glass.
    orientation : (M, N) ndarray of float64
        Model ridge direction, radians in [0, pi).
    period : (M, N) ndarray of float64
        Model ridge period, pixels.
    singular_points : SingularPoints
        Cores and deltas, (row, col).
    silhouette : Silhouette
        Outline of the fingerprint area.
    centre : (float, float)
        (row, col) that a finger placed well puts at the centre of the sensor.
    dpi : float
        Resolution, pixels per inch.
    """

    identity: int
    finger_class: FingerClass
    ridges: NDArray[np.float32]
    mask: NDArray[np.float32]
    creases: NDArray[np.float32]
    orientation: NDArray[np.float64]
    period: NDArray[np.float64]
    singular_points: SingularPoints
    silhouette: Silhouette
    centre: tuple[float, float]
    dpi: float = SENSOR_DPI


def _correction(rng: np.random.Generator) -> ArgCorrection:
    # Terms shrink with their order, and sum n (|c_n| + |s_n|) <= 0.72 keeps g increasing.
    return ArgCorrection(
        sin_terms=tuple(float(rng.uniform(-0.12, 0.12)) / n for n in (1, 2, 3)),
        cos_terms=tuple(float(rng.uniform(-0.12, 0.12)) / n for n in (1, 2, 3)),
    )


def _singular_points(
    finger_class: FingerClass, anchor: tuple[float, float], rng: np.random.Generator
) -> SingularPoints:
    r0, c0 = anchor
    side = 1.0 if finger_class is FingerClass.LEFT_LOOP else -1.0
    if finger_class in (FingerClass.LEFT_LOOP, FingerClass.RIGHT_LOOP):
        core = (r0, c0 - side * rng.uniform(0, 25))
        delta = (core[0] + rng.uniform(85, 135), core[1] + side * rng.uniform(60, 120))
        return SingularPoints(
            cores=(core,),
            deltas=(delta,),
            core_corrections=(_correction(rng),),
            delta_corrections=(_correction(rng),),
        )
    if finger_class is FingerClass.WHORL:
        gap = rng.uniform(8, 35)
        tilt = rng.uniform(-20, 20)
        cores = ((r0 - gap / 2, c0 - tilt / 2), (r0 + gap / 2, c0 + tilt / 2))
        drop = rng.uniform(95, 140)
        deltas = (
            (r0 + drop + rng.uniform(-15, 15), c0 - rng.uniform(95, 135)),
            (r0 + drop + rng.uniform(-15, 15), c0 + rng.uniform(95, 135)),
        )
        return SingularPoints(
            cores=cores,
            deltas=deltas,
            core_corrections=(_correction(rng), _correction(rng)),
            delta_corrections=(_correction(rng), _correction(rng)),
        )
    if finger_class is FingerClass.TENTED_ARCH:
        core = (r0, c0)
        delta = (r0 + rng.uniform(45, 80), c0 + rng.uniform(-10, 10))
        return SingularPoints(
            cores=(core,),
            deltas=(delta,),
            core_corrections=(_correction(rng),),
            delta_corrections=(_correction(rng),),
        )
    return SingularPoints()


# 16 masters of ~4.8 MB each: enough for a test session or a 10-finger benchmark.
@functools.lru_cache(maxsize=16)
def master_print(identity: int, *, finger_class: FingerClass | None = None) -> MasterPrint:
    """Generate the master print of a synthetic finger (SFinGe's first stage).

    Same identity, same finger: everything is drawn from a generator seeded with ``identity``.
    Results are cached (``functools.lru_cache``) and their arrays read-only.

    Parameters
    ----------
    identity : int
        Non-negative seed naming the finger.
    finger_class : FingerClass, optional, keyword-only
        Force a Henry class; by default it is drawn with the natural class frequencies.

    Returns
    -------
    MasterPrint
        ``MASTER_SHAPE`` arrays at 508 dpi.

    Examples
    --------
    >>> m = master_print(7)
    >>> m.ridges.shape, m.ridges.dtype.name
    ((448, 384), 'float32')
    """
    if identity < 0:
        raise ValueError(f"finger identity must be a non-negative integer, got {identity}")
    rng = np.random.default_rng([identity, _DOMAIN])
    classes = list(CLASS_FREQUENCIES)
    drawn = classes[
        int(rng.choice(len(classes), p=np.array([CLASS_FREQUENCIES[c] for c in classes])))
    ]
    finger_class = drawn if finger_class is None else finger_class

    cols = MASTER_SHAPE[1]
    silhouette = Silhouette(
        centre=(0.0, cols / 2 + rng.uniform(-8, 8)),
        left=rng.uniform(135, 165),
        right=rng.uniform(135, 165),
        top=rng.uniform(120, 165),
        middle=rng.uniform(80, 140),
        bottom=rng.uniform(90, 130),
    )
    top_row = rng.uniform(10, 25)
    centre_row = top_row + silhouette.top + silhouette.middle / 2
    silhouette = Silhouette(
        centre=(centre_row, silhouette.centre[1]),
        left=silhouette.left,
        right=silhouette.right,
        top=silhouette.top,
        middle=silhouette.middle,
        bottom=silhouette.bottom,
    )
    anchor = (
        top_row + rng.uniform(0.38, 0.5) * (silhouette.top + silhouette.middle + silhouette.bottom),
        silhouette.centre[1] + rng.uniform(-15, 15),
    )
    points = _singular_points(finger_class, anchor, rng)
    base_angle = rng.uniform(-0.1, 0.1)
    if finger_class is FingerClass.ARCH:
        orientation = arch_orientation(
            MASTER_SHAPE,
            centre=(anchor[0] + rng.uniform(20, 60), anchor[1]),
            height=rng.uniform(35, 75),
            width=rng.uniform(55, 90),
            reach=rng.uniform(70, 110),
        )
        orientation = np.mod(orientation + base_angle, np.pi)
        upper, lower = anchor[0] - 30, anchor[0] + 60
    else:
        orientation = zero_pole_orientation(MASTER_SHAPE, points, base_angle=base_angle)
        upper = min(r for r, _ in points.cores)
        lower = max(r for r, _ in points.deltas)
    period = ridge_period_map(
        MASTER_SHAPE,
        rng=rng,
        mean_period=rng.uniform(8.3, 10.0) * SENSOR_DPI / 508.0,
        variation=0.35,
        upper_row=upper,
        lower_row=lower,
        widening=rng.uniform(0.05, 0.15),
    )
    ridges = grow_ridges(orientation, period, rng=rng)
    mask = silhouette_mask(MASTER_SHAPE, silhouette)
    creases = crease_map(
        MASTER_SHAPE,
        rng=rng,
        count=int(rng.poisson(2.5)),
        rows=(top_row + 40.0, float(MASTER_SHAPE[0])),
    )
    for array in (ridges, mask, creases, orientation, period):
        array.flags.writeable = False
    return MasterPrint(
        identity=identity,
        finger_class=finger_class,
        ridges=ridges,
        mask=mask,
        creases=creases,
        orientation=orientation,
        period=period,
        singular_points=points,
        silhouette=silhouette,
        centre=(float(anchor[0]) + 30.0, float(anchor[1])),
    )
