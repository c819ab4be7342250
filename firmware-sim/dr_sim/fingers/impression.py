"""Impressions: what the sensor sees of a master print each time the finger is placed.

SFinGe's second stage: the finger lands with some displacement and rotation, its skin is
stretched by the plastic distortion model of Cappelli, Maio and Maltoni (2001) (a close-contact
region that does not move, a rigid shift of the outside, a smooth transition between), the
pressure and the skin's dryness change ridge thickness and continuity, and the optics add
background, uneven lighting and noise. The result is quantised to 4 bits like the module's.

References
----------
.. [1] R. Cappelli, D. Maio, D. Maltoni, "Modelling plastic distortion in fingerprint images",
       ICAPR 2001.
.. [2] R. Cappelli, D. Maio, D. Maltoni, "Synthetic fingerprint-database generation", ICPR 2002.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from .frequency import smooth_noise
from .master import MasterPrint
from .sensor import SENSOR_SHAPE, quantise_4bit
from .shape import silhouette_depth


@dataclass(frozen=True, slots=True, kw_only=True)
class ImpressionSettings:
    """How much impressions of one finger vary; each capture draws within these bounds.

    Attributes
    ----------
    max_shift : float
        Largest displacement of the finger from the sensor centre, pixels.
    max_rotation : float
        Largest rotation, degrees.
    distortion : float
        Scale of the plastic distortion: 1 is a typical placement, 0 none.
    pressure : (float, float)
        Range of pressure, -1 (barely touching) to 1 (pressed hard).
    dryness : (float, float)
        Range of skin dryness, 0 (normal) to 1 (very dry: broken ridges, patchy contact).
    moisture : (float, float)
        Range of skin moisture, 0 (normal) to 1 (wet: thick ridges, smudged valleys).
    noise : float
        Standard deviation of the sensor noise, grey levels.
    """

    max_shift: float = 20.0
    max_rotation: float = 10.0
    distortion: float = 1.0
    pressure: tuple[float, float] = (-0.5, 0.6)
    dryness: tuple[float, float] = (0.0, 0.5)
    moisture: tuple[float, float] = (0.0, 0.3)
    noise: float = 5.0

    def __post_init__(self) -> None:
        lo, hi = self.pressure
        if not -1.0 <= lo <= hi <= 1.0:
            raise ValueError(f"pressure range must lie in [-1, 1], got {self.pressure}")
        for name in ("dryness", "moisture"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"{name} range must lie in [0, 1], got {(lo, hi)}")
        if min(self.max_shift, self.max_rotation, self.distortion, self.noise) < 0:
            raise ValueError(f"impression settings must not be negative: {self}")


DEFAULT_SETTINGS = ImpressionSettings()
"""Ordinary use at a station: the agent tells the citizen where to put the finger."""


def fvc2002_settings(impression: int) -> ImpressionSettings:
    """Variation of the FVC2002 acquisition protocol, by impression number (1 to 8).

    Volunteers gave impressions 1-2 normally, exaggerated displacement for 3-4 and rotation
    for 5-6, and dried (7) and moistened (8) their fingers (Maio et al., "FVC2002: Second
    Fingerprint Verification Competition", ICPR 2002). Realism figures compare synthetic and
    FVC sets under the same protocol.

    Parameters
    ----------
    impression : int
        1 to 8 (other numbers cycle).

    Returns
    -------
    ImpressionSettings
    """
    k = (impression - 1) % 8 + 1
    if k in (3, 4):
        return ImpressionSettings(max_shift=45.0, max_rotation=10.0, distortion=1.3)
    if k in (5, 6):
        return ImpressionSettings(max_shift=20.0, max_rotation=25.0, distortion=1.3)
    if k == 7:
        return ImpressionSettings(pressure=(-0.8, 0.0), dryness=(0.5, 0.9), moisture=(0.0, 0.0))
    if k == 8:
        return ImpressionSettings(pressure=(0.3, 1.0), dryness=(0.0, 0.0), moisture=(0.5, 0.9))
    return DEFAULT_SETTINGS


def _sensor_to_master(
    master: MasterPrint, rng: np.random.Generator, settings: ImpressionSettings
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Where each sensor pixel lands on the master: (rows, cols), each (288, 256)."""
    rows, cols = np.indices(SENSOR_SHAPE, dtype=np.float64)
    r0 = (SENSOR_SHAPE[0] - 1) / 2
    c0 = (SENSOR_SHAPE[1] - 1) / 2
    y, x = rows - r0, cols - c0

    # Plastic distortion, in sensor coordinates: the skin inside the first-contact ellipse
    # sticks; outside it, it follows a small rigid motion, fully beyond the transition band.
    k = settings.distortion
    if k > 0:
        contact_r = rng.uniform(-30, 30)
        contact_c = rng.uniform(-25, 25)
        semi_r, semi_c = rng.uniform(50, 80), rng.uniform(40, 65)
        rho = np.sqrt(((y - contact_r) / semi_r) ** 2 + ((x - contact_c) / semi_c) ** 2)
        outside = np.maximum(rho - 1.0, 0.0) * min(semi_r, semi_c)
        brake = 1.0 - np.exp(-((outside / rng.uniform(60, 110)) ** 2))
        phi = np.deg2rad(rng.uniform(-10, 10)) * k
        t_r, t_c = rng.normal(0, 10, 2) * k
        d_y = (np.cos(phi) - 1) * (y - contact_r) - np.sin(phi) * (x - contact_c) + t_r
        d_x = np.sin(phi) * (y - contact_r) + (np.cos(phi) - 1) * (x - contact_c) + t_c
        y = y + brake * d_y
        x = x + brake * d_x

    # Placement: rotation about the sensor centre and a displacement.
    alpha = np.deg2rad(rng.uniform(-settings.max_rotation, settings.max_rotation))
    radius = settings.max_shift * np.sqrt(rng.uniform(0, 1))
    direction = rng.uniform(0, 2 * np.pi)
    shift_r, shift_c = radius * np.sin(direction), radius * np.cos(direction)
    ca, sa = np.cos(alpha), np.sin(alpha)
    m_rows = master.centre[0] + shift_r + ca * y - sa * x
    m_cols = master.centre[1] + shift_c + sa * y + ca * x
    return m_rows, m_cols


def impression(
    master: MasterPrint,
    rng: np.random.Generator,
    *,
    settings: ImpressionSettings = DEFAULT_SETTINGS,
) -> NDArray[np.uint8]:
    """Render one sensor image of a master print.

    Parameters
    ----------
    master : MasterPrint
        The finger.
    rng : numpy.random.Generator
        Draws placement, distortion, pressure, dryness and noise; the same generator state
        gives the same image.
    settings : ImpressionSettings, keyword-only
        Bounds of the variation.

    Returns
    -------
    (288, 256) ndarray of uint8
        Dark ridges on a light background, quantised to 4 bits (values ``17 * k``).
    """
    m_rows, m_cols = _sensor_to_master(master, rng, settings)
    coords = np.stack([m_rows, m_cols])
    ridges = ndimage.map_coordinates(master.ridges, coords, order=1, mode="constant", cval=0.0)
    creases = ndimage.map_coordinates(master.creases, coords, order=1, mode="constant", cval=0.0)

    pressure = rng.uniform(*settings.pressure)
    dryness = rng.uniform(*settings.dryness)
    moisture = rng.uniform(*settings.moisture)

    # Contact area: a pressed finger flattens and covers more of the sensor; the border of the
    # contact fades over a few ridges because the skin there barely touches, and dry skin
    # touches in patches.
    depth = silhouette_depth(m_rows, m_cols, master.silhouette)
    contact = np.clip((depth - 25.0 + 30.0 * pressure) / 30.0, 0.0, 1.0)
    patches = smooth_noise(SENSOR_SHAPE, rng=rng, scale=35.0)
    contact *= np.clip(1.0 + (0.25 + 0.5 * dryness) * patches, 0.0, 1.0)

    # Pressure and moisture move the level at which skin touches glass: ridges thicken when
    # pressed or wet, thin out when barely touching. Water gathers in places and fills the
    # valleys there.
    level = (
        -0.45 * pressure - 0.3 * moisture + 0.12 * smooth_noise(SENSOR_SHAPE, rng=rng, scale=30.0)
    )
    # Skin texture: ridge edges are ragged, and here and there a ridge narrows to a break or
    # two ridges touch, differently at each touch.
    level = level + 0.35 * smooth_noise(SENSOR_SHAPE, rng=rng, scale=2.5)
    if moisture > 0:
        puddles = smooth_noise(SENSOR_SHAPE, rng=rng, scale=8.0)
        level = level - moisture * np.clip(puddles - 0.5, 0.0, None)
    ink = 1.0 / (1.0 + np.exp(-(ridges - level) / 0.18))
    if dryness > 0:
        # Dry skin: gaps along the ridges, from pores up to ridge fragments.
        gaps = smooth_noise(SENSOR_SHAPE, rng=rng, scale=1.5)
        gaps += 0.8 * smooth_noise(SENSOR_SHAPE, rng=rng, scale=4.0)
        ink *= np.clip(1.0 - dryness * np.clip(gaps - 0.7, 0.0, None) * 2.5, 0.0, 1.0)
    ink *= 1.0 - creases * rng.uniform(0.6, 1.0)
    ink = ndimage.gaussian_filter(ink * contact, 0.6 + 0.4 * max(pressure, 0.0) + 0.5 * moisture)

    background = rng.uniform(215.0, 245.0) + 8.0 * smooth_noise(SENSOR_SHAPE, rng=rng, scale=80.0)
    ridge_grey = rng.uniform(25.0, 80.0)
    grey = background - ink * (background - ridge_grey)
    grey += rng.normal(0.0, settings.noise, SENSOR_SHAPE)
    return quantise_4bit(grey)
