"""The ``[payload, signature]`` CBOR wrapping shared by central's signed acknowledgements and
number leases: one place decodes the outer pair and the versioned payload map.

Each caller passes its own error type and names, so that what a device shows stays specific
("not a signed lease", "unsupported acknowledgement version").
"""

from __future__ import annotations

from typing import Any

import cbor2


def split_signed(data: bytes, *, what: str, error: type[Exception]) -> tuple[bytes, bytes]:
    """``data`` as ``(payload, signature)``; ``what`` names the thing ("a signed lease")."""
    try:
        outer = cbor2.loads(data)
    except (cbor2.CBORDecodeError, TypeError, ValueError) as exc:
        raise error(f"not {what}: {exc}") from exc
    if not (
        isinstance(outer, list) and len(outer) == 2 and all(isinstance(p, bytes) for p in outer)
    ):
        raise error(f"{what} is [payload, signature]")
    return outer[0], outer[1]


def load_payload(
    payload: bytes, *, noun: str, version: int, error: type[Exception]
) -> dict[Any, Any]:
    """The payload's map, checked to carry ``"v": version``; ``noun`` is e.g. "lease"."""
    try:
        fields = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, TypeError, ValueError) as exc:
        raise error(f"bad {noun} payload: {exc}") from exc
    if not isinstance(fields, dict) or fields.get("v") != version:
        raise error(f"unsupported {noun} version")
    return fields
