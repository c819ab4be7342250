"""Synthetic and real fingerprint images for the biometric core's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

FVC_DPI = {"db1_b": 500.0, "db2_b": 569.0, "db3_b": 500.0, "db4_b": 500.0}


def fvc_image(shared_data: Path, db: str, name: str) -> NDArray[np.uint8]:
    path = shared_data / "fvc2002" / db / f"{name}.tif"
    if not path.is_file():
        raise FileNotFoundError(f"FVC2002 image missing: {path} (see ../shared/data/README.md)")
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.uint8)


def parallel_ridges(
    shape: tuple[int, int] = (256, 256), *, period: float = 9.0, normal: float = 0.0
) -> NDArray[np.uint8]:
    """Straight ridges (dark) whose wave vector points at ``normal`` (image coordinates)."""
    r, c = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    phase = 2 * np.pi * (c * np.cos(normal) + r * np.sin(normal)) / period
    return np.clip(128 - 90 * np.cos(phase), 0, 255).astype(np.uint8)


def fork(
    shape: tuple[int, int] = (256, 256),
    *,
    centre: tuple[int, int] = (128, 128),
    period: float = 9.0,
    direction: float = 0.0,
    ending: bool = True,
) -> NDArray[np.uint8]:
    """Parallel ridges with one minutia at ``centre`` (row, col).

    A phase singularity adds one ridge on one side: with a ridge through the singularity it
    is a ridge ending, with a valley through it a bifurcation. The minutia's "Y" opens
    towards ``direction`` (ISO convention: radians, counter-clockwise, y upwards).
    """
    r, c = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    x, y_up = c - centre[1], -(r - centre[0])
    along = x * np.cos(direction) + y_up * np.sin(direction)
    across = -x * np.sin(direction) + y_up * np.cos(direction)
    offset = 0.0 if ending else np.pi
    # On the side the Y opens (along > 0) the phase of the singular term is 0 at the axis:
    # a ridge (ending) or a valley (between the two branches of a bifurcation) lies there.
    phase = 2 * np.pi * across / period + np.arctan2(across, along) + offset
    return np.clip(128 - 90 * np.cos(phase), 0, 255).astype(np.uint8)
