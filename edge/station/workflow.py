"""The enrolment workflow: a state machine per session, persisted at every transition.

Steps (issue 7)::

    prerequest --recall--> documents --checklist--> fingers --(plan complete)--> summary
        --confirm (seal + enqueue + receipt)--> done
    any step but done --abort--> aborted

Every transition is saved (encrypted) in the station's SQLite file before the agent sees its
result, so a daemon restart resumes the session where it was (:meth:`Station.resume`); a
session left unfinished longer than ``session_resume_hours`` is aborted cleanly and its
captures deleted. ``confirm`` is idempotent per enrolment id: a crash between the outbox
commit and the end of the step is finished on restart with the same request number.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dr_contracts.audit import AuditLog
from dr_contracts.enrolment import FingerException, new_enrolment_id
from dr_contracts.identifiers import IdentifierError, parse_prerequest_number, parse_stamp_number
from dr_contracts.qr import QrForgedError, QrMalformedError, verify_prerequest_qr
from edge.biometrics.types import FingerPosition, FingerTemplate
from edge.config import PolicySection
from edge.station.errors import (
    CentralUnavailableError,
    DocumentsIncompleteError,
    NoRequestNumberError,
    PrerequestRefusedError,
    SessionNotFoundError,
    StampRefusedError,
    StationError,
    WrongStepError,
)
from edge.station.fingers import (
    AGENT_EXCEPTIONS,
    EXCEPTIONS_FR,
    FINGER_NAMES_FR,
    Attempt,
    FingerPlan,
    Outcome,
)
from edge.station.ports import (
    REASONS_FR,
    STAMP_REASONS,
    BiometricPort,
    CentralPort,
    EnrolmentDraft,
    EnrolmentSink,
    FingerData,
    PrerequestInfo,
    ScannerPort,
    SensorPort,
)
from edge.station.receipt import ReceiptData, write_receipt
from edge.station.store import SessionRow, StationStore
from edge.station.templates_codec import StoredCapture, decode_capture, encode_capture

log = logging.getLogger(__name__)


class Step(StrEnum):
    PREREQUEST = "prerequest"
    DOCUMENTS = "documents"
    FINGERS = "fingers"
    SUMMARY = "summary"
    DONE = "done"
    ABORTED = "aborted"


OPEN_STEPS = (Step.PREREQUEST, Step.DOCUMENTS, Step.FINGERS, Step.SUMMARY)

DOCUMENTS_FR: dict[str, str] = {
    "photo": "Photo d'identité conforme (moins de 6 mois)",
    "proof_of_address": "Justificatif de domicile",
}
REQUIRED_DOCUMENTS = tuple(DOCUMENTS_FR)

OUTCOMES_FR: dict[Outcome, str] = {
    Outcome.RETRY: "Nouvelle capture du même doigt nécessaire.",
    Outcome.CAPTURED: "Empreinte enregistrée.",
    Outcome.FAILED: "Empreinte illisible après plusieurs essais : passage au doigt suivant.",
    Outcome.SAME_FINGER: (
        "Ce doigt a déjà été relevé : présentez le doigt demandé, pas le même deux fois."
    ),
}


def _outcome_message(outcome: Outcome, attempts: int) -> str:
    if outcome is Outcome.RETRY and attempts == 1:
        return (
            "Première capture enregistrée : une seconde capture du même doigt vérifie leur "
            "concordance."
        )
    if outcome is Outcome.RETRY:
        return (
            "Les captures ne concordent pas ou sont de qualité insuffisante : reposez le même "
            "doigt en suivant les conseils."
        )
    return OUTCOMES_FR[outcome]


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class Station:
    """The workflow service the console and the CLI drive (one per daemon)."""

    def __init__(
        self,
        *,
        device_id: str,
        mairie: str,
        mairie_address: str,
        store: StationStore,
        audit: AuditLog,
        central: CentralPort,
        sensor: SensorPort | None,
        scanner: ScannerPort | None,
        biometrics: BiometricPort,
        sink: EnrolmentSink,
        receipts_dir: Path,
        policy: PolicySection,
        qr_keys: list[Ed25519PublicKey],
        clock: Callable[[], datetime],
        capture_timeout: float = 20.0,
    ) -> None:
        self.device_id = device_id
        self.mairie = mairie
        self.mairie_address = mairie_address
        self._store = store
        self._audit = audit
        self.central = central
        self.sensor = sensor
        self.scanner = scanner
        self._bio = biometrics
        self.sink = sink
        self._receipts_dir = receipts_dir
        self._policy = policy
        self._qr_keys = qr_keys
        self._clock = clock
        self._capture_timeout = capture_timeout
        self._locks: dict[str, asyncio.Lock] = {}
        self._previews: dict[str, bytes] = {}  # in memory only: biometric
        self._lease_lock = asyncio.Lock()
        self.changed = asyncio.Condition()

    # -- helpers ---------------------------------------------------------------------------
    def _now(self) -> datetime:
        return self._clock()

    @asynccontextmanager
    async def _session(self, session_id: str, agent_id: str) -> Any:
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            row = self._store.session(session_id)
            if row is None or row.agent_id != agent_id:
                raise SessionNotFoundError("session_not_found", "Dossier introuvable.")
            yield row

    def _save(self, row: SessionRow, step: Step, data: dict[str, Any]) -> SessionRow:
        new = SessionRow(
            row.id, row.agent_id, str(step), row.created_at, self._now().isoformat(), data
        )
        self._store.save_session(new)
        return new

    @staticmethod
    def _require(row: SessionRow, *steps: Step) -> None:
        if row.step not in steps:
            raise WrongStepError(
                "wrong_step",
                "Cette action n'est pas possible à cette étape du dossier.",
                step=row.step,
            )

    def _load_capture(self, capture_id: str) -> StoredCapture:
        payload = self._store.capture(capture_id)
        if payload is None:
            raise StationError("capture_missing", "Une capture est introuvable : reprenez-la.")
        return decode_capture(payload)

    # -- views -----------------------------------------------------------------------------
    def view(self, row: SessionRow) -> dict[str, Any]:
        data = row.data
        view: dict[str, Any] = {
            "id": row.id,
            "step": row.step,
            "agent_id": row.agent_id,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "prerequest": data.get("prerequest"),
            "documents": data.get("documents", {}),
            "stamp": data.get("stamp"),
            "stamp_required": bool(data.get("prerequest"))
            and data["prerequest"]["reason"] in STAMP_REASONS,
            "documents_fr": DOCUMENTS_FR,
            "request_number": data.get("request_number"),
            "receipt": data.get("receipt"),
            "offline": data.get("offline", False),
            "last_capture": data.get("last_capture"),
            "exceptions_fr": {str(c): EXCEPTIONS_FR[c] for c in AGENT_EXCEPTIONS},
        }
        if data.get("prerequest"):
            view["prerequest"] = dict(data["prerequest"])
            view["prerequest"]["reason_fr"] = REASONS_FR.get(
                data["prerequest"]["reason"], data["prerequest"]["reason"]
            )
        if data.get("fingers") is not None:
            plan = FingerPlan.from_json(data["fingers"])
            current = plan.current()
            view["fingers"] = {
                "under_age": plan.under_age,
                "current": None
                if current is None
                else {
                    "slot": current[0],
                    "position": int(current[1]),
                    "name_fr": FINGER_NAMES_FR[current[1]],
                    "attempts": len(plan.fingers[current[1]].attempts),
                    "max_attempts": plan.attempts_per_finger,
                },
                "fingers": [
                    {
                        "position": int(r.position),
                        "name_fr": FINGER_NAMES_FR[r.position],
                        "attempts": [a.quality for a in r.attempts],
                        "captured": r.kept is not None,
                        "quality": next(
                            (a.quality for a in r.attempts if a.capture_id == r.kept), None
                        ),
                        "exception": None if r.exception is None else str(r.exception),
                        "exception_fr": None if r.exception is None else EXCEPTIONS_FR[r.exception],
                    }
                    for r in plan.fingers.values()
                ],
            }
        return view

    def get(self, session_id: str, agent_id: str) -> dict[str, Any]:
        row = self._store.session(session_id)
        if row is None or row.agent_id != agent_id:
            raise SessionNotFoundError("session_not_found", "Dossier introuvable.")
        return self.view(row)

    def open_sessions(self, agent_id: str) -> list[dict[str, Any]]:
        return [
            self.view(r)
            for r in self._store.sessions(steps=tuple(OPEN_STEPS))
            if r.agent_id == agent_id
        ]

    def preview(self, session_id: str) -> bytes | None:
        return self._previews.get(session_id)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate()`` holds, re-checked after each change (wrap in a timeout)."""
        async with self.changed:
            await self.changed.wait_for(predicate)

    # -- step 0: a new session -------------------------------------------------------------
    async def start(self, agent_id: str) -> dict[str, Any]:
        """A new session; refused at once when the outbox could not take its enrolment."""
        await asyncio.to_thread(self.sink.check_admission)
        now = self._now().isoformat()
        row = SessionRow(uuid.uuid4().hex, agent_id, str(Step.PREREQUEST), now, now, {})
        self._store.save_session(row)
        self._audit.append("session_started", actor=agent_id, subject=row.id)
        return self.view(row)

    async def abort(self, session_id: str, agent_id: str) -> dict[str, Any]:
        async with self._session(session_id, agent_id) as row:
            self._require(row, *OPEN_STEPS)
            if row.data.get("sealing"):
                raise WrongStepError(
                    "sealing", "Le dossier est déjà scellé : il ne peut plus être abandonné."
                )
            new = self._save(row, Step.ABORTED, {})
            self._store.delete_captures(session_id)
            self._previews.pop(session_id, None)
            self._audit.append("session_aborted", actor=agent_id, subject=session_id)
        await self._notify()
        return self.view(new)

    # -- step 2: the pre-request -----------------------------------------------------------
    def _number_from_input(self, *, number: str | None, qr: str | None) -> str:
        if qr is not None:
            try:
                return verify_prerequest_qr(qr, central_keys=self._qr_keys)
            except QrMalformedError as exc:
                raise PrerequestRefusedError(
                    "qr_malformed", "Ce QR code n'est pas celui d'une pré-demande."
                ) from exc
            except QrForgedError as exc:
                raise PrerequestRefusedError(
                    "qr_forged",
                    "QR code falsifié ou altéré : il n'a pas été émis par le service central. "
                    "Saisissez le numéro de pré-demande et vérifiez-le.",
                ) from exc
        if number is None:
            raise PrerequestRefusedError(
                "prerequest_missing", "Saisissez ou scannez un numéro de pré-demande."
            )
        try:
            return parse_prerequest_number(number)
        except IdentifierError as exc:
            raise PrerequestRefusedError(
                "prerequest_malformed",
                "Le numéro de pré-demande doit comporter 10 caractères (lettres et chiffres).",
            ) from exc

    async def recall(
        self,
        session_id: str,
        agent_id: str,
        *,
        number: str | None = None,
        qr: str | None = None,
        offline_details: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Step 2: recall the pre-request by typed number or scanned QR payload.

        While central is unreachable the agent may go on with ``offline_details``
        (``surname``, ``given_names``, ``birth_date`` YYYY-MM-DD, ``reason``) read from the
        citizen's pre-request recap; central checks the pre-request again at ingest.
        """
        async with self._session(session_id, agent_id) as row:
            self._require(row, Step.PREREQUEST, Step.DOCUMENTS)
            parsed = self._number_from_input(number=number, qr=qr)
            try:
                info = await self.central.lookup_prerequest(parsed)
            except CentralUnavailableError:
                if offline_details is None:
                    raise
                info = _offline_prerequest(parsed, offline_details)
            if info.status not in {"validated", "declared"}:
                raise PrerequestRefusedError(
                    f"prerequest_{info.status}", "Cette pré-demande ne peut pas être utilisée."
                )
            today = self._now().date()
            if info.birth_date > today:
                raise PrerequestRefusedError("birth_date_future", "Date de naissance invalide.")
            under_age = age_on(info.birth_date, today) < self._policy.min_age_years
            data = {
                "prerequest": info.to_json(),
                "via_qr": qr is not None,
                "documents": {},
                "stamp": None,
                "fingers": FingerPlan.new(
                    attempts_per_finger=self._policy.attempts_per_finger,
                    min_quality=self._policy.min_quality,
                    under_age=under_age,
                ).to_json(),
            }
            self._store.delete_captures(session_id)
            new = self._save(row, Step.DOCUMENTS, data)
            self._audit.append(
                "prerequest_recalled",
                actor=agent_id,
                subject=session_id,
                details={
                    "online": info.verified_online,
                    "via_qr": qr is not None,
                    "under_age": under_age,
                },
            )
        return self.view(new)

    async def recall_from_scanner(
        self,
        session_id: str,
        agent_id: str,
        *,
        wait: float,
        offline_details: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if self.scanner is None:
            raise StationError("no_scanner", "Aucun lecteur de QR code n'est configuré.")
        payload = await self.scanner.next_payload(wait=wait)
        return await self.recall(session_id, agent_id, qr=payload, offline_details=offline_details)

    # -- step 3: documents -----------------------------------------------------------------
    async def documents(
        self,
        session_id: str,
        agent_id: str,
        *,
        checked: list[str],
        stamp: str | None = None,
        erase_images: bool = False,
    ) -> dict[str, Any]:
        """``erase_images``: the applicant asks for the full fingerprint images to be erased
        90 days after the card is issued or refused (décret 2021-279, art. 4-3 I bis)."""
        async with self._session(session_id, agent_id) as row:
            self._require(row, Step.DOCUMENTS)
            missing = [d for d in REQUIRED_DOCUMENTS if d not in checked]
            unknown = [d for d in checked if d not in DOCUMENTS_FR]
            if unknown:
                raise DocumentsIncompleteError(
                    "unknown_document", "Pièce inconnue : " + ", ".join(unknown)
                )
            if missing:
                raise DocumentsIncompleteError(
                    "documents_missing",
                    "Pièces manquantes : " + ", ".join(DOCUMENTS_FR[d] for d in missing) + ".",
                    missing=missing,
                )
            data = dict(row.data)
            reason = data["prerequest"]["reason"]
            stamp_number: str | None = None
            stamp_checked = False
            if reason in STAMP_REASONS:
                if not stamp:
                    raise StampRefusedError(
                        "stamp_required",
                        "Un timbre fiscal est obligatoire pour une demande après perte ou vol.",
                    )
                try:
                    stamp_number = parse_stamp_number(stamp)
                except IdentifierError as exc:
                    raise StampRefusedError(
                        "stamp_malformed", "Le numéro de timbre fiscal doit comporter 16 chiffres."
                    ) from exc
                try:
                    await self.central.check_stamp(stamp_number)
                    stamp_checked = True
                except CentralUnavailableError:
                    # Offline: central checks and consumes the stamp at ingest.
                    stamp_checked = False
            data["documents"] = dict.fromkeys(checked, True)
            data["stamp"] = stamp_number
            data["stamp_checked"] = stamp_checked
            data["erase_images"] = bool(erase_images)
            plan = FingerPlan.from_json(data["fingers"])
            new = self._save(row, Step.SUMMARY if plan.complete else Step.FINGERS, data)
            self._audit.append(
                "documents_checked",
                actor=agent_id,
                subject=session_id,
                details={
                    "stamp": stamp_number is not None,
                    "stamp_checked": stamp_checked,
                    "erase_images": bool(erase_images),
                },
            )
        return self.view(new)

    # -- step 4: fingerprints --------------------------------------------------------------
    async def capture(self, session_id: str, agent_id: str) -> dict[str, Any]:
        """Capture the current finger once; returns the session view with ``last_capture``."""
        if self.sensor is None:
            raise StationError("no_sensor", "Aucun capteur d'empreintes n'est configuré.")
        async with self._session(session_id, agent_id) as row:
            self._require(row, Step.FINGERS)
            data = dict(row.data)
            plan = FingerPlan.from_json(data["fingers"])
            current = plan.current()
            assert current is not None  # FINGERS means the plan is not complete
            _, position = current
            image = await self.sensor.capture(finger_wait=self._capture_timeout)
            analysis = await asyncio.to_thread(self._bio.analyse, image, position=position)
            record = plan.fingers[position]
            earlier = [(a.capture_id, self._load_capture(a.capture_id)) for a in record.attempts]
            others = [
                self._load_capture(r.kept)
                for r in plan.other_captured(position)
                if r.kept is not None
            ]
            matches, same_as_other, best_other = await asyncio.to_thread(
                self._compare, analysis.template, earlier, others
            )
            capture_id = uuid.uuid4().hex
            self._store.save_capture(
                capture_id,
                session_id=session_id,
                created_at=self._now().isoformat(),
                payload=encode_capture(
                    StoredCapture(
                        position=position,
                        quality=analysis.quality,
                        measures=analysis.measures,
                        template=analysis.template,
                        iso_template=analysis.iso_template,
                        image_png=analysis.image_png,
                    )
                ),
            )
            outcome = plan.add_attempt(
                position,
                Attempt(capture_id, analysis.quality, matches),
                same_as_other=same_as_other,
            )
            self._store.delete_captures(session_id, keep=plan.capture_ids())
            self._previews[session_id] = analysis.preview_png
            data["fingers"] = plan.to_json()
            data["last_capture"] = {
                "position": int(position),
                "name_fr": FINGER_NAMES_FR[position],
                "quality": analysis.quality,
                "measures": {k: round(float(v), 3) for k, v in analysis.measures.items()},
                "advice": list(analysis.advice),
                "advice_fr": list(analysis.advice_fr),
                "outcome": str(outcome),
                "message_fr": _outcome_message(outcome, len(record.attempts)),
                "matched_earlier": len(matches),
                "other_finger_score": best_other,
                "at": self._now().isoformat(),
            }
            new = self._save(row, Step.SUMMARY if plan.complete else Step.FINGERS, data)
            self._audit.append(
                "finger_capture",
                actor=agent_id,
                subject=session_id,
                details={
                    "position": int(position),
                    "quality": analysis.quality,
                    "outcome": str(outcome),
                },
            )
        await self._notify()
        return self.view(new)

    def _compare(
        self,
        template: FingerTemplate,
        earlier: list[tuple[str, StoredCapture]],
        others: list[StoredCapture],
    ) -> tuple[list[str], bool, float | None]:
        matches = [cid for cid, c in earlier if self._bio.match(template, c.template)[0]]
        same = False
        best: float | None = None
        for other in others:
            ok, score = self._bio.match(template, other.template)
            best = score if best is None else max(best, score)
            same = same or ok
        return matches, same, best

    async def declare_exception(
        self, session_id: str, agent_id: str, *, code: str
    ) -> dict[str, Any]:
        try:
            exception = FingerException(code)
        except ValueError:
            exception = None
        if exception not in AGENT_EXCEPTIONS:
            raise StationError(
                "bad_exception",
                "Motif d'exception inconnu.",
                allowed=[str(c) for c in AGENT_EXCEPTIONS],
            )
        assert exception is not None
        async with self._session(session_id, agent_id) as row:
            self._require(row, Step.FINGERS)
            data = dict(row.data)
            plan = FingerPlan.from_json(data["fingers"])
            current = plan.current()
            assert current is not None
            plan.declare_exception(current[1], exception)
            self._store.delete_captures(
                session_id,
                keep=plan.capture_ids() - {a.capture_id for a in plan.fingers[current[1]].attempts},
            )
            data["fingers"] = plan.to_json()
            new = self._save(row, Step.SUMMARY if plan.complete else Step.FINGERS, data)
            self._audit.append(
                "finger_exception",
                actor=agent_id,
                subject=session_id,
                details={"position": int(current[1]), "code": str(exception)},
            )
        return self.view(new)

    async def redo_fingers(self, session_id: str, agent_id: str) -> dict[str, Any]:
        async with self._session(session_id, agent_id) as row:
            self._require(row, Step.FINGERS, Step.SUMMARY)
            if row.data.get("sealing"):
                raise WrongStepError("sealing", "Le dossier est déjà scellé.")
            data = dict(row.data)
            plan = FingerPlan.from_json(data["fingers"])
            plan.redo()
            data["fingers"] = plan.to_json()
            data.pop("last_capture", None)
            self._store.delete_captures(session_id)
            new = self._save(row, Step.SUMMARY if plan.complete else Step.FINGERS, data)
        return self.view(new)

    # -- step 5 and 6: confirm, seal, queue, receipt ---------------------------------------
    async def confirm(self, session_id: str, agent_id: str) -> dict[str, Any]:
        async with self._session(session_id, agent_id) as row:
            self._require(row, Step.SUMMARY)
            new = await self._seal(row)
        await self._notify()
        return self.view(new)

    async def _seal(self, row: SessionRow) -> SessionRow:
        data = dict(row.data)
        now = self._now()
        enrolment_id = data.get("enrolment_id") or new_enrolment_id()
        data["enrolment_id"] = enrolment_id
        number = data.get("request_number")
        if number is None:
            number = self._store.take_number(enrolment_id=enrolment_id, now=now.isoformat())
            if number is None and self.central.online:
                await self.top_up_numbers(force=True)
                number = self._store.take_number(enrolment_id=enrolment_id, now=now.isoformat())
            if number is None:
                raise NoRequestNumberError(
                    "no_request_number",
                    "Plus aucun numéro de demande disponible hors connexion : rétablissez la "
                    "connexion au service central puis validez à nouveau.",
                )
            data["request_number"] = number
            data["offline"] = not self.central.online
            data["completed_at"] = now.isoformat()
        data["sealing"] = True
        row = self._save(row, Step.SUMMARY, data)
        draft = self._draft(row, data)
        await asyncio.to_thread(self.sink.submit, draft)
        prerequest = PrerequestInfo.from_json(data["prerequest"])
        path = await asyncio.to_thread(
            write_receipt,
            ReceiptData(
                mairie=self.mairie,
                mairie_address=self.mairie_address,
                device_id=self.device_id,
                request_number=number,
                prerequest_number=prerequest.number,
                holder_name=f"{prerequest.surname.upper()} {prerequest.given_names}".strip(),
                created_at=datetime.fromisoformat(data["completed_at"]),
                offline=bool(data.get("offline")),
            ),
            directory=self._receipts_dir,
        )
        self._store.add_receipt(
            request_number=number,
            enrolment_id=enrolment_id,
            session_id=row.id,
            prerequest_number=prerequest.number,
            path=str(path),
            created_at=data["completed_at"],
        )
        data["receipt"] = str(path)
        data.pop("sealing", None)
        data.pop("last_capture", None)
        data["fingers"] = None
        new = self._save(row, Step.DONE, data)
        self._store.delete_captures(row.id)
        self._previews.pop(row.id, None)
        self._audit.append(
            "enrolment_queued",
            actor=row.agent_id,
            subject=row.id,
            details={"enrolment_id": enrolment_id, "offline": bool(data.get("offline"))},
        )
        log.info("enrolment %s queued", enrolment_id)
        return new

    def _draft(self, row: SessionRow, data: dict[str, Any]) -> EnrolmentDraft:
        plan = FingerPlan.from_json(data["fingers"])
        fingers = []
        for record in plan.captured():
            assert record.kept is not None
            c = self._load_capture(record.kept)
            fingers.append(
                FingerData(
                    position=record.position,
                    iso_template=c.iso_template,
                    image_png=c.image_png,
                    quality=c.quality,
                    measures=c.measures,
                    attempts=len(record.attempts),
                )
            )
        exceptions = tuple(
            (r.position, str(r.exception), len(r.attempts))
            for r in plan.exceptions()
            if r.exception is not None
        )
        docs = tuple(sorted(d for d, ok in data.get("documents", {}).items() if ok))
        return EnrolmentDraft(
            enrolment_id=data["enrolment_id"],
            prerequest_number=data["prerequest"]["number"],
            device_id=self.device_id,
            agent_id=row.agent_id,
            started_at=datetime.fromisoformat(row.created_at),
            completed_at=datetime.fromisoformat(data["completed_at"]),
            reason=data["prerequest"]["reason"],
            fingers=tuple(fingers),
            exceptions=exceptions,
            documents=docs,
            stamp_number=data.get("stamp"),
            request_number=data["request_number"],
            erase_images=bool(data.get("erase_images", False)),
        )

    # -- restart ----------------------------------------------------------------------------
    async def resume(self) -> dict[str, int]:
        """After a daemon start: finish interrupted sealing, abort sessions too old."""
        resumed = aborted = finished = 0
        limit = self._now() - timedelta(hours=self._policy.session_resume_hours)
        for row in self._store.sessions(steps=tuple(OPEN_STEPS)):
            if row.data.get("sealing"):
                try:
                    async with self._session(row.id, row.agent_id) as fresh:
                        await self._seal(fresh)
                except StationError as exc:
                    # e.g. the outbox is full: the agent confirms again from the console.
                    log.warning("session %s: sealing not finished at start: %s", row.id, exc.code)
                    resumed += 1
                else:
                    finished += 1
            elif datetime.fromisoformat(row.updated_at) < limit:
                self._save(row, Step.ABORTED, {})
                self._store.delete_captures(row.id)
                self._audit.append(
                    "session_aborted",
                    actor="daemon",
                    subject=row.id,
                    details={"why": "expired_at_restart"},
                )
                aborted += 1
            else:
                resumed += 1
        purged = self.purge()
        return {"resumed": resumed, "aborted": aborted, "finished": finished, "purged": purged}

    def purge(self) -> int:
        """Forget finished sessions and receipt copies older than ``policy.retention_days``
        (personal data is kept on the station no longer than needed)."""
        cutoff = (self._now() - timedelta(days=self._policy.retention_days)).isoformat()
        gone = self._store.purge_sessions(
            steps=(str(Step.DONE), str(Step.ABORTED)), updated_before=cutoff
        )
        for path in self._store.purge_receipts(created_before=cutoff):
            Path(path).unlink(missing_ok=True)
        return len(gone)

    # -- request numbers ---------------------------------------------------------------------
    def free_numbers(self) -> int:
        return self._store.free_numbers(now=self._now().isoformat())

    async def top_up_numbers(self, *, force: bool = False) -> int:
        """Lease more request numbers from central when the pool runs low; returns added."""
        async with self._lease_lock:
            if not force and self.free_numbers() >= self._policy.lease_low_water:
                return 0
            lease_id, numbers, expires = await self.central.lease_numbers(self._policy.lease_count)
            self._store.add_numbers(
                numbers,
                lease_id=lease_id,
                leased_at=self._now().isoformat(),
                expires_at=None if expires is None else expires.isoformat(),
            )
            self._audit.append(
                "numbers_leased", actor="daemon", subject=lease_id, details={"count": len(numbers)}
            )
        await self._notify()
        return len(numbers)

    # -- step 7: card handover -----------------------------------------------------------------
    async def handover(self, agent_id: str, *, request_number: str) -> dict[str, Any]:
        """Identity check at card handover: one finger, 1:1 against the enrolment's templates."""
        from dr_contracts.identifiers import parse_request_number

        if self.sensor is None:
            raise StationError("no_sensor", "Aucun capteur d'empreintes n'est configuré.")
        try:
            number = parse_request_number(request_number)
        except IdentifierError as exc:
            raise StationError(
                "number_invalid", "Numéro de demande invalide : vérifiez la saisie."
            ) from exc
        if self._store.handover(number) is not None:
            raise StationError("already_handed_over", "Ce titre a déjà été remis.")
        templates = await self.central.handover_templates(number)
        image = await self.sensor.capture(finger_wait=self._capture_timeout)
        analysis = await asyncio.to_thread(
            self._bio.analyse, image, position=FingerPosition.UNKNOWN
        )
        scores = [self._bio.match(analysis.template, t) for t in templates]
        matched = any(ok for ok, _ in scores)
        best = max((s for _, s in scores), default=0.0)
        self._previews["handover"] = analysis.preview_png
        self._audit.append(
            "handover_check",
            actor=agent_id,
            subject=number,
            details={"matched": matched, "quality": analysis.quality},
        )
        if not matched:
            return {
                "request_number": number,
                "matched": False,
                "score": best,
                "quality": analysis.quality,
                "message_fr": "L'empreinte ne correspond pas au dossier : titre non remis. "
                "Recommencez ou procédez à une vérification approfondie.",
            }
        await self.central.record_handover(number, agent_id=agent_id)
        self._store.add_handover(
            request_number=number, agent_id=agent_id, at=self._now().isoformat(), score=best
        )
        return {
            "request_number": number,
            "matched": True,
            "score": best,
            "quality": analysis.quality,
            "message_fr": "Identité vérifiée : remise du titre enregistrée.",
        }

    def sessions_summary(self) -> Iterator[dict[str, Any]]:
        for row in self._store.sessions():
            yield {
                "id": row.id,
                "step": row.step,
                "agent_id": row.agent_id,
                "updated_at": row.updated_at,
            }


def _offline_prerequest(number: str, details: dict[str, str]) -> PrerequestInfo:
    try:
        birth = date.fromisoformat(details["birth_date"])
        reason = details["reason"]
        surname = details["surname"].strip()
        given = details.get("given_names", "").strip()
    except (KeyError, ValueError) as exc:
        raise PrerequestRefusedError(
            "offline_details_invalid",
            "Hors connexion : indiquez nom, prénoms, date de naissance (AAAA-MM-JJ) et motif.",
        ) from exc
    if reason not in REASONS_FR or not surname:
        raise PrerequestRefusedError(
            "offline_details_invalid", "Hors connexion : motif ou nom invalide."
        )
    return PrerequestInfo(
        number=number,
        surname=surname,
        given_names=given,
        birth_date=birth,
        reason=reason,
        verified_online=False,
    )
