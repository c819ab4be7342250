"""Exceptions of the finger image sources."""

from __future__ import annotations

from pathlib import Path


class FingerSourceError(ValueError):
    """A finger source cannot be built from what it was given."""


class FingerImageError(FingerSourceError):
    """An image file cannot be used as a finger (unreadable, empty, wrong kind of image)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot use {path} as a finger image: {reason}")
        self.path = path
        self.reason = reason
