"""Central's acknowledgement of an ingested enrolment, signed by central.

The outbox deletes a sealed enrolment only on this acknowledgement. It is produced once, when
the enrolment is recorded, and stored: a duplicate delivery is answered with the very same
bytes, so a device can never be given a second request number.

Wire form: CBOR ``[payload, signature]``; ``payload`` is the canonical CBOR map of the fields
below; the Ed25519 signature by central covers ``b"dr-enrolment-ack-v1\\0" + payload``.
``key_id`` names central's signing key (first 16 hex digits of its fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dr_contracts import ed25519_sodium
from dr_contracts.keys import SigningKey, ed25519_key_id
from dr_contracts.signed_cbor import load_payload, split_signed

ACK_SIGNATURE_CONTEXT: Final = b"dr-enrolment-ack-v1\x00"


class AckError(ValueError):
    """An acknowledgement the device must not trust."""


class AckMalformedError(AckError):
    """Not an acknowledgement of this format."""


class AckForgedError(AckError):
    """The signature does not verify with any of central's trusted keys."""


class AckNotForDeviceError(AckError):
    """A valid acknowledgement, but for another device."""


@dataclass(frozen=True, slots=True)
class Ack:
    """Central recorded enrolment ``enrolment_id`` of ``device_id`` as ``request_number``."""

    enrolment_id: str
    device_id: str
    request_number: str
    prerequest_number: str
    received_at: datetime
    recorded_at: datetime
    key_id: str
    signature: bytes = b""

    def payload(self) -> bytes:
        return cbor2.dumps(_fields(self), canonical=True)

    def to_bytes(self) -> bytes:
        """Signed wire form ``[payload, signature]``."""
        return cbor2.dumps([self.payload(), self.signature])

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields (without the signature)."""
        return _fields(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Ack:
        """Decode WITHOUT checking the signature (for bytes from a trusted store only;
        a device uses :func:`verify_ack`)."""
        return _decode_payload(*_split(data))

    @classmethod
    def signed(
        cls,
        *,
        enrolment_id: str,
        device_id: str,
        request_number: str,
        prerequest_number: str,
        received_at: datetime,
        recorded_at: datetime,
        key: SigningKey,
    ) -> Ack:
        unsigned = cls(
            enrolment_id=enrolment_id,
            device_id=device_id,
            request_number=request_number,
            prerequest_number=prerequest_number,
            received_at=received_at.astimezone(UTC),
            recorded_at=recorded_at.astimezone(UTC),
            key_id=key.key_id,
        )
        signature = key.sign(ACK_SIGNATURE_CONTEXT + unsigned.payload())
        return cls(**{**_fields_raw(unsigned), "signature": signature})


def _fields_raw(ack: Ack) -> dict[str, Any]:
    return {
        "enrolment_id": ack.enrolment_id,
        "device_id": ack.device_id,
        "request_number": ack.request_number,
        "prerequest_number": ack.prerequest_number,
        "received_at": ack.received_at,
        "recorded_at": ack.recorded_at,
        "key_id": ack.key_id,
    }


def _fields(ack: Ack) -> dict[str, Any]:
    fields = _fields_raw(ack)
    fields["received_at"] = ack.received_at.astimezone(UTC).isoformat()
    fields["recorded_at"] = ack.recorded_at.astimezone(UTC).isoformat()
    fields["v"] = 1
    return fields


def verify_ack(
    data: bytes, *, central_keys: Iterable[Ed25519PublicKey], device_id: str | None = None
) -> Ack:
    """Decode and check an acknowledgement (on the device).

    Raises :class:`AckMalformedError`, :class:`AckForgedError` or :class:`AckNotForDeviceError`.
    """
    payload, signature = _split(data)
    ack = _decode_payload(payload, signature)
    keys = {ed25519_key_id(key): key for key in central_keys}
    key = keys.get(ack.key_id)
    if key is None:
        raise AckForgedError(f"acknowledgement signed by unknown key {ack.key_id}")
    try:
        ed25519_sodium.verify(key, signature, ACK_SIGNATURE_CONTEXT + payload)
    except InvalidSignature as exc:
        raise AckForgedError("acknowledgement signature does not verify") from exc
    if device_id is not None and ack.device_id != device_id:
        raise AckNotForDeviceError(f"acknowledgement is for {ack.device_id}, not {device_id}")
    return ack


def _split(data: bytes) -> tuple[bytes, bytes]:
    return split_signed(data, what="an acknowledgement", error=AckMalformedError)


def _decode_payload(payload: bytes, signature: bytes) -> Ack:
    fields = load_payload(payload, noun="acknowledgement", version=1, error=AckMalformedError)
    try:
        return Ack(
            enrolment_id=_text(fields["enrolment_id"]),
            device_id=_text(fields["device_id"]),
            request_number=_text(fields["request_number"]),
            prerequest_number=_text(fields["prerequest_number"]),
            received_at=datetime.fromisoformat(_text(fields["received_at"])),
            recorded_at=datetime.fromisoformat(_text(fields["recorded_at"])),
            key_id=_text(fields["key_id"]),
            signature=signature,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AckMalformedError(f"bad acknowledgement fields: {exc}") from exc


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value
