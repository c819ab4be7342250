"""ImageFinger: a finger source that shows a real fingerprint image, as the module would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from .errors import FingerImageError
from .sensor import SENSOR_DPI, SENSOR_SHAPE, quantise_4bit

FVC2002_DPI: Final = {"db1": 500.0, "db2": 569.0, "db3": 500.0, "db4": 500.0}
"""Nominal resolutions of the FVC2002 sets, whose TIFF resolution tags are wrong (1 x 1)."""

DEFAULT_DPI: Final = 500.0

_BLOCK: Final = 16


def _nominal_dpi(path: Path, tagged: object) -> float:
    """The FVC2002 set's resolution from the folder name, else a plausible tag, else 500."""
    match = re.match(r"(db[1-4])(_[ab])?$", path.parent.name.lower())
    if match:
        return FVC2002_DPI[match.group(1)]
    if isinstance(tagged, tuple) and len(tagged) == 2:
        try:
            dpi = float(tagged[0])
        except (TypeError, ValueError):
            return DEFAULT_DPI
        if 250.0 <= dpi <= 2000.0:
            return dpi
    return DEFAULT_DPI


def _grey_levels(img: Image.Image, path: Path) -> NDArray[np.float32]:
    """Grey levels on the 0-255 scale: 16-bit images are scaled by 255/65535, colour converted."""
    if img.mode.startswith("I;16"):
        return np.asarray(img, dtype=np.float32) / np.float32(257.0)
    if img.mode in ("I", "F"):
        raise FingerImageError(path, f"unsupported pixel format {img.mode} (use 8 or 16 bits)")
    return np.asarray(img if img.mode == "L" else img.convert("L"), dtype=np.float32)


def _local_contrast(image: NDArray[np.float32]) -> NDArray[np.float32]:
    """Standard deviation of grey levels around each pixel (ridges make it high)."""
    mean = ndimage.uniform_filter(image, _BLOCK)
    mean_sq = ndimage.uniform_filter(image * image, _BLOCK)
    return np.asarray(np.sqrt(np.maximum(mean_sq - mean * mean, 0.0)), dtype=np.float32)


class ImageFinger:
    """A real fingerprint image presented to the simulated sensor.

    The image is resampled to 508 dpi, centred on its fingerprint area and cropped or padded
    (with its own background level) to the module's 256 x 288. Each capture may move it by a
    few pixels, rotate it slightly and add noise, drawn from the generator, then quantises it
    to 4 bits.

    Parameters
    ----------
    path : Path
        An 8-bit or 16-bit grey (or colour, converted) image: TIFF, PNG, BMP...
    dpi : float, optional, keyword-only
        Resolution of the image. By default: the nominal one for the FVC2002 sets (recognised
        by their folder name, ``db1_b`` etc.), else the file's tag if plausible, else 500.
    max_shift : float, keyword-only
        Largest displacement per capture, pixels.
    max_rotation : float, keyword-only
        Largest rotation per capture, degrees.
    noise : float, keyword-only
        Standard deviation of added noise, grey levels.

    Raises
    ------
    FingerImageError
        The file is missing, unreadable, not 2-D, blank, or too small.
    """

    def __init__(
        self,
        path: Path,
        *,
        dpi: float | None = None,
        max_shift: float = 4.0,
        max_rotation: float = 3.0,
        noise: float = 2.0,
    ) -> None:
        path = Path(path)
        if dpi is not None and not 100.0 <= dpi <= 5000.0:
            raise ValueError(f"dpi must be between 100 and 5000, got {dpi}")
        if min(max_shift, max_rotation, noise) < 0:
            raise ValueError("max_shift, max_rotation and noise must not be negative")
        try:
            with Image.open(path) as img:
                tagged = img.info.get("dpi")
                grey = _grey_levels(img, path)
        except FileNotFoundError:
            raise FingerImageError(path, "no such file") from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise FingerImageError(path, f"not a readable image ({exc})") from exc
        if grey.ndim != 2 or min(grey.shape) < 32:
            raise FingerImageError(path, f"image of shape {grey.shape} is too small")
        if float(grey.max() - grey.min()) < 16.0:
            raise FingerImageError(path, "image is blank (no contrast)")
        self.path = path
        self.dpi = dpi if dpi is not None else _nominal_dpi(path, tagged)
        self.max_shift = max_shift
        self.max_rotation = max_rotation
        self.noise = noise

        scale = SENSOR_DPI / self.dpi
        if abs(scale - 1.0) > 1e-3:
            grey = ndimage.zoom(grey, scale, order=1, grid_mode=True, mode="nearest")
        contrast = _local_contrast(grey)
        # Background: the level of the flattest fifth of the image.
        flat = contrast <= np.quantile(contrast, 0.2)
        self.background = float(np.median(grey[flat]))
        weight = np.maximum(contrast - np.quantile(contrast, 0.5), 0.0)
        if float(weight.sum()) <= 0.0:
            raise FingerImageError(path, "no fingerprint area found")
        rows, cols = np.indices(grey.shape, dtype=np.float64)
        total = float(weight.sum())
        self.centre = (float((rows * weight).sum() / total), float((cols * weight).sum() / total))
        self._image = grey
        self._image.flags.writeable = False

    def __repr__(self) -> str:
        return f"ImageFinger({str(self.path)!r}, dpi={self.dpi})"

    def capture(self, rng: np.random.Generator) -> NDArray[np.uint8]:
        """Return a (288, 256) 4-bit view of the image, moved and noised by ``rng``."""
        rows, cols = np.indices(SENSOR_SHAPE, dtype=np.float64)
        y = rows - (SENSOR_SHAPE[0] - 1) / 2
        x = cols - (SENSOR_SHAPE[1] - 1) / 2
        alpha = np.deg2rad(rng.uniform(-self.max_rotation, self.max_rotation))
        shift_r, shift_c = rng.uniform(-self.max_shift, self.max_shift, 2)
        ca, sa = np.cos(alpha), np.sin(alpha)
        coords = np.stack(
            [
                self.centre[0] + shift_r + ca * y - sa * x,
                self.centre[1] + shift_c + sa * y + ca * x,
            ]
        )
        grey = ndimage.map_coordinates(
            self._image, coords, order=1, mode="constant", cval=self.background
        )
        if self.noise > 0:
            grey = grey + rng.normal(0.0, self.noise, SENSOR_SHAPE)
        return quantise_4bit(grey)
