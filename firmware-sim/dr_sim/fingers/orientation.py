"""Ridge orientation models: Sherlock-Monro zero-pole model with cores and deltas, and arches.

Angles are ridge directions in radians in [0, pi), counter-clockwise from the column axis with
the row axis pointing down (that is, as seen on the image with y up), like
``edge.biometrics.types``. A direction ``theta`` is the pixel step ``(-sin theta, cos theta)``
in (row, col).

References
----------
.. [1] B. G. Sherlock and D. M. Monro, "A model for interpreting fingerprint topology",
       Pattern Recognition 26(7), 1993.
.. [2] P. R. Vizcaya and L. A. Gerhardt, "A nonlinear orientation model for global description
       of fingerprints", Pattern Recognition 29(7), 1996.
.. [3] R. Cappelli, D. Maio, D. Maltoni, "Synthetic fingerprint-database generation", ICPR 2002.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


class FingerClass(enum.StrEnum):
    """Henry classes used by SFinGe, with their natural frequencies (Wilson et al. 1993)."""

    ARCH = "arch"
    TENTED_ARCH = "tented_arch"
    LEFT_LOOP = "left_loop"
    RIGHT_LOOP = "right_loop"
    WHORL = "whorl"


CLASS_FREQUENCIES: dict[FingerClass, float] = {
    FingerClass.ARCH: 0.037,
    FingerClass.TENTED_ARCH: 0.029,
    FingerClass.LEFT_LOOP: 0.338,
    FingerClass.RIGHT_LOOP: 0.317,
    FingerClass.WHORL: 0.279,
}


@dataclass(frozen=True, slots=True)
class ArgCorrection:
    """A smooth monotone correction ``g(a) = a + sum_n c_n sin(n a) + s_n (cos(n a) - 1)``.

    It plays the role of Vizcaya and Gerhardt's piecewise-linear correction of each singular
    point's argument: it bends the flow around the point while keeping ``g(a + 2 pi) = g(a) +
    2 pi``, so the point keeps its index. The caller keeps ``sum_n n (|c_n| + |s_n|) < 1`` so that
    ``g`` stays increasing.
    """

    sin_terms: tuple[float, ...] = ()
    cos_terms: tuple[float, ...] = ()

    def __call__(self, angle: NDArray[np.float64]) -> NDArray[np.float64]:
        out = angle.copy()
        for n, c in enumerate(self.sin_terms, start=1):
            out += c * np.sin(n * angle)
        for n, s in enumerate(self.cos_terms, start=1):
            out += s * (np.cos(n * angle) - 1.0)
        return out


@dataclass(frozen=True, slots=True)
class SingularPoints:
    """Cores and deltas, as (row, col) pixel positions, with their argument corrections."""

    cores: tuple[tuple[float, float], ...] = ()
    deltas: tuple[tuple[float, float], ...] = ()
    core_corrections: tuple[ArgCorrection, ...] = field(default=())
    delta_corrections: tuple[ArgCorrection, ...] = field(default=())


def zero_pole_orientation(
    shape: tuple[int, int], points: SingularPoints, *, base_angle: float = 0.0
) -> NDArray[np.float64]:
    """Orientation field of the Sherlock-Monro zero-pole model.

    ``theta(z) = base_angle + (sum_c g_c(arg(z - c)) - sum_d g_d(arg(z - d))) / 2`` with ``z``
    the pixel as a complex number (x right, y up): each core adds a half turn of the ridge
    direction around it, each delta takes one off.

    Parameters
    ----------
    shape : (int, int)
        (rows, cols) of the field.
    points : SingularPoints
        Cores and deltas in (row, col); corrections default to the identity.
    base_angle : float, keyword-only
        Ridge direction far from every singular point, radians.

    Returns
    -------
    (M, N) ndarray of float64
        Ridge direction in [0, pi).

    Examples
    --------
    >>> field = zero_pole_orientation((5, 5), SingularPoints(), base_angle=0.5)
    >>> bool(np.allclose(field, 0.5))
    True
    """
    rows, cols = np.indices(shape, dtype=np.float64)
    theta = np.full(shape, base_angle, dtype=np.float64)
    for i, (r, c) in enumerate(points.cores):
        arg = np.arctan2(r - rows, cols - c)
        if i < len(points.core_corrections):
            arg = points.core_corrections[i](arg)
        theta += 0.5 * arg
    for i, (r, c) in enumerate(points.deltas):
        arg = np.arctan2(r - rows, cols - c)
        if i < len(points.delta_corrections):
            arg = points.delta_corrections[i](arg)
        theta -= 0.5 * arg
    return np.mod(theta, np.pi)


def arch_orientation(
    shape: tuple[int, int],
    *,
    centre: tuple[float, float],
    height: float,
    width: float,
    reach: float,
) -> NDArray[np.float64]:
    """Orientation field of a plain arch: the level lines of a bump.

    Ridges follow the level lines of ``phi(x, y) = y - height * exp(-x^2 / (2 width^2)) *
    exp(-y^2 / (2 reach^2))`` around ``centre`` (x right, y up), flat far from it and arched
    above it, with no singular point as long as ``height < 1.6 * reach``.

    Parameters
    ----------
    shape : (int, int)
        (rows, cols) of the field.
    centre : (float, float), keyword-only
        (row, col) of the top of the arch.
    height, width, reach : float, keyword-only
        Bump amplitude, horizontal and vertical extent, pixels.

    Returns
    -------
    (M, N) ndarray of float64
        Ridge direction in [0, pi).
    """
    if not 0 < height < 1.6 * reach:
        raise ValueError(f"arch height {height} must be in (0, 1.6 * reach = {1.6 * reach})")
    rows, cols = np.indices(shape, dtype=np.float64)
    x = cols - centre[1]
    y = centre[0] - rows
    bump = height * np.exp(-(x**2) / (2 * width**2) - y**2 / (2 * reach**2))
    phi_x = bump * x / width**2  # d(phi)/dx
    phi_y = 1.0 + bump * y / reach**2  # d(phi)/dy
    # The ridge runs along the level line, perpendicular to the gradient.
    return np.mod(np.arctan2(-phi_x, phi_y), np.pi)
