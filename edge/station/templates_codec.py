"""Serialisation of one capture for the station's encrypted working store (CBOR).

Internal to the station (the sealed enrolment uses the ISO/IEC 19794-2 record instead); it
keeps the matcher's own template so two captures can be compared after a daemon restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2

from edge.biometrics.types import FingerPosition, FingerTemplate, Minutia, MinutiaKind


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCapture:
    position: FingerPosition
    quality: int
    measures: dict[str, float]
    template: FingerTemplate
    iso_template: bytes
    image_png: bytes


def template_to_obj(t: FingerTemplate) -> dict[str, Any]:
    return {
        "w": t.width,
        "h": t.height,
        "dpi": float(t.dpi),
        "pos": int(t.position),
        "q": int(t.quality),
        "imp": int(t.impression),
        "m": [[m.x, m.y, float(m.angle), int(m.kind), m.quality] for m in t.minutiae],
    }


def template_from_obj(obj: dict[str, Any]) -> FingerTemplate:
    return FingerTemplate(
        width=int(obj["w"]),
        height=int(obj["h"]),
        dpi=float(obj["dpi"]),
        minutiae=tuple(
            Minutia(int(x), int(y), float(a), MinutiaKind(int(k)), int(q))
            for x, y, a, k, q in obj["m"]
        ),
        position=FingerPosition(int(obj["pos"])),
        quality=int(obj["q"]),
        impression=int(obj["imp"]),
    )


def encode_capture(c: StoredCapture) -> bytes:
    return cbor2.dumps(
        {
            "pos": int(c.position),
            "q": c.quality,
            "meas": {k: float(v) for k, v in c.measures.items()},
            "t": template_to_obj(c.template),
            "iso": c.iso_template,
            "png": c.image_png,
        }
    )


def decode_capture(data: bytes) -> StoredCapture:
    obj = cbor2.loads(data)
    return StoredCapture(
        position=FingerPosition(int(obj["pos"])),
        quality=int(obj["q"]),
        measures={str(k): float(v) for k, v in obj["meas"].items()},
        template=template_from_obj(obj["t"]),
        iso_template=bytes(obj["iso"]),
        image_png=bytes(obj["png"]),
    )
