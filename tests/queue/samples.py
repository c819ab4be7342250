"""Builders of realistic enrolment content, without pytest (subprocesses and benchmarks import
them; :mod:`tests.fixtures.keys` re-exports them for tests)."""

from __future__ import annotations

import io
import random
import string
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from PIL import Image

from dr_contracts.enrolment import (
    DocumentKind,
    EnrolmentRecord,
    FingerQuality,
    FingerRecord,
    RequestReason,
    new_enrolment_id,
)
from edge.biometrics.types import FingerPosition

DEVICE_ID = "dr-91228-01"
IMAGE_SHAPE = (288, 256)  # (rows, cols) of the R30x sensor image, 508 dpi


def iso_template(
    rng: random.Random, *, minutiae: int = 40, position: FingerPosition = FingerPosition.RIGHT_INDEX
) -> bytes:
    """A well-formed ISO/IEC 19794-2:2005 record with one view of random minutiae."""
    width, height = IMAGE_SHAPE[1], IMAGE_SHAPE[0]
    body = bytearray()
    body += struct.pack(">BBBB", int(position), 0, 80, minutiae)  # view 0, live-scan plain
    for _ in range(minutiae):
        kind = rng.choice((1, 2))
        x, y = rng.randrange(width), rng.randrange(height)
        body += struct.pack(
            ">HHBB", (kind << 14) | x, y, rng.randrange(256), rng.randrange(40, 101)
        )
    body += b"\x00\x00"  # no extended data
    total = 24 + len(body)
    header = b"FMR\x00 20\x00" + struct.pack(">IHHHHHBB", total, 0, width, height, 200, 200, 1, 0)
    return header + bytes(body)


_ROWS, _COLS = np.mgrid[0 : IMAGE_SHAPE[0], 0 : IMAGE_SHAPE[1]].astype(np.float32)


def fingerprint_png(rng: random.Random) -> bytes:
    """A 288x256 8-bit PNG with a ridge-like pattern and noise (compresses like a real one)."""
    gen = np.random.default_rng(rng.getrandbits(64))
    cy, cx = IMAGE_SHAPE[0] / 2 + gen.normal(0, 20), IMAGE_SHAPE[1] / 2 + gen.normal(0, 20)
    radius = np.hypot(_ROWS - cy, _COLS - cx)
    ridges = np.sin(radius / gen.uniform(2.5, 4.0) + 0.00025 * (_COLS - cx) ** 2)
    noise = gen.normal(0, 18, IMAGE_SHAPE).astype(np.float32)
    image = np.clip(128 + 90 * ridges + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    # Fast compression: tests build many of these; the size stays that of a real capture.
    Image.fromarray(image, mode="L").save(out, format="PNG", compress_level=1)
    return out.getvalue()


def sample_record(
    rng: random.Random,
    *,
    device_id: str = DEVICE_ID,
    prerequest_number: str | None = None,
    **overrides: Any,
) -> EnrolmentRecord:
    """A realistic two-finger enrolment (right and left index, ~40 minutiae, 288x256 PNGs)."""
    started = datetime(2026, 3, 2, 9, 30, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**6))
    fingers = tuple(
        FingerRecord(
            position=position,
            template=iso_template(rng, minutiae=rng.randrange(35, 46), position=position),
            quality=FingerQuality(
                score=rng.randrange(60, 100),
                measures={"contrast": rng.random(), "ridge_clarity": rng.random(), "area": 0.8},
            ),
            image_png=fingerprint_png(rng),
            attempts=rng.randrange(1, 4),
        )
        for position in (FingerPosition.RIGHT_INDEX, FingerPosition.LEFT_INDEX)
    )
    fields: dict[str, Any] = {
        "enrolment_id": new_enrolment_id(),
        "prerequest_number": prerequest_number
        or "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(10)),
        "device_id": device_id,
        "agent_id": "agent.martin",
        "started_at": started,
        "completed_at": started + timedelta(minutes=6),
        "reason": RequestReason.RENEWAL,
        "fingers": fingers,
        "documents": frozenset({DocumentKind.PHOTO, DocumentKind.PROOF_OF_ADDRESS}),
    }
    fields.update(overrides)
    return EnrolmentRecord(**fields)
