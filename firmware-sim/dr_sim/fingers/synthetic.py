"""SyntheticFinger: a finger source whose print is generated from a seed, never stored."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import numpy as np
from numpy.typing import NDArray

from .impression import DEFAULT_SETTINGS, ImpressionSettings, impression
from .master import MasterPrint, master_print
from .orientation import FingerClass


@dataclass(frozen=True, slots=True)
class SyntheticFinger:
    """A synthetic finger named by an integer: same identity, same ridges.

    Each :meth:`capture` is a fresh impression of the finger's master print (placement,
    distortion, pressure, dryness and noise drawn from the given generator).

    Parameters
    ----------
    identity : int
        Non-negative seed of the finger.
    finger_class : FingerClass, optional, keyword-only
        Force the Henry class (default: drawn from the identity with natural frequencies).
    settings : ImpressionSettings, keyword-only
        How much impressions vary.

    Examples
    --------
    >>> finger = SyntheticFinger(7)
    >>> image = finger.capture(np.random.default_rng(0))
    >>> image.shape, image.dtype.name, bool(np.all(image % 17 == 0))
    ((288, 256), 'uint8', True)
    """

    identity: int
    _: KW_ONLY
    finger_class: FingerClass | None = None
    settings: ImpressionSettings = DEFAULT_SETTINGS

    def __post_init__(self) -> None:
        if isinstance(self.identity, bool) or not isinstance(self.identity, int | np.integer):
            raise TypeError(f"finger identity must be an int, got {self.identity!r}")
        if self.identity < 0:
            raise ValueError(f"finger identity must be non-negative, got {self.identity}")

    @property
    def master(self) -> MasterPrint:
        """The finger's master print (generated once, then cached)."""
        return master_print(int(self.identity), finger_class=self.finger_class)

    def capture(self, rng: np.random.Generator) -> NDArray[np.uint8]:
        """Return a fresh (288, 256) 4-bit impression of this finger."""
        return impression(self.master, rng, settings=self.settings)
