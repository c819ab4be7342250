"""Finger image sources for the simulated sensor: synthetic (SFinGe-style) and real images.

``SyntheticFinger(identity)`` generates a master print from its seed (orientation model with
cores and deltas, ridge growth by iterated oriented filtering) and renders a fresh impression at
each capture; ``ImageFinger(path)`` shows a real image. Both satisfy :class:`FingerSource` and
return (288, 256) uint8 images quantised to 4 bits like the R30x module's.
See docs/synthetic-fingers.md.
"""

from __future__ import annotations

from .errors import FingerImageError, FingerSourceError
from .image_finger import ImageFinger
from .impression import DEFAULT_SETTINGS, ImpressionSettings, fvc2002_settings, impression
from .master import MASTER_SHAPE, MasterPrint, master_print
from .orientation import FingerClass
from .sensor import SENSOR_DPI, SENSOR_SHAPE, FingerSource, quantise_4bit
from .synthetic import SyntheticFinger

__all__ = [
    "DEFAULT_SETTINGS",
    "MASTER_SHAPE",
    "SENSOR_DPI",
    "SENSOR_SHAPE",
    "FingerClass",
    "FingerImageError",
    "FingerSource",
    "FingerSourceError",
    "ImageFinger",
    "ImpressionSettings",
    "MasterPrint",
    "SyntheticFinger",
    "fvc2002_settings",
    "impression",
    "master_print",
    "quantise_4bit",
]
