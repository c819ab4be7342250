"""Feature extraction and matching inside the simulated module (Img2Tz, RegModel, Match, Search).

The device model gets a :class:`FeatureEngine`; the bytes it returns are the module's 512-byte
character files, moved as they are by UpChar / DownChar and kept in the flash library.

- :class:`IdentityEngine`: a stand-in that knows which finger was on the sensor (the key of
  the finger source) and scores two captures of one finger high, of two fingers low. Fast and
  exact: for protocol tests.
- :class:`BiometricsEngine`: the project's real extractor and matcher (``edge.biometrics``):
  minutiae are packed into the character file, scores come from ``edge.biometrics.compare``.
"""

from __future__ import annotations

import hashlib
import importlib
import struct
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from edge.drivers.r30x_commands import IMAGE_DPI, TEMPLATE_BYTES, Confirmation

__all__ = ["BiometricsEngine", "FeatureEngine", "FeatureFailure", "IdentityEngine"]


@dataclass(frozen=True, slots=True)
class FeatureFailure:
    """Img2Tz's answer when no usable features came out of the image."""

    code: Confirmation


class FeatureEngine(Protocol):
    """What the simulated module needs from a fingerprint algorithm."""

    @property
    def threshold(self) -> int:
        """Lowest module score (0-65535) counted as a match."""
        ...

    def extract(
        self, image: NDArray[np.uint8], *, finger_key: str, rng: np.random.Generator
    ) -> bytes | FeatureFailure:
        """Character file (:data:`TEMPLATE_BYTES` bytes) of an image, ``finger_key`` naming
        the finger that made it ("synthetic:7", "image:<sha256>")."""
        ...

    def score(self, a: bytes, b: bytes) -> int:
        """Similarity of two character files, 0-65535."""
        ...

    def merge(self, a: bytes, b: bytes) -> bytes:
        """The template RegModel keeps for two captures of one finger."""
        ...


_ID_MAGIC = b"DRSIMID1"
_ID_LAYOUT = struct.Struct(">8s16sI")  # magic, digest of the finger key, impression nonce


class IdentityEngine:
    """Scores by finger identity: same finger 150-199, different fingers 0-19."""

    threshold = 50

    def extract(
        self, image: NDArray[np.uint8], *, finger_key: str, rng: np.random.Generator
    ) -> bytes | FeatureFailure:
        if image.max() == image.min():
            return FeatureFailure(Confirmation.TOO_FEW_FEATURES)  # a blank image
        digest = hashlib.blake2b(finger_key.encode(), digest_size=16).digest()
        nonce = int(rng.integers(0, 2**32))
        return _ID_LAYOUT.pack(_ID_MAGIC, digest, nonce).ljust(TEMPLATE_BYTES, b"\0")

    def score(self, a: bytes, b: bytes) -> int:
        try:
            magic_a, digest_a, nonce_a = _ID_LAYOUT.unpack_from(a)
            magic_b, digest_b, nonce_b = _ID_LAYOUT.unpack_from(b)
        except struct.error:
            return 0
        if magic_a != _ID_MAGIC or magic_b != _ID_MAGIC:
            return 0
        # Deterministic "impression noise" so that scores vary like a real matcher's.
        jitter = hashlib.blake2b(
            digest_a + digest_b + (nonce_a ^ nonce_b).to_bytes(4, "big"), digest_size=1
        ).digest()[0]
        return 150 + jitter % 50 if digest_a == digest_b else jitter % 20

    def merge(self, a: bytes, b: bytes) -> bytes:
        return a


_MN_MAGIC = b"DRSIMMN1"
_MN_HEADER = struct.Struct(">8sHHB")  # magic, width, height, minutiae count
_MN_ITEM = struct.Struct(">HHBBB")  # x, y, angle (256 units), kind, quality
_MN_MAX = (TEMPLATE_BYTES - _MN_HEADER.size) // _MN_ITEM.size
_MIN_MINUTIAE = 8  # fewer than this: "too few feature points", as a module would answer


class BiometricsEngine:
    """``edge.biometrics.extract`` / ``compare`` behind the module's commands.

    ``compare`` gives a similarity in [0, 1]; the module reports integer scores, so it is
    multiplied by ``score_scale`` (1000: a score of 250 is the comparator's 0.25).
    """

    def __init__(self, *, score_scale: float = 1000.0) -> None:
        # Imported at run time: the simulator works (with IdentityEngine) without it.
        self._extract = _biometrics_attribute("extract", "pipeline")
        self._compare = _biometrics_attribute("compare", "matcher")
        threshold = float(_biometrics_attribute("MATCH_THRESHOLD", "matcher"))
        self._scale = score_scale
        self.threshold = max(1, round(threshold * score_scale))

    def extract(
        self, image: NDArray[np.uint8], *, finger_key: str, rng: np.random.Generator
    ) -> bytes | FeatureFailure:
        try:
            template = self._extract(image, dpi=IMAGE_DPI).template
        except ValueError:
            # edge.biometrics raises ValueError subclasses for images without a usable print.
            return FeatureFailure(Confirmation.TOO_FEW_FEATURES)
        minutiae = sorted(template.minutiae, key=lambda m: -m.quality)[:_MN_MAX]
        if len(minutiae) < _MIN_MINUTIAE:
            return FeatureFailure(Confirmation.TOO_FEW_FEATURES)
        out = bytearray(_MN_HEADER.pack(_MN_MAGIC, template.width, template.height, len(minutiae)))
        for m in minutiae:
            angle = round(m.angle / (2 * np.pi) * 256) % 256
            out += _MN_ITEM.pack(m.x, m.y, angle, int(m.kind), m.quality)
        return bytes(out).ljust(TEMPLATE_BYTES, b"\0")

    def _template(self, data: bytes) -> object | None:
        from edge.biometrics.types import FingerTemplate, Minutia, MinutiaKind

        try:
            magic, width, height, count = _MN_HEADER.unpack_from(data)
        except struct.error:
            return None
        if magic != _MN_MAGIC or count > _MN_MAX:
            return None
        minutiae = []
        for i in range(count):
            offset = _MN_HEADER.size + i * _MN_ITEM.size
            x, y, angle, kind, quality = _MN_ITEM.unpack_from(data, offset)
            kind = kind if kind in iter(MinutiaKind) else MinutiaKind.OTHER
            minutiae.append(
                Minutia(x, y, angle * 2 * np.pi / 256, MinutiaKind(kind), min(quality, 100))
            )
        return FingerTemplate(width=width, height=height, dpi=IMAGE_DPI, minutiae=tuple(minutiae))

    def score(self, a: bytes, b: bytes) -> int:
        ta, tb = self._template(a), self._template(b)
        if ta is None or tb is None:
            return 0
        raw = float(self._compare(ta, tb))
        return int(min(65535, max(0, round(raw * self._scale))))

    def merge(self, a: bytes, b: bytes) -> bytes:
        return a


def _biometrics_attribute(name: str, module: str) -> Any:
    """``edge.biometrics.<name>``, or from the submodule that defines it."""
    package = importlib.import_module("edge.biometrics")
    if hasattr(package, name):
        return getattr(package, name)
    return getattr(importlib.import_module(f"edge.biometrics.{module}"), name)
