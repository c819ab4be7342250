"""Value objects of the central service (what its API takes and returns).

Every object that crosses the API has ``to_dict()`` giving JSON-friendly data, so the HTTP
API and the MQTT side (link) serialise them the same way.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dr_contracts.enrolment import RequestReason
from dr_contracts.identifiers import NumberLease
from dr_contracts.keys import ed25519_fingerprint

# --- pre-requests (CERFA 12100*02) ---------------------------------------------------------


REASON_FR: Final = {
    RequestReason.FIRST_REQUEST: "Première demande",
    RequestReason.RENEWAL: "Renouvellement",
    RequestReason.LOSS: "Perte",
    RequestReason.THEFT: "Vol",
    RequestReason.CHANGE_OF_NAME: "Changement de nom",
    RequestReason.CHANGE_OF_ADDRESS: "Changement d'adresse",
}


class PreRequestStatus(StrEnum):
    """Statuses of the national coordination API. ``validated`` and ``declared`` are usable."""

    VALIDATED = "validated"
    DECLARED = "declared"
    CONSUMED = "consumed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class FormError(ValueError):
    """A pre-request form field is missing or invalid; ``field`` names it."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


_NAME_RE: Final = re.compile(r"[^\W\d_][^\d_]*", re.UNICODE)
_POSTCODE_RE: Final = re.compile(r"[0-9]{5}")


@dataclass(frozen=True, slots=True)
class Parent:
    surname: str
    given_names: str


@dataclass(frozen=True, slots=True)
class PreRequestForm:
    """The CERFA 12100*02 fields a citizen fills in online.

    ``sex`` is ``F`` or ``M``; ``height_cm`` between 30 and 260; ``birth_date`` not in the
    future. Names keep their accents (they are printed on the card).
    """

    surname: str
    given_names: str
    sex: str
    birth_date: date
    birth_place: str
    nationality: str
    address_line: str
    postcode: str
    city: str
    height_cm: int
    eye_colour: str
    reason: RequestReason
    father: Parent | None = None
    mother: Parent | None = None
    birth_country: str = "France"
    usage_name: str = ""
    email: str = ""

    def __post_init__(self) -> None:
        for name in ("surname", "given_names", "birth_place", "city", "eye_colour"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _NAME_RE.fullmatch(value.strip()):
                raise FormError(name, "required, letters only")
        for name in ("nationality", "address_line"):
            if not str(getattr(self, name)).strip():
                raise FormError(name, "required")
        if self.sex not in ("F", "M"):
            raise FormError("sex", "F or M")
        if not isinstance(self.birth_date, date) or self.birth_date > date.today():
            raise FormError("birth_date", "a date, not in the future")
        if not _POSTCODE_RE.fullmatch(self.postcode):
            raise FormError("postcode", "5 digits")
        if not isinstance(self.height_cm, int) or not 30 <= self.height_cm <= 260:
            raise FormError("height_cm", "whole centimetres between 30 and 260")
        if not isinstance(self.reason, RequestReason):
            raise FormError("reason", f"one of {', '.join(r.value for r in RequestReason)}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["birth_date"] = self.birth_date.isoformat()
        data["reason"] = self.reason.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreRequestForm:
        """Build from JSON-like data; every problem is a :class:`FormError` naming the field."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FormError(unknown[0], "unknown field")
        values = dict(data)
        try:
            values["birth_date"] = date.fromisoformat(str(values["birth_date"]))
        except KeyError:
            raise FormError("birth_date", "required") from None
        except ValueError:
            raise FormError("birth_date", "a date YYYY-MM-DD") from None
        try:
            values["reason"] = RequestReason(values.get("reason", ""))
        except ValueError:
            raise FormError(
                "reason", f"one of {', '.join(r.value for r in RequestReason)}"
            ) from None
        try:
            values["height_cm"] = int(values.get("height_cm", 0))
        except (TypeError, ValueError):
            raise FormError("height_cm", "whole centimetres") from None
        for parent in ("father", "mother"):
            if isinstance(values.get(parent), dict):
                try:
                    values[parent] = Parent(**values[parent])
                except TypeError:
                    raise FormError(parent, "surname and given_names") from None
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise FormError(missing[0], "required")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class PreRequest:
    """A pre-request as central holds it."""

    number: str
    status: PreRequestStatus
    form: PreRequestForm
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None
    request_number: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """What the agent must see at the DR: status, civil status, reason, validity."""
        return {
            "number": self.number,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "consumed_at": None if self.consumed_at is None else self.consumed_at.isoformat(),
            "needs_stamp": self.form.reason.requires_tax_stamp,
            "form": self.form.to_dict(),
        }


# --- tax stamps ----------------------------------------------------------------------------


class StampState(StrEnum):
    UNUSED = "unused"
    USED = "used"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


AMOUNT_STANDARD_CENTS: Final = 2500
AMOUNT_GUYANE_CENTS: Final = 1250
ALLOWED_AMOUNTS_CENTS: Final = frozenset({AMOUNT_STANDARD_CENTS, AMOUNT_GUYANE_CENTS})
GUYANE_DEPARTMENT: Final = "973"


@dataclass(frozen=True, slots=True)
class Stamp:
    number: str
    amount_cents: int
    state: StampState
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "amount_cents": self.amount_cents,
            "amount_eur": f"{self.amount_cents / 100:.2f}",
            "state": self.state.value,
            "expires_at": self.expires_at.isoformat(),
        }


# --- devices -------------------------------------------------------------------------------


class DeviceState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    commune_code: str
    commune_name: str
    station: int
    signing_key: Ed25519PublicKey = field(repr=False)
    handover_key: bytes | None = field(repr=False)
    state: DeviceState
    registered_at: datetime
    revoked_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "commune_code": self.commune_code,
            "commune_name": self.commune_name,
            "station": self.station,
            "state": self.state.value,
            "signing_key_fingerprint": ed25519_fingerprint(self.signing_key),
            "has_handover_key": self.handover_key is not None,
            "registered_at": self.registered_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


# --- request numbers, leases, status -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A lease as central grants it: the lease and its signed wire form for the device."""

    lease: NumberLease
    signed: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease.lease_id,
            "device_id": self.lease.device_id,
            "count": self.lease.count,
            "expires_at": self.lease.expires_at.isoformat(),
            "numbers": list(self.lease.numbers()),
        }


class Stage(StrEnum):
    """Stages of a CNI request, from the DR to the card's handover."""

    RECEIVED = "received"
    UNDER_REVIEW = "under_review"
    IN_PRODUCTION = "in_production"
    AVAILABLE = "available"
    HANDED_OVER = "handed_over"
    REJECTED = "rejected"


STAGE_FR: Final = {
    Stage.RECEIVED: "Demande reçue",
    Stage.UNDER_REVIEW: "En cours d'instruction",
    Stage.IN_PRODUCTION: "Titre en production",
    Stage.AVAILABLE: "Titre disponible en mairie",
    Stage.HANDED_OVER: "Titre remis",
    Stage.REJECTED: "Demande refusée",
}

# Forward steps only; any stage before the handover may end in a rejection.
NEXT_STAGES: Final[dict[Stage, frozenset[Stage]]] = {
    Stage.RECEIVED: frozenset({Stage.UNDER_REVIEW, Stage.REJECTED}),
    Stage.UNDER_REVIEW: frozenset({Stage.IN_PRODUCTION, Stage.REJECTED}),
    Stage.IN_PRODUCTION: frozenset({Stage.AVAILABLE, Stage.REJECTED}),
    Stage.AVAILABLE: frozenset({Stage.HANDED_OVER, Stage.REJECTED}),
    Stage.HANDED_OVER: frozenset(),
    Stage.REJECTED: frozenset(),
}


class StageTransitionError(ValueError):
    """An operator asked for a stage change the workflow does not allow."""

    def __init__(self, number: str, current: Stage, wanted: Stage) -> None:
        super().__init__(f"request {number} is {current}; cannot go to {wanted}")
        self.number = number
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True, slots=True)
class StageEvent:
    stage: Stage
    at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class RequestStatus:
    """The public view of a request: no personal data, only stages and the mairie's code."""

    request_number: str
    stage: Stage
    commune_code: str
    history: tuple[StageEvent, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_number": self.request_number,
            "stage": self.stage.value,
            "stage_fr": STAGE_FR[self.stage],
            "commune_code": self.commune_code,
            "history": [
                {"stage": e.stage.value, "stage_fr": STAGE_FR[e.stage], "at": e.at.isoformat()}
                for e in self.history
            ],
        }
