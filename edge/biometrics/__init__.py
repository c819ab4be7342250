"""The biometric core: fingerprint quality, minutiae extraction and matching.

Typical use::

    from edge.biometrics import extract, compare, MATCH_THRESHOLD

    found = extract(image, dpi=500)           # image: (M, N) uint8, ridges dark
    found.quality.score, found.quality.advice  # 0-100, what to tell the citizen
    compare(found.template, other.template) >= MATCH_THRESHOLD
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The heavy modules (scipy, scikit-image) load on first use: importing the value types
# (``edge.biometrics.types``) must not cost the daemon's start-up a third of a second.
_LAZY: dict[str, str] = {
    "BiometricError": "errors",
    "InvalidImage": "errors",
    "InvalidResolution": "errors",
    "InvalidTemplate": "errors",
    "NoFingerprint": "errors",
    "MATCH_THRESHOLD": "matcher",
    "PreparedTemplate": "matcher",
    "compare": "matcher",
    "compare_prepared": "matcher",
    "is_match": "matcher",
    "prepare": "matcher",
    "Extraction": "pipeline",
    "extract": "pipeline",
    "ADVICE_FR": "quality",
    "Advice": "quality",
    "QualityReport": "quality",
    "FingerPosition": "types",
    "FingerTemplate": "types",
    "Minutia": "types",
    "MinutiaKind": "types",
}

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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
