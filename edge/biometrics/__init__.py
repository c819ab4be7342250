"""The biometric core: fingerprint quality, minutiae extraction and matching.

Typical use::

    from edge.biometrics import extract, compare, MATCH_THRESHOLD

    found = extract(image, dpi=500)           # image: (M, N) uint8, ridges dark
    found.quality.score, found.quality.advice  # 0-100, what to tell the citizen
    compare(found.template, other.template) >= MATCH_THRESHOLD
"""

from .errors import (
    BiometricError,
    InvalidImage,
    InvalidResolution,
    InvalidTemplate,
    NoFingerprint,
)
from .matcher import (
    MATCH_THRESHOLD,
    PreparedTemplate,
    compare,
    compare_prepared,
    is_match,
    prepare,
)
from .pipeline import Extraction, extract
from .quality import ADVICE_FR, Advice, QualityReport
from .types import FingerPosition, FingerTemplate, Minutia, MinutiaKind

__all__ = [
    "ADVICE_FR",
    "MATCH_THRESHOLD",
    "Advice",
    "BiometricError",
    "Extraction",
    "FingerPosition",
    "FingerTemplate",
    "InvalidImage",
    "InvalidResolution",
    "InvalidTemplate",
    "Minutia",
    "MinutiaKind",
    "NoFingerprint",
    "PreparedTemplate",
    "QualityReport",
    "compare",
    "compare_prepared",
    "extract",
    "is_match",
    "prepare",
]
