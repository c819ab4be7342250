"""The sealed enrolment envelope: HPKE to central, signed by the device (format version 1).

Sealing (device side, :func:`seal_enrolment`):

1. ``header`` = canonical CBOR map of the context: device id, enrolment id, record schema
   version, recipient key id (central's HPKE key), signer key id (the device's Ed25519 key),
   creation time, HPKE suite.
2. ``ciphertext`` = HPKE single-shot seal (RFC 9180, base mode, suite
   ML-KEM-768+X25519 / HKDF-SHA256 / AES-256-GCM) of the record bytes to central's public key,
   with ``info = INFO_CONTEXT || header``. The single-shot API has no separate AAD; binding the
   whole header through ``info`` means any change to it makes decryption fail.
3. ``signature`` = Ed25519 by the device over
   ``SIGNATURE_CONTEXT || len(header) (4 bytes, big-endian) || header || SHA-512(ciphertext)``
   (the ciphertext signed through its digest: one pass over ~100 KB instead of Ed25519's two).

Wire layout (canonical CBOR array)::

    ["DRENV", 1, header: bstr, ciphertext: bstr, signature: bstr(64)]
    header = {"dev": "dr-91228-01", "id": h'16 bytes', "rk": "<16 hex>", "schema": 1,
              "sk": "<16 hex>", "suite": "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM",
              "t": <creation time, microseconds since the Unix epoch, UTC>}

Opening (central side, :func:`open_envelope`): strict parse, then the signature is verified
*before* any decryption (cheap rejection of forgeries, and no decryption oracle for
unauthenticated input), then the recipient key is picked by key id among central's current and
previous keys, then HPKE open. :func:`open_enrolment` also decodes the record and checks that
the record agrees with the authenticated header (device id, enrolment id, schema version).

The device holds only central's *public* key: it cannot open what it sealed.
Replays: the enrolment id is random and the creation time is in the header; central stores
the ids it has ingested and passes them as ``seen_enrolment_ids`` (or checks them itself).
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import cbor2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dr_contracts.enrolment import (
    SCHEMA_VERSION,
    EnrolmentDecodeError,
    EnrolmentRecord,
    from_epoch_us,
    parse_enrolment_id,
    to_epoch_us,
)
from dr_contracts.identifiers import DeviceId
from dr_contracts.keys import (
    HPKE_SUITE,
    HPKE_SUITE_NAME,
    KEY_ID_HEX_LENGTH,
    CentralDecryptionKey,
    CentralRecipientKey,
    SigningKey,
    ed25519_key_id,
    verify_ed25519,
)

ENVELOPE_MAGIC: Final = "DRENV"
ENVELOPE_VERSION: Final = 1
INFO_CONTEXT: Final = b"dr-enrolment-envelope-v1\x00"
SIGNATURE_CONTEXT: Final = b"dr-enrolment-signature-v1\x00"
MAX_ENVELOPE_BYTES: Final = 8 * 1024 * 1024
MAX_HEADER_BYTES: Final = 1024
SIGNATURE_BYTES: Final = 64
# ML-KEM-768+X25519 encapsulated key (1120 bytes) + AES-GCM tag (16 bytes).
HPKE_SUITE_OVERHEAD: Final = 1120 + 16

_HEADER_KEYS: Final = frozenset({"dev", "id", "rk", "schema", "sk", "suite", "t"})


# --- errors -------------------------------------------------------------------------------


class EnvelopeError(Exception):
    """An envelope that must not be accepted. ``code`` is stable, for rejections and metrics.

    ``enrolment_id`` and ``device_id`` are those of the (possibly unauthenticated) header when
    it could be parsed, for logging; they are None otherwise.
    """

    code: ClassVar[str] = "envelope_error"

    def __init__(
        self, message: str, *, enrolment_id: str | None = None, device_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.enrolment_id = enrolment_id
        self.device_id = device_id


class MalformedEnvelopeError(EnvelopeError):
    """Not an envelope of this format: bad CBOR, missing or ill-typed fields, bad sizes."""

    code = "envelope_malformed"


class EnvelopeTooLargeError(MalformedEnvelopeError):
    code = "envelope_too_large"

    def __init__(self, size: int) -> None:
        super().__init__(f"envelope of {size} bytes exceeds {MAX_ENVELOPE_BYTES}")
        self.size = size


class UnsupportedEnvelopeVersionError(MalformedEnvelopeError):
    code = "envelope_version"

    def __init__(self, version: object) -> None:
        super().__init__(f"unsupported envelope version {version!r}")
        self.version = version


class BadSignatureError(EnvelopeError):
    """The device signature does not verify with the device's registered public key."""

    code = "envelope_bad_signature"


class SignerKeyMismatchError(BadSignatureError):
    """The header names a signer key other than the device's registered key."""

    code = "envelope_signer_key_mismatch"


class UnknownRecipientKeyError(EnvelopeError):
    """Sealed to a recipient key id central does not hold (never issued, or dropped)."""

    code = "envelope_unknown_recipient_key"

    def __init__(self, key_id: str, **kwargs: Any) -> None:
        super().__init__(f"sealed to unknown recipient key id {key_id}", **kwargs)
        self.key_id = key_id


class DecryptionFailedError(EnvelopeError):
    """HPKE open failed: ciphertext altered, header altered after sealing, or wrong key."""

    code = "envelope_decryption_failed"


class ContextMismatchError(EnvelopeError):
    """The authenticated header disagrees with the record or with the transport context."""

    code = "envelope_context_mismatch"

    def __init__(self, field: str, *, expected: object, actual: object, **kwargs: Any) -> None:
        super().__init__(f"{field}: expected {expected!r}, envelope says {actual!r}", **kwargs)
        self.field = field
        self.expected = expected
        self.actual = actual


class ReplayedEnvelopeError(EnvelopeError):
    """An enrolment id that central has already ingested."""

    code = "envelope_replayed"


class InvalidRecordError(EnvelopeError):
    """The envelope opened, but its plaintext is not a valid enrolment record."""

    code = "envelope_invalid_record"

    def __init__(self, cause: EnrolmentDecodeError, **kwargs: Any) -> None:
        super().__init__(f"invalid enrolment record: {cause}", **kwargs)
        self.field = cause.field
        self.reason = cause.reason


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The cleartext header of an envelope (authenticated only once opened)."""

    device_id: str
    enrolment_id: str
    schema_version: int
    recipient_key_id: str
    signer_key_id: str
    created_at: datetime
    suite: str = HPKE_SUITE_NAME

    def to_bytes(self) -> bytes:
        return cbor2.dumps(
            {
                "dev": self.device_id,
                "id": uuid.UUID(self.enrolment_id).bytes,
                "rk": self.recipient_key_id,
                "schema": self.schema_version,
                "sk": self.signer_key_id,
                "suite": self.suite,
                "t": to_epoch_us(self.created_at),
            },
            canonical=True,
        )


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    header: EnvelopeHeader
    plaintext: bytes

    def __repr__(self) -> str:
        return f"OpenedEnvelope(header={self.header!r}, plaintext=<{len(self.plaintext)} bytes>)"


@dataclass(frozen=True, slots=True)
class OpenedEnrolment:
    header: EnvelopeHeader
    record: EnrolmentRecord
    # The decrypted bytes, checked to be the record's one canonical encoding (so equal to
    # ``record.to_bytes()``): for storing the record without encoding it again.
    record_bytes: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Parsed:
    header: EnvelopeHeader
    header_bytes: bytes
    ciphertext: bytes
    signature: bytes


# --- sealing ------------------------------------------------------------------------------


def _signed_message(header_bytes: bytes, ciphertext: bytes) -> bytes:
    # The ciphertext enters through its SHA-512 digest: Ed25519 hashes its message twice, and
    # hashing ~100 KB once instead halves the cost of signing and of verifying at central.
    digest = hashlib.sha512(ciphertext).digest()
    return SIGNATURE_CONTEXT + struct.pack(">I", len(header_bytes)) + header_bytes + digest


def seal_enrolment(
    record_bytes: bytes,
    *,
    device_id: str,
    enrolment_id: str,
    recipient: CentralRecipientKey,
    signer: SigningKey,
    schema_version: int = SCHEMA_VERSION,
    created_at: datetime | None = None,
) -> bytes:
    """Seal ``record_bytes`` to central's key and sign it with the device key.

    ``created_at`` defaults to now (UTC). Wrong arguments raise ``ValueError``.
    """
    if not isinstance(record_bytes, bytes):
        raise TypeError("record_bytes must be bytes")
    if created_at is None:
        created_at = datetime.now(UTC)
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    DeviceId.parse(device_id)  # MalformedIdentifierError (a ValueError) for a bad device id
    header = EnvelopeHeader(
        device_id=device_id,
        enrolment_id=parse_enrolment_id(enrolment_id),
        schema_version=schema_version,
        recipient_key_id=recipient.key_id,
        signer_key_id=signer.key_id,
        created_at=created_at.astimezone(UTC),
    )
    header_bytes = header.to_bytes()
    # Round-trip through the strict parser: what we emit is exactly what central accepts.
    _header_from_bytes(header_bytes)
    ciphertext = HPKE_SUITE.encrypt(
        record_bytes, recipient.hpke_key, info=INFO_CONTEXT + header_bytes
    )
    signature = signer.sign(_signed_message(header_bytes, ciphertext))
    envelope = cbor2.dumps(
        [ENVELOPE_MAGIC, ENVELOPE_VERSION, header_bytes, ciphertext, signature], canonical=True
    )
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise ValueError(f"sealed envelope of {len(envelope)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    return envelope


def seal_record(
    record: EnrolmentRecord,
    *,
    recipient: CentralRecipientKey,
    signer: SigningKey,
    created_at: datetime | None = None,
) -> bytes:
    """Serialise and seal a record, taking the header fields from it."""
    return seal_enrolment(
        record.to_bytes(),
        device_id=record.device_id,
        enrolment_id=record.enrolment_id,
        schema_version=record.schema_version,
        recipient=recipient,
        signer=signer,
        created_at=created_at,
    )


# --- parsing ------------------------------------------------------------------------------


def _reject_tag(_decoder: object, tag: object) -> object:
    raise MalformedEnvelopeError(f"CBOR tag {getattr(tag, 'tag', '?')} not allowed")


def _loads(data: bytes) -> object:
    try:
        return cbor2.loads(
            data,
            tag_hook=_reject_tag,
            semantic_decoders={},
            max_depth=4,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
    except MalformedEnvelopeError:
        raise
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise MalformedEnvelopeError(f"not valid CBOR: {exc}") from None


def _field(obj: dict[str, Any], key: str, kind: type) -> Any:
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedEnvelopeError(f"header field {key!r} must be {kind.__name__}")
    return value


def _key_id(value: str, key: str) -> str:
    if len(value) != KEY_ID_HEX_LENGTH or value.strip("0123456789abcdef"):
        raise MalformedEnvelopeError(f"header field {key!r} is not a key id")
    return value


def _header_from_bytes(header_bytes: bytes) -> EnvelopeHeader:
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise MalformedEnvelopeError("header too large")
    obj = _loads(header_bytes)
    if not isinstance(obj, dict) or set(obj) != _HEADER_KEYS:
        raise MalformedEnvelopeError(f"header must have exactly the fields {sorted(_HEADER_KEYS)}")
    raw_id = _field(obj, "id", bytes)
    if len(raw_id) != 16:
        raise MalformedEnvelopeError("enrolment id must be 16 bytes")
    try:
        created_at = from_epoch_us(_field(obj, "t", int))
    except OverflowError:
        raise MalformedEnvelopeError("creation time out of range") from None
    header = EnvelopeHeader(
        device_id=_field(obj, "dev", str),
        enrolment_id=str(uuid.UUID(bytes=raw_id)),
        schema_version=_field(obj, "schema", int),
        recipient_key_id=_key_id(_field(obj, "rk", str), "rk"),
        signer_key_id=_key_id(_field(obj, "sk", str), "sk"),
        created_at=created_at,
        suite=_field(obj, "suite", str),
    )
    if not 1 <= len(header.device_id) <= 64 or not header.device_id.isprintable():
        raise MalformedEnvelopeError("header field 'dev' is not a device id")
    if header.to_bytes() != header_bytes:
        raise MalformedEnvelopeError("header is not in canonical CBOR form")
    if header.suite != HPKE_SUITE_NAME:
        raise MalformedEnvelopeError(f"unsupported HPKE suite {header.suite!r}")
    return header


def _parse(data: bytes) -> _Parsed:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEnvelopeError("an envelope is bytes")
    data = bytes(data)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeTooLargeError(len(data))
    obj = _loads(data)
    if not isinstance(obj, list) or len(obj) != 5 or obj[0] != ENVELOPE_MAGIC:
        raise MalformedEnvelopeError("not a DR enrolment envelope")
    _magic, version, header_bytes, ciphertext, signature = obj
    if isinstance(version, bool) or not isinstance(version, int):
        raise MalformedEnvelopeError("envelope version must be an integer")
    if version != ENVELOPE_VERSION:
        raise UnsupportedEnvelopeVersionError(version)
    if not all(isinstance(part, bytes) for part in (header_bytes, ciphertext, signature)):
        raise MalformedEnvelopeError("header, ciphertext and signature must be byte strings")
    if len(signature) != SIGNATURE_BYTES:
        raise MalformedEnvelopeError("signature must be 64 bytes")
    if len(ciphertext) <= HPKE_SUITE_OVERHEAD:
        raise MalformedEnvelopeError("ciphertext too short")
    header = _header_from_bytes(header_bytes)
    canonical = cbor2.dumps(
        [ENVELOPE_MAGIC, ENVELOPE_VERSION, header_bytes, ciphertext, signature], canonical=True
    )
    if canonical != data:
        raise MalformedEnvelopeError("envelope is not in canonical CBOR form (trailing bytes?)")
    return _Parsed(header, header_bytes, ciphertext, signature)


def peek_header(data: bytes) -> EnvelopeHeader:
    """Parse the header WITHOUT authenticating it: only to find which device key to verify
    with and which enrolment id it claims. Raises :class:`MalformedEnvelopeError`."""
    return _parse(data).header


# --- opening ------------------------------------------------------------------------------


def open_envelope(
    data: bytes,
    *,
    recipient_keys: Mapping[str, CentralDecryptionKey],
    device_public_key: Ed25519PublicKey,
    expected_device_id: str | None = None,
    seen_enrolment_ids: Container[str] | None = None,
) -> OpenedEnvelope:
    """Verify and open an envelope (central side).

    Parameters
    ----------
    recipient_keys : mapping of key id to central's private HPKE keys (current and previous).
    device_public_key : the registered Ed25519 key of the device named in the header
        (look it up from :func:`peek_header`'s ``device_id``).
    expected_device_id : the device id the transport authenticated (e.g. the MQTT topic /
        TLS identity); the header must name the same device.
    seen_enrolment_ids : ids already ingested; a match raises :class:`ReplayedEnvelopeError`
        (checked after the signature, so an unauthenticated envelope cannot probe the set).

    Raises
    ------
    MalformedEnvelopeError, ContextMismatchError, SignerKeyMismatchError, BadSignatureError,
    ReplayedEnvelopeError, UnknownRecipientKeyError, DecryptionFailedError
        (all :class:`EnvelopeError`).
    """
    parsed = _parse(data)
    header = parsed.header
    ids = {"enrolment_id": header.enrolment_id, "device_id": header.device_id}
    if expected_device_id is not None and header.device_id != expected_device_id:
        raise ContextMismatchError(
            "device_id", expected=expected_device_id, actual=header.device_id, **ids
        )
    if header.signer_key_id != ed25519_key_id(device_public_key):
        raise SignerKeyMismatchError(
            f"signed with key {header.signer_key_id}, device's key is "
            f"{ed25519_key_id(device_public_key)}",
            **ids,
        )
    if not verify_ed25519(
        device_public_key, parsed.signature, _signed_message(parsed.header_bytes, parsed.ciphertext)
    ):
        raise BadSignatureError("device signature does not verify", **ids)
    if seen_enrolment_ids is not None and header.enrolment_id in seen_enrolment_ids:
        raise ReplayedEnvelopeError(f"enrolment {header.enrolment_id} already ingested", **ids)
    key = recipient_keys.get(header.recipient_key_id)
    if key is None:
        raise UnknownRecipientKeyError(header.recipient_key_id, **ids)
    try:
        plaintext = HPKE_SUITE.decrypt(
            parsed.ciphertext, key.hpke_key, info=INFO_CONTEXT + parsed.header_bytes
        )
    except InvalidTag:
        raise DecryptionFailedError("HPKE open failed", **ids) from None
    return OpenedEnvelope(header=header, plaintext=plaintext)


def open_enrolment(
    data: bytes,
    *,
    recipient_keys: Mapping[str, CentralDecryptionKey],
    device_public_key: Ed25519PublicKey,
    expected_device_id: str | None = None,
    seen_enrolment_ids: Container[str] | None = None,
) -> OpenedEnrolment:
    """:func:`open_envelope`, then decode the record and check it against the header.

    Raises what :func:`open_envelope` raises, plus :class:`InvalidRecordError` and
    :class:`ContextMismatchError` (record and header disagree).
    """
    opened = open_envelope(
        data,
        recipient_keys=recipient_keys,
        device_public_key=device_public_key,
        expected_device_id=expected_device_id,
        seen_enrolment_ids=seen_enrolment_ids,
    )
    header = opened.header
    ids = {"enrolment_id": header.enrolment_id, "device_id": header.device_id}
    try:
        record = EnrolmentRecord.from_bytes(opened.plaintext)
    except EnrolmentDecodeError as exc:
        raise InvalidRecordError(exc, **ids) from None
    for name, in_header, in_record in (
        ("device_id", header.device_id, record.device_id),
        ("enrolment_id", header.enrolment_id, record.enrolment_id),
        ("schema_version", header.schema_version, record.schema_version),
    ):
        if in_header != in_record:
            raise ContextMismatchError(name, expected=in_header, actual=in_record, **ids)
    return OpenedEnrolment(header=header, record=record, record_bytes=opened.plaintext)


__all__ = [
    "ENVELOPE_VERSION",
    "MAX_ENVELOPE_BYTES",
    "BadSignatureError",
    "ContextMismatchError",
    "DecryptionFailedError",
    "EnvelopeError",
    "EnvelopeHeader",
    "EnvelopeTooLargeError",
    "InvalidRecordError",
    "MalformedEnvelopeError",
    "OpenedEnrolment",
    "OpenedEnvelope",
    "ReplayedEnvelopeError",
    "SignerKeyMismatchError",
    "UnknownRecipientKeyError",
    "UnsupportedEnvelopeVersionError",
    "open_enrolment",
    "open_envelope",
    "peek_header",
    "seal_enrolment",
    "seal_record",
]
