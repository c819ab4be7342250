"""The enrolment record: what a DR station captured for one CNI request (schema version 1).

One definition, shared by the device (which builds, serialises and seals it) and central (which
opens, decodes and validates it). Serialised with CBOR (RFC 8949) in its *canonical* form;
:meth:`EnrolmentRecord.from_bytes` is strict: it accepts only the exact bytes that
:meth:`EnrolmentRecord.to_bytes` would produce for a valid record (no unknown or duplicate keys,
no tags, no indefinite lengths, no trailing bytes, every field typed and bounded), else it raises
:class:`EnrolmentDecodeError` naming the field.

Wire layout (a CBOR map with short text keys; optional keys are *absent* when unset, never null)::

    {"v": 1,                         schema version (uint)
     "id": h'16 bytes',              enrolment id (UUID, random; central deduplicates on it)
     "pre": "A1B2C3D4E5",            pre-request number (normalised)
     "dev": "dr-91228-01",           device id
     "agent": "agent.dupont",        agent id (account name at the mairie)
     "t0": 1767225600000000,         session start, microseconds since the Unix epoch (UTC)
     "t1": 1767225900000000,         enrolment completed (agent confirmed), same unit
     "reason": "renewal",            RequestReason
     "fingers": [                    1..10 entries, distinct positions
        {"pos": 2,                   ISO/IEC 19794-2 finger position (FingerPosition)
         "n": 2,                     capture attempts made (0..10)
         "tpl": h'464d5200...',      ISO/IEC 19794-2:2005 record      } present together when
         "q": {"s": 87, "m": {...}}, quality score 0-100 + measures   } the finger was captured,
         "png": h'89504e47...'},     lossless PNG of the kept image    } all absent otherwise
        {"pos": 7, "n": 0, "exc": "bandaged_injured"}   FingerException instead of a capture
     ],
     "docs": ["photo", ...],         DocumentKind values checked by the agent, sorted, distinct
     "stamp": "1234567890123456",    tax stamp number (optional)
     "num": "ABCD1234EFGH",          CNI request number from the device's lease (optional;
                                     absent when central assigns one at ingest)
     "erase": true}                  the applicant asked for the full images to be erased 90
                                     days after the card is issued or refused, keeping only
                                     the templates (décret 2021-279, art. 4-3 I bis); present
                                     only when true (optional, absent = false)

Finger *policy* (two index fingers, fallbacks, under-12 rule) is the station's and central's;
the record only guarantees a well-formed, unambiguous description of what happened.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Final

import cbor2

from dr_contracts.identifiers import (
    DeviceId,
    IdentifierError,
    parse_prerequest_number,
    parse_request_number,
    parse_stamp_number,
)
from edge.biometrics.types import FingerPosition

SCHEMA_VERSION: Final = 1
SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({1})

MAX_RECORD_BYTES: Final = 4 * 1024 * 1024
MAX_FINGERS: Final = 10
MAX_ATTEMPTS: Final = 10
# ISO/IEC 19794-2: 24-byte header, per view 4 bytes + 6 per minutia (<= 255) + extended data.
MIN_TEMPLATE_BYTES: Final = 24 + 4 + 2
MAX_TEMPLATE_BYTES: Final = 16 * 1024
# A 256x288 8-bit image is 73,728 bytes raw; PNG of a fingerprint is typically 30-60 KB.
MAX_IMAGE_BYTES: Final = 1024 * 1024
MAX_MEASURES: Final = 32
MAX_MEASURE_NAME: Final = 48
MAX_DOCUMENTS: Final = 16

ISO_19794_2_MAGIC: Final = b"FMR\x00 20\x00"
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"

_AGENT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_MEASURE_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,47}")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class FingerException(StrEnum):
    """Why a finger was not captured; recorded *instead of* a capture for that position.

    - ``amputated``: the finger is missing (amputation, agenesis): permanent.
    - ``bandaged_injured``: temporarily unavailable (dressing, wound, cast, burn).
    - ``unreadable_after_retries``: presented, but no capture reached usable quality within the
      allowed attempts (worn ridges, skin condition); the attempts count says how many.
    - ``under_age``: the citizen is under 12: no fingerprints are taken for a CNI.
    - ``physically_unable``: the citizen cannot place the finger on the sensor (disability,
      tremor, hand impairment) although the finger exists.
    """

    AMPUTATED = "amputated"
    BANDAGED_INJURED = "bandaged_injured"
    UNREADABLE_AFTER_RETRIES = "unreadable_after_retries"
    UNDER_AGE = "under_age"
    PHYSICALLY_UNABLE = "physically_unable"


class DocumentKind(StrEnum):
    """Supporting documents the agent checked (CERFA 12100*02 checklist)."""

    PHOTO = "photo"  # ID photograph (or e-photo code), less than 6 months old
    PROOF_OF_ADDRESS = "proof_of_address"  # justificatif de domicile, < 1 year
    HOST_ATTESTATION = "host_attestation"  # attestation d'hébergement + host's ID
    PREVIOUS_CARD = "previous_card"  # the card being renewed
    LOSS_DECLARATION = "loss_declaration"  # déclaration de perte
    THEFT_DECLARATION = "theft_declaration"  # récépissé de plainte pour vol
    CIVIL_STATUS_PROOF = "civil_status_proof"  # acte de naissance
    NATIONALITY_PROOF = "nationality_proof"  # justificatif de nationalité française
    PARENTAL_AUTHORITY = "parental_authority"  # minor: parent's ID and authority
    NAME_CHANGE_PROOF = "name_change_proof"  # marriage, divorce, or name change decision


class RequestReason(StrEnum):
    """Reason of the CNI request (CERFA 12100*02)."""

    FIRST_REQUEST = "first_request"
    RENEWAL = "renewal"
    LOSS = "loss"
    THEFT = "theft"
    CHANGE_OF_NAME = "change_of_name"
    CHANGE_OF_ADDRESS = "change_of_address"

    @property
    def requires_tax_stamp(self) -> bool:
        """A CNI replacing a lost or stolen one costs a tax stamp; other requests are free."""
        return self in (RequestReason.LOSS, RequestReason.THEFT)


# --- errors -------------------------------------------------------------------------------


class EnrolmentError(ValueError):
    """An enrolment record that breaks the schema. ``field`` is a dotted path (or None)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class InvalidEnrolmentError(EnrolmentError):
    """A value given to a record constructor breaks the schema."""


class EnrolmentDecodeError(EnrolmentError):
    """Bytes that are not a valid, canonical enrolment record of a supported schema version."""


class UnsupportedSchemaVersionError(EnrolmentDecodeError):
    """The record declares a schema version this code does not read."""

    def __init__(self, version: object) -> None:
        super().__init__("v", f"unsupported schema version {version!r}")
        self.version = version


# --- values -------------------------------------------------------------------------------


def new_enrolment_id() -> str:
    """A fresh random enrolment id (UUID version 4, canonical text form)."""
    return str(uuid.uuid4())


def parse_enrolment_id(value: str) -> str:
    """Canonical text form of an enrolment id, or :class:`InvalidEnrolmentError`."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidEnrolmentError("enrolment_id", f"not a UUID: {value!r}") from None
    return str(parsed)


def to_epoch_us(when: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (when - _EPOCH) // timedelta(microseconds=1)


def from_epoch_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _fail(field_name: str, reason: str) -> InvalidEnrolmentError:
    return InvalidEnrolmentError(field_name, reason)


def _check_time(field_name: str, value: object) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _fail(field_name, "must be a timezone-aware datetime")
    if value.utcoffset() != timedelta(0):
        raise _fail(field_name, "must be in UTC")
    if not datetime(2000, 1, 1, tzinfo=UTC) <= value <= datetime(2200, 1, 1, tzinfo=UTC):
        raise _fail(field_name, f"out of range: {value.isoformat()}")


def _check_identifier(field_name: str, value: object, parser: Any) -> None:
    if not isinstance(value, str):
        raise _fail(field_name, "must be a string")
    try:
        normalised = parser(value)
    except IdentifierError as exc:
        raise _fail(field_name, exc.reason) from None
    if normalised != value:
        raise _fail(field_name, f"must be given normalised ({normalised!r})")


@dataclass(frozen=True, slots=True)
class FingerQuality:
    """Quality report of a kept capture: score 0-100 and the named measures behind it."""

    score: int
    measures: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.score, bool) or not isinstance(self.score, int):
            raise _fail("quality.score", "must be an integer")
        if not 0 <= self.score <= 100:
            raise _fail("quality.score", f"must be 0-100, got {self.score}")
        if not isinstance(self.measures, Mapping):
            raise _fail("quality.measures", "must be a mapping")
        if len(self.measures) > MAX_MEASURES:
            raise _fail("quality.measures", f"at most {MAX_MEASURES} measures")
        measures: dict[str, float] = {}
        for name, value in self.measures.items():
            if not isinstance(name, str) or not _MEASURE_RE.fullmatch(name):
                raise _fail("quality.measures", f"bad measure name {name!r} (snake_case)")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(f"quality.measures.{name}", "must be a number")
            if not math.isfinite(value):
                raise _fail(f"quality.measures.{name}", "must be finite")
            measures[name] = float(value)
        object.__setattr__(self, "measures", MappingProxyType(dict(sorted(measures.items()))))


@dataclass(frozen=True, slots=True)
class FingerRecord:
    """One finger position: either a capture (template, quality, image) or an exception."""

    position: FingerPosition
    template: bytes | None = None
    quality: FingerQuality | None = None
    image_png: bytes | None = None
    exception: FingerException | None = None
    attempts: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.position, FingerPosition) or self.position is FingerPosition.UNKNOWN:
            raise _fail("finger.position", f"must be a known FingerPosition, got {self.position!r}")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise _fail("finger.attempts", "must be an integer")
        if not 0 <= self.attempts <= MAX_ATTEMPTS:
            raise _fail("finger.attempts", f"must be 0-{MAX_ATTEMPTS}")
        captured = (self.template, self.quality, self.image_png)
        if self.exception is not None:
            if not isinstance(self.exception, FingerException):
                raise _fail("finger.exception", "must be a FingerException")
            if any(part is not None for part in captured):
                raise _fail("finger", "an exception excludes template, quality and image")
            return
        if any(part is None for part in captured):
            raise _fail("finger", "a capture needs template, quality and image (or an exception)")
        if self.attempts < 1:
            raise _fail("finger.attempts", "a capture takes at least one attempt")
        _check_template(self.template)
        _check_png(self.image_png)
        if not isinstance(self.quality, FingerQuality):
            raise _fail("finger.quality", "must be a FingerQuality")

    @property
    def captured(self) -> bool:
        return self.exception is None

    def __repr__(self) -> str:
        # Never print biometric bytes (logs, tracebacks): position, sizes and score only.
        if self.exception is not None:
            return f"FingerRecord({self.position.name}, exception={self.exception.value})"
        score = self.quality.score if self.quality is not None else None
        return (
            f"FingerRecord({self.position.name}, template=<{len(self.template or b'')} bytes>, "
            f"image_png=<{len(self.image_png or b'')} bytes>, score={score}, "
            f"attempts={self.attempts})"
        )


def _check_template(value: object) -> None:
    if not isinstance(value, bytes):
        raise _fail("finger.template", "must be bytes")
    if not MIN_TEMPLATE_BYTES <= len(value) <= MAX_TEMPLATE_BYTES:
        raise _fail(
            "finger.template",
            f"{len(value)} bytes, expected {MIN_TEMPLATE_BYTES}-{MAX_TEMPLATE_BYTES}",
        )
    if not value.startswith(ISO_19794_2_MAGIC):
        raise _fail("finger.template", "not an ISO/IEC 19794-2:2005 record (FMR, 20)")


def _check_png(value: object) -> None:
    if not isinstance(value, bytes):
        raise _fail("finger.image_png", "must be bytes")
    if len(value) > MAX_IMAGE_BYTES:
        raise _fail("finger.image_png", f"{len(value)} bytes, at most {MAX_IMAGE_BYTES}")
    if not value.startswith(PNG_SIGNATURE) or value[12:16] != b"IHDR":
        raise _fail("finger.image_png", "not a PNG image")


@dataclass(frozen=True, slots=True)
class EnrolmentRecord:
    """Everything the station captured for one CNI request. Immutable; validated on creation.

    Raises :class:`InvalidEnrolmentError` (a ``ValueError``) naming the field at fault.
    """

    enrolment_id: str
    prerequest_number: str
    device_id: str
    agent_id: str
    started_at: datetime
    completed_at: datetime
    reason: RequestReason
    fingers: tuple[FingerRecord, ...]
    documents: frozenset[DocumentKind] = frozenset()
    tax_stamp_number: str | None = None
    request_number: str | None = None
    erase_images_after_decision: bool = False
    schema_version: int = SCHEMA_VERSION

    SCHEMA_VERSION: ClassVar[int] = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
            raise _fail("schema_version", f"unsupported schema version {self.schema_version!r}")
        if not isinstance(self.enrolment_id, str) or parse_enrolment_id(self.enrolment_id) != (
            self.enrolment_id
        ):
            raise _fail("enrolment_id", "must be a UUID in canonical lower-case form")
        _check_identifier("prerequest_number", self.prerequest_number, parse_prerequest_number)
        _check_identifier("device_id", self.device_id, lambda v: str(DeviceId.parse(v)))
        if not isinstance(self.agent_id, str) or not _AGENT_RE.fullmatch(self.agent_id):
            raise _fail("agent_id", "1-64 characters A-Z a-z 0-9 . _ @ -")
        _check_time("started_at", self.started_at)
        _check_time("completed_at", self.completed_at)
        if self.completed_at < self.started_at:
            raise _fail("completed_at", "earlier than started_at")
        if not isinstance(self.reason, RequestReason):
            raise _fail("reason", "must be a RequestReason")
        fingers = tuple(self.fingers)
        if not 1 <= len(fingers) <= MAX_FINGERS:
            raise _fail("fingers", f"1-{MAX_FINGERS} entries (use exceptions for the missing)")
        for finger in fingers:
            if not isinstance(finger, FingerRecord):
                raise _fail("fingers", "entries must be FingerRecord")
        positions = [f.position for f in fingers]
        if len(set(positions)) != len(positions):
            raise _fail("fingers", "a finger position appears twice")
        object.__setattr__(self, "fingers", fingers)
        documents = frozenset(self.documents)
        if len(documents) > MAX_DOCUMENTS or not all(
            isinstance(d, DocumentKind) for d in documents
        ):
            raise _fail("documents", "must be DocumentKind values")
        object.__setattr__(self, "documents", documents)
        if self.tax_stamp_number is not None:
            _check_identifier("tax_stamp_number", self.tax_stamp_number, parse_stamp_number)
        if self.request_number is not None:
            _check_identifier("request_number", self.request_number, parse_request_number)
        if not isinstance(self.erase_images_after_decision, bool):
            raise _fail("erase_images_after_decision", "must be a boolean")

    # --- serialisation ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Canonical CBOR encoding (deterministic: equal records give equal bytes)."""
        return cbor2.dumps(self._to_cbor(), canonical=True)

    def _to_cbor(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": self.schema_version,
            "id": uuid.UUID(self.enrolment_id).bytes,
            "pre": self.prerequest_number,
            "dev": self.device_id,
            "agent": self.agent_id,
            "t0": to_epoch_us(self.started_at),
            "t1": to_epoch_us(self.completed_at),
            "reason": self.reason.value,
            "fingers": [_finger_to_cbor(f) for f in self.fingers],
            "docs": sorted(d.value for d in self.documents),
        }
        if self.tax_stamp_number is not None:
            data["stamp"] = self.tax_stamp_number
        if self.request_number is not None:
            data["num"] = self.request_number
        if self.erase_images_after_decision:
            data["erase"] = True
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> EnrolmentRecord:
        """Decode and validate; raise :class:`EnrolmentDecodeError` (or its subclass
        :class:`UnsupportedSchemaVersionError`) on anything but a canonical valid record."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise EnrolmentDecodeError(None, "expected bytes")
        data = bytes(data)
        if len(data) > MAX_RECORD_BYTES:
            raise EnrolmentDecodeError(None, f"{len(data)} bytes, at most {MAX_RECORD_BYTES}")
        obj = _strict_loads(data)
        try:
            record = _record_from_cbor(obj)
        except InvalidEnrolmentError as exc:
            raise EnrolmentDecodeError(exc.field, exc.reason) from None
        if record.to_bytes() != data:
            # Valid content, but not the one canonical encoding: extra bytes, non-minimal
            # integers, unsorted keys... Refuse: a record has exactly one byte form.
            raise EnrolmentDecodeError(None, "not in canonical CBOR form")
        return record

    # --- helpers ---------------------------------------------------------------------------

    @property
    def captured_fingers(self) -> tuple[FingerRecord, ...]:
        return tuple(f for f in self.fingers if f.captured)

    def biometric_blobs(self) -> Iterable[bytes]:
        """Every template and image of the record (tests scan storage and logs for them)."""
        for finger in self.fingers:
            if finger.template is not None:
                yield finger.template
            if finger.image_png is not None:
                yield finger.image_png

    def __repr__(self) -> str:
        # Never print biometric bytes (logs, tracebacks): positions and sizes only.
        fingers = ", ".join(repr(f) for f in self.fingers)
        return (
            f"EnrolmentRecord(enrolment_id={self.enrolment_id!r}, "
            f"prerequest_number={self.prerequest_number!r}, device_id={self.device_id!r}, "
            f"fingers=[{fingers}])"
        )


def _finger_to_cbor(finger: FingerRecord) -> dict[str, Any]:
    data: dict[str, Any] = {"pos": int(finger.position), "n": finger.attempts}
    if finger.exception is not None:
        data["exc"] = finger.exception.value
    else:
        assert finger.quality is not None
        data["tpl"] = finger.template
        data["q"] = {"s": finger.quality.score, "m": dict(finger.quality.measures)}
        data["png"] = finger.image_png
    return data


def _reject_tag(_decoder: object, tag: object) -> object:
    raise EnrolmentDecodeError(None, f"CBOR tag {getattr(tag, 'tag', '?')} not allowed")


def _strict_loads(data: bytes) -> object:
    try:
        return cbor2.loads(
            data,
            tag_hook=_reject_tag,
            semantic_decoders={},
            max_depth=8,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
    except EnrolmentDecodeError:
        raise
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise EnrolmentDecodeError(None, f"not valid CBOR: {exc}") from None


_RECORD_KEYS: Final = frozenset(
    {"v", "id", "pre", "dev", "agent", "t0", "t1", "reason", "fingers", "docs"}
)
_RECORD_OPTIONAL: Final = frozenset({"stamp", "num", "erase"})
_FINGER_CAPTURE_KEYS: Final = frozenset({"pos", "n", "tpl", "q", "png"})
_FINGER_EXCEPTION_KEYS: Final = frozenset({"pos", "n", "exc"})


def _expect(obj: object, kind: type | tuple[type, ...], path: str) -> Any:
    if isinstance(obj, bool) and kind is int:
        raise EnrolmentDecodeError(path, "expected an integer")
    if not isinstance(obj, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise EnrolmentDecodeError(path, f"expected {name}, got {type(obj).__name__}")
    return obj


def _check_keys(
    obj: dict[str, Any], required: frozenset[str], optional: frozenset[str], path: str
) -> None:
    keys = set(obj)
    missing = required - keys
    if missing:
        raise EnrolmentDecodeError(f"{path}{sorted(missing)[0]}", "required field missing")
    unknown = keys - required - optional
    if unknown:
        raise EnrolmentDecodeError(f"{path}{sorted(unknown)[0]}", "unknown field")


def _enum(enum_type: type[StrEnum], value: object, path: str) -> Any:
    text: str = _expect(value, str, path)
    try:
        return enum_type(text)
    except ValueError:
        raise EnrolmentDecodeError(path, f"unknown value {value!r}") from None


def _time(value: object, path: str) -> datetime:
    micros = _expect(value, int, path)
    try:
        return from_epoch_us(micros)
    except OverflowError:
        raise EnrolmentDecodeError(path, "time out of range") from None


def _record_from_cbor(obj: object) -> EnrolmentRecord:
    top = _expect(obj, dict, "record")
    version = top.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise EnrolmentDecodeError("v", "schema version missing or not an integer")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise UnsupportedSchemaVersionError(version)
    _check_keys(top, _RECORD_KEYS, _RECORD_OPTIONAL, "")
    raw_id = _expect(top["id"], bytes, "id")
    if len(raw_id) != 16:
        raise EnrolmentDecodeError("id", "enrolment id must be 16 bytes")
    fingers_raw = _expect(top["fingers"], list, "fingers")
    if not 1 <= len(fingers_raw) <= MAX_FINGERS:
        raise EnrolmentDecodeError("fingers", f"1-{MAX_FINGERS} entries")
    docs_raw = _expect(top["docs"], list, "docs")
    if len(docs_raw) > MAX_DOCUMENTS:
        raise EnrolmentDecodeError("docs", f"at most {MAX_DOCUMENTS} entries")
    documents = [_enum(DocumentKind, d, f"docs[{i}]") for i, d in enumerate(docs_raw)]
    if len(set(documents)) != len(documents):
        raise EnrolmentDecodeError("docs", "a document appears twice")
    return EnrolmentRecord(
        schema_version=version,
        enrolment_id=str(uuid.UUID(bytes=raw_id)),
        prerequest_number=_expect(top["pre"], str, "pre"),
        device_id=_expect(top["dev"], str, "dev"),
        agent_id=_expect(top["agent"], str, "agent"),
        started_at=_time(top["t0"], "t0"),
        completed_at=_time(top["t1"], "t1"),
        reason=_enum(RequestReason, top["reason"], "reason"),
        fingers=tuple(_finger_from_cbor(f, f"fingers[{i}]") for i, f in enumerate(fingers_raw)),
        documents=frozenset(documents),
        tax_stamp_number=_expect(top["stamp"], str, "stamp") if "stamp" in top else None,
        request_number=_expect(top["num"], str, "num") if "num" in top else None,
        # Absent means false; an explicit false is refused as non-canonical by from_bytes.
        erase_images_after_decision=_expect(top["erase"], bool, "erase")
        if "erase" in top
        else False,
    )


def _finger_from_cbor(obj: object, path: str) -> FingerRecord:
    finger = _expect(obj, dict, path)
    if "exc" in finger:
        _check_keys(finger, _FINGER_EXCEPTION_KEYS, frozenset(), f"{path}.")
    else:
        _check_keys(finger, _FINGER_CAPTURE_KEYS, frozenset(), f"{path}.")
    code = _expect(finger["pos"], int, f"{path}.pos")
    try:
        position = FingerPosition(code)
    except ValueError:
        raise EnrolmentDecodeError(f"{path}.pos", f"unknown finger position {code}") from None
    attempts = _expect(finger["n"], int, f"{path}.n")
    try:
        if "exc" in finger:
            return FingerRecord(
                position=position,
                exception=_enum(FingerException, finger["exc"], f"{path}.exc"),
                attempts=attempts,
            )
        quality = _expect(finger["q"], dict, f"{path}.q")
        _check_keys(quality, frozenset({"s", "m"}), frozenset(), f"{path}.q.")
        measures = _expect(quality["m"], dict, f"{path}.q.m")
        return FingerRecord(
            position=position,
            template=_expect(finger["tpl"], bytes, f"{path}.tpl"),
            quality=FingerQuality(
                score=_expect(quality["s"], int, f"{path}.q.s"), measures=measures
            ),
            image_png=_expect(finger["png"], bytes, f"{path}.png"),
            attempts=attempts,
        )
    except InvalidEnrolmentError as exc:
        raise EnrolmentDecodeError(f"{path}.{exc.field}", exc.reason) from None


__all__ = [
    "SCHEMA_VERSION",
    "DocumentKind",
    "EnrolmentDecodeError",
    "EnrolmentError",
    "EnrolmentRecord",
    "FingerException",
    "FingerQuality",
    "FingerRecord",
    "InvalidEnrolmentError",
    "RequestReason",
    "UnsupportedSchemaVersionError",
    "new_enrolment_id",
    "parse_enrolment_id",
]
