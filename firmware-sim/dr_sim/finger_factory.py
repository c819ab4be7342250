"""How the simulator turns "place synthetic 7" or "place image PATH" into a finger source."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from dr_sim.sensor_model import FingerSource, PlacedFinger

__all__ = ["FingerFactory", "LibraryFingers"]


class FingerFactory(Protocol):
    def synthetic(self, identity: int) -> PlacedFinger: ...

    def image(self, path: Path) -> PlacedFinger: ...


class LibraryFingers:
    """Fingers from ``dr_sim.fingers`` (SyntheticFinger, ImageFinger)."""

    def synthetic(self, identity: int) -> PlacedFinger:
        from dr_sim.fingers import SyntheticFinger

        finger = SyntheticFinger(identity)
        # Grow the master print now (cached): a module answers GenImg within a second, and
        # host libraries time out at 1-2 s.
        _ = finger.master
        source: FingerSource = finger
        return PlacedFinger(source, f"synthetic:{identity}")

    def image(self, path: Path) -> PlacedFinger:
        from dr_sim.fingers import ImageFinger

        path = path.resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no image at {path}")
        source: FingerSource = ImageFinger(path)
        return PlacedFinger(source, f"image:{path}")
