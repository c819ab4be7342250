"""What the workflow needs from the other parts of the edge, as small protocols.

The workflow (``edge.station.workflow``) knows only these; ``edge.station.adapters`` binds
them to the real sensor driver, biometric core, sealed outbox and MQTT link, and the unit tests
of the workflow bind them to in-memory fakes. Each port raises the station's own errors
(``edge.station.errors``), so that the workflow never depends on another area's exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from edge.biometrics.types import FingerPosition, FingerTemplate

# Reasons of a request (CERFA 12100*02) that need a tax stamp.
STAMP_REASONS = frozenset({"loss", "theft"})

REASONS_FR: dict[str, str] = {
    "first_request": "Première demande",
    "renewal": "Renouvellement",
    "loss": "Perte",
    "theft": "Vol",
    "change_of_name": "Changement de nom",
    "change_of_address": "Changement d'adresse",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PrerequestInfo:
    """What the agent must see of a pre-request (from central, or typed while offline)."""

    number: str
    surname: str
    given_names: str
    birth_date: date
    reason: str
    status: str = "validated"
    sex: str = ""
    birth_place: str = ""
    verified_online: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "surname": self.surname,
            "given_names": self.given_names,
            "birth_date": self.birth_date.isoformat(),
            "reason": self.reason,
            "status": self.status,
            "sex": self.sex,
            "birth_place": self.birth_place,
            "verified_online": self.verified_online,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> PrerequestInfo:
        return cls(
            number=str(data["number"]),
            surname=str(data["surname"]),
            given_names=str(data["given_names"]),
            birth_date=date.fromisoformat(str(data["birth_date"])),
            reason=str(data["reason"]),
            status=str(data.get("status", "validated")),
            sex=str(data.get("sex", "")),
            birth_place=str(data.get("birth_place", "")),
            verified_online=bool(data.get("verified_online", True)),
        )


class CentralPort(Protocol):
    """Central's services as the station uses them, through the link.

    Every method raises :class:`~edge.station.errors.CentralUnavailableError` when central cannot
    be reached, and the specific refusal (``PrerequestRefusedError``, ``StampRefusedError``,
    ``StationError``) when central answers no.
    """

    @property
    def online(self) -> bool: ...

    async def lookup_prerequest(self, number: str) -> PrerequestInfo: ...

    async def check_stamp(self, number: str) -> None: ...

    async def lease_numbers(self, count: int) -> tuple[str, list[str], datetime | None]:
        """(lease id, verified request numbers, expiry)."""
        ...

    async def handover_templates(self, request_number: str) -> list[FingerTemplate]:
        """The enrolment's templates, opened on this device, for the identity check."""
        ...

    async def record_handover(self, request_number: str, *, agent_id: str) -> None: ...


class SensorPort(Protocol):
    @property
    def state(self) -> str:
        """``ready``, ``absent`` or ``error`` (for the console and telemetry)."""
        ...

    async def capture(self, *, finger_wait: float) -> NDArray[np.uint8]:
        """One image (288, 256) uint8 once a finger is on the sensor.

        Raises ``CaptureProblemError`` (retry-worthy: no finger, messy image) or
        ``DeviceUnavailableError``.
        """
        ...


class ScannerPort(Protocol):
    async def next_payload(self, *, wait: float) -> str:
        """The next line scanned after this call; ``DeviceUnavailableError`` on timeout."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Analysis:
    """One capture through the biometric core."""

    quality: int
    measures: dict[str, float]
    advice: tuple[str, ...]  # advice codes
    advice_fr: tuple[str, ...]
    template: FingerTemplate
    iso_template: bytes
    image_png: bytes
    preview_png: bytes


class BiometricPort(Protocol):
    def analyse(self, image: NDArray[np.uint8], *, position: FingerPosition) -> Analysis:
        """Quality, template, ISO record, PNG and preview (CPU-heavy: run off the loop)."""
        ...

    def match(self, a: FingerTemplate, b: FingerTemplate) -> tuple[bool, float]:
        """(same finger?, score)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FingerData:
    position: FingerPosition
    iso_template: bytes
    image_png: bytes
    quality: int
    measures: dict[str, float]
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrolmentDraft:
    """Everything the sealed enrolment holds, before serialisation."""

    enrolment_id: str
    prerequest_number: str
    device_id: str
    agent_id: str
    started_at: datetime
    completed_at: datetime
    reason: str
    fingers: tuple[FingerData, ...]
    exceptions: tuple[tuple[FingerPosition, str, int], ...]  # position, code, attempts
    documents: tuple[str, ...]
    stamp_number: str | None
    request_number: str
    extra: dict[str, str] = field(default_factory=dict)
    erase_images: bool = False  # the applicant's choice (décret 2021-279, art. 4-3 I bis)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStatus:
    depth: int
    oldest_pending_age: float | None
    alert: bool
    last_rejections: tuple[tuple[str, str], ...] = ()  # (enrolment id, French message)


class EnrolmentSink(Protocol):
    def submit(self, draft: EnrolmentDraft) -> None:
        """Serialise, seal and enqueue; returns after the commit (idempotent per id).

        Raises ``QueueFullError`` with the outbox's French message.
        """
        ...

    def check_admission(self) -> None:
        """Raise ``QueueFullError`` when a new enrolment would be refused (before a session)."""
        ...

    def status(self) -> QueueStatus: ...
