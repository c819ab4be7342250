"""Value types of the biometric core, shared by extraction, templates, matching and preview.

Coordinates follow the image: ``x`` is the column, ``y`` the row, origin at the top-left
pixel. Angles are in radians in [0, 2*pi), counter-clockwise from the positive x axis as seen
on the image (that is, with y pointing up), which is the ISO/IEC 19794-2 convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class MinutiaKind(IntEnum):
    """Minutia type, with the values ISO/IEC 19794-2 stores in the top two bits."""

    OTHER = 0
    ENDING = 1
    BIFURCATION = 2


class FingerPosition(IntEnum):
    """Finger position codes of ISO/IEC 19794-2 (table 2) and ANSI/INCITS 378."""

    UNKNOWN = 0
    RIGHT_THUMB = 1
    RIGHT_INDEX = 2
    RIGHT_MIDDLE = 3
    RIGHT_RING = 4
    RIGHT_LITTLE = 5
    LEFT_THUMB = 6
    LEFT_INDEX = 7
    LEFT_MIDDLE = 8
    LEFT_RING = 9
    LEFT_LITTLE = 10


@dataclass(frozen=True, slots=True)
class Minutia:
    x: int
    y: int
    angle: float
    kind: MinutiaKind
    quality: int = 100  # 0-100, as in ISO/IEC 19794-2

    def __post_init__(self) -> None:
        if not 0 <= self.quality <= 100:
            raise ValueError(f"minutia quality must be 0-100, got {self.quality}")


@dataclass(frozen=True, slots=True)
class FingerTemplate:
    """The minutiae of one finger view, with what is needed to interpret them."""

    width: int
    height: int
    dpi: float
    minutiae: tuple[Minutia, ...]
    position: FingerPosition = FingerPosition.UNKNOWN
    quality: int = 100  # finger view quality 0-100
    impression: int = 0  # ISO impression type, 0 = live-scan plain
    metadata: dict[str, object] = field(default_factory=dict, compare=False)
