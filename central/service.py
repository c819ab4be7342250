"""The central service API: pre-requests, tax stamps, devices, numbers, ingest, status.

:class:`CentralService` is synchronous and thread-safe: every call runs in its own database
transaction on its own pooled connection, so the HTTP server, the MQTT side and the CLI call
it from any thread (asyncio code uses ``asyncio.to_thread``). Several processes may share one
PostgreSQL database: every "check, then change" is one conditional UPDATE or a unique
constraint, so when two devices race for one pre-request or one stamp exactly one wins.

Calls made on behalf of a device take ``device_id`` as authenticated by the transport (TLS
client certificate / MQTT topic) and answer a :class:`~dr_contracts.rejections.Rejection`
instead of raising when the request is refused, so the caller can send it back as is.
Operator calls raise (``KeyError`` for an unknown id, ``ValueError`` subclasses otherwise).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final, NamedTuple, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central import audit_hooks as audit_events
from central.audit_hooks import CentralAudit
from central.config import CentralConfig
from central.keyring import CentralKeyring
from central.models import (
    ALLOWED_AMOUNTS_CENTS,
    AMOUNT_GUYANE_CENTS,
    GUYANE_DEPARTMENT,
    NEXT_STAGES,
    Device,
    DeviceState,
    LeaseGrant,
    PreRequest,
    PreRequestForm,
    PreRequestStatus,
    RequestStatus,
    Stage,
    StageEvent,
    StageTransitionError,
    Stamp,
    StampState,
)
from central.rules import check_content, check_fingers
from central.schema import LEASE_COUNTER_BASE, create_schema
from central.store import ConflictError, Row, Store, Transaction
from dr_contracts import envelope as env
from dr_contracts.acks import Ack
from dr_contracts.audit import AuditEvent
from dr_contracts.enrolment import EnrolmentRecord, RequestReason
from dr_contracts.handover import HandoverTemplate, seal_handover
from dr_contracts.identifiers import (
    ALPHANUMERIC,
    DeviceId,
    IdentifierError,
    MistypedIdentifierError,
    NumberLease,
    counter_of_request_number,
    parse_prerequest_number,
    parse_request_number,
    parse_stamp_number,
    request_number_for,
    sign_lease,
)
from dr_contracts.keys import CentralRecipientKey, ed25519_public_bytes
from dr_contracts.qr import encode_prerequest_qr
from dr_contracts.rejections import RejectedError, Rejection, RejectionCode

log = logging.getLogger("central.service")

PREREQUEST_VALIDITY: Final = timedelta(days=365)
MAX_INGEST_ATTEMPTS: Final = 3

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _ts(when: datetime) -> str:
    """Fixed-width ISO-8601 UTC text: text order is time order (see central.schema)."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _dt_opt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _add_months(when: datetime, months: int) -> datetime:
    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    for day in range(when.day, 27, -1):  # 31 Jan + 1 month -> 28/29 Feb
        try:
            return when.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return when.replace(year=year, month=month, day=min(when.day, 28))


@dataclass(frozen=True, slots=True)
class _Opened:
    """An enrolment verified and opened, waiting for its transaction."""

    index: int
    record: EnrolmentRecord
    device: Device
    digest: bytes
    sealed_at_rest: tuple[str, bytes, bytes] = field(repr=False)  # key id, nonce, ciphertext


class _Changed(Protocol):
    """What an UPDATE leaves to check: how many rows it changed."""

    @property
    def rowcount(self) -> int: ...


class _UnsettledError(Exception):
    """Optimistic recording met what only a savepoint per enrolment can undo."""


class _PreRequestFacts(NamedTuple):
    number: str
    reason: RequestReason
    birth_date: date


class DeviceExistsError(ValueError):
    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id} is already registered (use replace)")
        self.device_id = device_id


class CentralService:
    """See the module docstring. Open with :meth:`open` or build from a store and keys."""

    def __init__(
        self,
        store: Store,
        keys: CentralKeyring,
        *,
        clock: Clock = utc_now,
        lease_size_max: int = 100,
        lease_validity: timedelta = timedelta(days=30),
        max_open_leases: int = 4,
        max_envelope_bytes: int = env.MAX_ENVELOPE_BYTES,
        audit: CentralAudit | None = None,
    ) -> None:
        self.store = store
        self.audit = audit  # privacy: events touching personal data (central.audit_hooks)
        self.keys = keys
        self._clock = clock
        self._lease_size_max = lease_size_max
        self._lease_validity = lease_validity
        self._max_open_leases = max_open_leases
        self._max_envelope_bytes = max_envelope_bytes
        self._revocation_listeners: list[Callable[[str], None]] = []
        self._listeners_lock = threading.Lock()
        create_schema(store)

    @classmethod
    def open(cls, *, database: str, key_dir: Path, clock: Clock = utc_now) -> CentralService:
        """Open the database (created if needed) and load the keys of ``key_dir``."""
        return cls(Store.open(database), CentralKeyring.load(key_dir), clock=clock)

    @classmethod
    def from_config(cls, config: CentralConfig, *, clock: Clock = utc_now) -> CentralService:
        """Open the service described by a :class:`central.config.CentralConfig`."""
        keys = CentralKeyring.load(config.key_dir)
        audit = None
        if config.audit_path is not None:
            audit = CentralAudit.open(
                config.audit_path,
                signer=keys.signing.private_key,
                sign_every=config.audit_sign_every,
            )
        return cls(
            Store.open(config.database),
            keys,
            audit=audit,
            clock=clock,
            lease_size_max=config.lease_max_count,
            lease_validity=timedelta(days=config.lease_validity_days),
            max_open_leases=config.lease_max_open,
            max_envelope_bytes=config.max_envelope_bytes,
        )

    def close(self) -> None:
        self.store.close()
        if self.audit is not None:
            self.audit.close()

    def now(self) -> datetime:
        """The service's clock (a fake one in tests)."""
        return self._clock()

    def audit_event(
        self,
        event: str,
        *,
        actor: str,
        subject: str = "",
        details: dict[str, str | int | bool | None] | None = None,
    ) -> None:
        """Record an event in the audit trail, if there is one (never raises: an audit
        failure is logged, the caller's work, often already committed, stands)."""
        if self.audit is None:
            return
        try:
            self.audit.record(event, actor=actor, subject=subject, details=details)
        except Exception:
            log.exception("audit append failed", extra={"event": event})

    def __enter__(self) -> CentralService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- keys for the edge -----------------------------------------------------------------

    @property
    def signing_public_key(self) -> Ed25519PublicKey:
        return self.keys.signing.public_key

    @property
    def recipient_public_key(self) -> CentralRecipientKey:
        return self.keys.recipient_public

    # --- pre-requests ----------------------------------------------------------------------

    def create_prerequest(
        self,
        form: PreRequestForm,
        *,
        number: str | None = None,
        status: PreRequestStatus = PreRequestStatus.VALIDATED,
    ) -> PreRequest:
        """Record a pre-request (the national online service's side); returns it.

        Without ``number`` a random unused one is drawn.
        """
        if status not in (PreRequestStatus.VALIDATED, PreRequestStatus.DECLARED):
            raise ValueError("a new pre-request is validated or declared")
        now = self._clock()
        for _ in range(8):
            candidate = (
                parse_prerequest_number(number)
                if number is not None
                else "".join(secrets.choice(ALPHANUMERIC) for _ in range(10))
            )
            pre = PreRequest(
                number=candidate,
                status=status,
                form=form,
                created_at=now,
                expires_at=now + PREREQUEST_VALIDITY,
            )
            try:
                with self.store.transaction() as tx:
                    tx.execute(
                        "INSERT INTO prerequests (number, status, reason, birth_date, fields,"
                        " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            pre.number,
                            pre.status.value,
                            form.reason.value,
                            form.birth_date.isoformat(),
                            json.dumps(form.to_dict(), ensure_ascii=False, sort_keys=True),
                            _ts(pre.created_at),
                            _ts(pre.expires_at),
                        ),
                    )
            except ConflictError:
                if number is not None:
                    raise ValueError(f"pre-request {candidate} already exists") from None
                continue
            return pre
        raise RuntimeError("could not draw an unused pre-request number")

    def get_prerequest(self, number: str) -> PreRequest | None:
        """Operator view of a pre-request (``None`` if unknown); expiry is applied."""
        number = parse_prerequest_number(number)
        with self.store.transaction(write=False) as tx:
            pre = self._load_prerequest(tx, number)
        self.audit_event(
            audit_events.PREREQUEST_VIEWED,
            actor=audit_events.OPERATOR,
            subject=number,
            details={"found": pre is not None},
        )
        return pre

    def prerequest_qr(self, number: str) -> str:
        """The signed QR payload printed on the pre-request's recap."""
        return encode_prerequest_qr(number, signing_key=self.keys.signing.private_key)

    def lookup_prerequest(
        self, number: str, *, device_id: str, audit: bool = True
    ) -> PreRequest | Rejection:
        """For a DR: the pre-request, if it can be used for an enrolment now.

        ``audit=False``: the caller records the lookup itself with :meth:`audit_lookup`
        (central's MQTT side does so once the reply has left, so that the audit append's
        fsync is not part of the device's round trip).
        """
        try:
            with self.store.transaction(write=False) as tx:
                self._active_device(tx, device_id)
                pre = self._usable_prerequest(tx, number)
        except RejectedError as exc:
            return exc.rejection
        if audit:
            self.audit_lookup(pre.number, device_id=device_id)
        return pre

    def audit_lookup(self, number: str, *, device_id: str) -> None:
        """Record that ``device_id`` was given pre-request ``number`` (audit trail)."""
        self.audit_event(audit_events.PREREQUEST_LOOKUP, actor=device_id, subject=number)

    def _load_prerequest(self, tx: Transaction, number: str) -> PreRequest | None:
        row = tx.one(
            "SELECT number, status, fields, created_at, expires_at, consumed_at, request_number"
            " FROM prerequests WHERE number = ?",
            (number,),
        )
        if row is None:
            return None
        status = PreRequestStatus(row[1])
        expires_at = _dt(row[4])
        if status in (PreRequestStatus.VALIDATED, PreRequestStatus.DECLARED) and (
            self._clock() >= expires_at
        ):
            status = PreRequestStatus.EXPIRED
        return PreRequest(
            number=row[0],
            status=status,
            form=PreRequestForm.from_dict(json.loads(row[2])),
            created_at=_dt(row[3]),
            expires_at=expires_at,
            consumed_at=_dt_opt(row[5]),
            request_number=row[6],
        )

    def _usable_prerequest(self, tx: Transaction, number: str) -> PreRequest:
        try:
            number = parse_prerequest_number(number)
        except IdentifierError as exc:
            raise RejectedError.of(RejectionCode.PREREQUEST_MALFORMED, exc.reason) from None
        pre = self._load_prerequest(tx, number)
        if pre is None:
            raise RejectedError.of(RejectionCode.PREREQUEST_UNKNOWN)
        if pre.status is PreRequestStatus.CONSUMED:
            raise RejectedError.of(RejectionCode.PREREQUEST_CONSUMED)
        if pre.status is PreRequestStatus.EXPIRED:
            raise RejectedError.of(RejectionCode.PREREQUEST_EXPIRED)
        return pre

    def _prerequest_facts(self, number: str, row: Sequence[object]) -> _PreRequestFacts:
        """What ingest needs of a usable pre-request, from ``(status, expires_at, reason,
        birth_date)`` (all None when unknown); no form decoding: ingest is hot."""
        status, expires_at, reason, birth_date = row
        if status is None:
            raise RejectedError.of(RejectionCode.PREREQUEST_UNKNOWN)
        if status == PreRequestStatus.CONSUMED.value:
            raise RejectedError.of(RejectionCode.PREREQUEST_CONSUMED)
        if status == PreRequestStatus.EXPIRED.value or self._clock() >= _dt(str(expires_at)):
            raise RejectedError.of(RejectionCode.PREREQUEST_EXPIRED)
        return _PreRequestFacts(
            number, RequestReason(str(reason)), date.fromisoformat(str(birth_date))
        )

    # --- tax stamps ------------------------------------------------------------------------

    def create_stamp(self, *, amount_cents: int = 2500, number: str | None = None) -> Stamp:
        """Record a tax stamp (the tax authority's side): unused, valid 12 months."""
        if amount_cents not in ALLOWED_AMOUNTS_CENTS:
            raise ValueError(f"amount {amount_cents} cents: 2500 (25 EUR) or 1250 (Guyane)")
        now = self._clock()
        for _ in range(8):
            candidate = (
                parse_stamp_number(number)
                if number is not None
                else "".join(secrets.choice("0123456789") for _ in range(16))
            )
            stamp = Stamp(
                number=candidate,
                amount_cents=amount_cents,
                state=StampState.UNUSED,
                created_at=now,
                expires_at=_add_months(now, 12),
            )
            try:
                with self.store.transaction() as tx:
                    tx.execute(
                        "INSERT INTO stamps (number, amount_cents, state, created_at, expires_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (
                            candidate,
                            amount_cents,
                            stamp.state.value,
                            _ts(now),
                            _ts(stamp.expires_at),
                        ),
                    )
            except ConflictError:
                if number is not None:
                    raise ValueError(f"stamp {candidate} already exists") from None
                continue
            return stamp
        raise RuntimeError("could not draw an unused stamp number")

    def cancel_stamp(self, number: str) -> Stamp:
        """Cancel an unused stamp (refund); a used stamp cannot be cancelled."""
        number = parse_stamp_number(number)
        with self.store.transaction() as tx:
            changed = tx.execute(
                "UPDATE stamps SET state = 'cancelled' WHERE number = ? AND state = 'unused'",
                (number,),
            ).rowcount
            stamp = self._load_stamp(tx, number)
        if stamp is None:
            raise KeyError(number)
        if not changed and stamp.state is not StampState.CANCELLED:
            raise ValueError(f"stamp {number} is {stamp.state}, it cannot be cancelled")
        return stamp

    def get_stamp(self, number: str) -> Stamp | None:
        number = parse_stamp_number(number)
        with self.store.transaction(write=False) as tx:
            return self._load_stamp(tx, number)

    def check_stamp(self, number: str, *, device_id: str) -> Stamp | Rejection:
        """For a DR: the stamp, if it can pay for an enrolment at this device's mairie now."""
        try:
            with self.store.transaction(write=False) as tx:
                device = self._active_device(tx, device_id)
                return self._usable_stamp(tx, number, commune_code=device.commune_code)
        except RejectedError as exc:
            return exc.rejection

    def _load_stamp(self, tx: Transaction, number: str) -> Stamp | None:
        row = tx.one(
            "SELECT number, amount_cents, state, created_at, expires_at, used_at"
            " FROM stamps WHERE number = ?",
            (number,),
        )
        if row is None:
            return None
        state = StampState(row[2])
        expires_at = _dt(row[4])
        if state is StampState.UNUSED and self._clock() >= expires_at:
            state = StampState.EXPIRED
        return Stamp(
            number=row[0],
            amount_cents=int(row[1]),
            state=state,
            created_at=_dt(row[3]),
            expires_at=expires_at,
            used_at=_dt_opt(row[5]),
        )

    def _usable_stamp(self, tx: Transaction, number: str, *, commune_code: str) -> Stamp:
        try:
            number = parse_stamp_number(number)
        except IdentifierError as exc:
            raise RejectedError.of(RejectionCode.STAMP_MALFORMED, exc.reason) from None
        stamp = self._load_stamp(tx, number)
        if stamp is None:
            raise RejectedError.of(RejectionCode.STAMP_UNKNOWN)
        code = {
            StampState.USED: RejectionCode.STAMP_USED,
            StampState.CANCELLED: RejectionCode.STAMP_CANCELLED,
            StampState.EXPIRED: RejectionCode.STAMP_EXPIRED,
        }.get(stamp.state)
        if code is not None:
            raise RejectedError.of(code)
        guyane = commune_code.startswith(GUYANE_DEPARTMENT)
        if (stamp.amount_cents == AMOUNT_GUYANE_CENTS) != guyane:
            raise RejectedError.of(
                RejectionCode.STAMP_WRONG_AMOUNT,
                f"{stamp.amount_cents} cents at commune {commune_code}",
            )
        return stamp

    # --- devices ---------------------------------------------------------------------------

    def register_device(
        self,
        device_id: str,
        *,
        commune_name: str,
        signing_key: Ed25519PublicKey,
        handover_key: CentralRecipientKey | None = None,
        replace: bool = False,
    ) -> Device:
        """Add a device to the registry (active). ``replace`` re-provisions an existing id."""
        parsed = DeviceId.parse(device_id)
        device_id = str(parsed)
        now = self._clock()
        values = (
            parsed.commune,
            commune_name,
            parsed.station,
            ed25519_public_bytes(signing_key),
            None if handover_key is None else handover_key.to_bytes(),
            DeviceState.ACTIVE.value,
            _ts(now),
        )
        with self.store.transaction() as tx:
            exists = tx.one("SELECT 1 FROM devices WHERE device_id = ?", (device_id,))
            if exists and not replace:
                raise DeviceExistsError(device_id)
            if exists:
                tx.execute(
                    "UPDATE devices SET commune_code = ?, commune_name = ?, station = ?,"
                    " signing_key = ?, handover_key = ?, state = ?, registered_at = ?,"
                    " revoked_at = NULL WHERE device_id = ?",
                    (*values, device_id),
                )
            else:
                tx.execute(
                    "INSERT INTO devices (commune_code, commune_name, station, signing_key,"
                    " handover_key, state, registered_at, device_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, device_id),
                )
            device = self._load_device(tx, device_id)
        assert device is not None
        log.info("device registered", extra={"device_id": device_id})
        return device

    def revoke_device(self, device_id: str) -> Device:
        """Revoke a device: refused at once by ingest and every RPC; listeners are told."""
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE devices SET state = 'revoked', revoked_at = ?"
                " WHERE device_id = ? AND state = 'active'",
                (_ts(self._clock()), device_id),
            )
            device = self._load_device(tx, device_id)
        if device is None:
            raise KeyError(device_id)
        log.warning("device revoked", extra={"device_id": device_id})
        with self._listeners_lock:
            listeners = list(self._revocation_listeners)
        for listener in listeners:
            try:
                listener(device_id)
            except Exception:
                log.exception("revocation listener failed", extra={"device_id": device_id})
        return device

    def add_revocation_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(device_id)`` after each revocation made through this instance.

        The link uses it to regenerate the broker ACL and disconnect the device. Revocations
        made by another process (the CLI) are seen through :meth:`devices` (state).
        """
        with self._listeners_lock:
            self._revocation_listeners.append(listener)

    def device(self, device_id: str) -> Device | None:
        with self.store.transaction(write=False) as tx:
            return self._load_device(tx, device_id)

    def devices(self) -> list[Device]:
        """The whole registry, ordered by device id."""
        with self.store.transaction(write=False) as tx:
            rows = tx.all(f"{_DEVICE_SELECT} ORDER BY device_id")
        return [_device_from_row(row) for row in rows]

    def _load_device(self, tx: Transaction, device_id: str) -> Device | None:
        row = tx.one(f"{_DEVICE_SELECT} WHERE device_id = ?", (device_id,))
        return None if row is None else _device_from_row(row)

    def _active_device(self, tx: Transaction, device_id: str) -> Device:
        device = self._load_device(tx, device_id)
        if device is None:
            raise RejectedError.of(RejectionCode.UNKNOWN_DEVICE, device_id)
        if device.state is not DeviceState.ACTIVE:
            raise RejectedError.of(RejectionCode.REVOKED_DEVICE, device_id)
        return device

    # --- request numbers -------------------------------------------------------------------

    def _allocate(self, tx: Transaction) -> int:
        """A fresh counter value for one number, from the lower half of the counter space.

        PostgreSQL: a SEQUENCE (``nextval`` takes no lock that lasts until commit, so several
        central instances ingesting at once do not queue behind each other; a rolled-back
        value is a gap, never a duplicate). SQLite serialises writers anyway: a counter row.
        """
        if self.store.dialect.name == "postgresql":
            row = tx.one("SELECT nextval('request_counter')")
        else:
            row = tx.one(
                "UPDATE counters SET value = value + 1 WHERE name = 'request' RETURNING value"
            )
        assert row is not None, "request counter missing"
        value = int(row[0]) - (0 if self.store.dialect.name == "postgresql" else 1)
        if value >= LEASE_COUNTER_BASE:
            raise RuntimeError("fresh request counter exhausted")
        return value

    def _allocate_block(self, tx: Transaction, count: int) -> int:
        """First of ``count`` consecutive counter values for a lease, from the upper half of
        the counter space (a row lock held only by the short lease transaction)."""
        row = tx.one(
            "UPDATE counters SET value = value + ? WHERE name = 'lease' RETURNING value",
            (count,),
        )
        assert row is not None, "lease counter missing"
        return int(row[0]) - count

    def issue_number(self) -> str:
        """A fresh request number, for an enrolment ingested without one (and for benches)."""
        with self.store.transaction() as tx:
            return request_number_for(self._allocate(tx))

    def lease_numbers(self, device_id: str, *, count: int) -> LeaseGrant | Rejection:
        """Lease ``count`` numbers to a device, signed, for receipts while offline."""
        if not 1 <= count <= self._lease_size_max:
            raise ValueError(f"lease count must be 1..{self._lease_size_max}, got {count}")
        now = self._clock()
        try:
            with self.store.transaction() as tx:
                self._active_device(tx, device_id)
                row = tx.one(
                    "SELECT COUNT(*) FROM leases WHERE device_id = ? AND expires_at > ?",
                    (device_id, _ts(now)),
                )
                if row is not None and int(row[0]) >= self._max_open_leases:
                    raise RejectedError.of(
                        RejectionCode.LEASE_LIMIT, f"{row[0]} open leases for {device_id}"
                    )
                lease = NumberLease(
                    lease_id=str(uuid.uuid4()),
                    device_id=device_id,
                    first=self._allocate_block(tx, count),
                    count=count,
                    issued_at=now,
                    expires_at=now + self._lease_validity,
                )
                tx.execute(
                    "INSERT INTO leases (lease_id, device_id, first_counter, count, issued_at,"
                    " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        lease.lease_id,
                        device_id,
                        lease.first,
                        count,
                        _ts(now),
                        _ts(lease.expires_at),
                    ),
                )
        except RejectedError as exc:
            return exc.rejection
        return LeaseGrant(lease=lease, signed=sign_lease(lease, self.keys.signing.private_key))

    # --- ingest ----------------------------------------------------------------------------

    def ingest(self, envelope: bytes, *, device_id: str) -> Ack | Rejection:
        """Verify, open, validate and record a sealed enrolment; answer an ack or a rejection.

        ``device_id`` is the sender as authenticated by the transport. A duplicate of an
        enrolment already recorded gets the stored acknowledgement again (same bytes, same
        number). Never raises for bad input; an internal failure is logged and answered
        with a retryable ``internal_error``.
        """
        return self.ingest_batch([(envelope, device_id)])[0]

    def ingest_batch(self, items: Sequence[tuple[bytes, str]]) -> list[Ack | Rejection]:
        """:meth:`ingest` for several ``(envelope, device_id)`` at once, in order.

        Group commit: the enrolments are recorded in one transaction (a refused one leaves
        the others intact, see :meth:`_record_batch`), so one fsync serves the whole batch.
        Answers are returned only once that transaction has committed. Use it where
        messages arrive together (an MQTT consumer draining what it has received).
        """
        received_at = self._clock()
        answers: list[Ack | Rejection | None] = [None] * len(items)
        # Every enrolment opened (the CPU-heavy part) before the write transaction starts,
        # to keep its locks short.
        pending = list(self._open_each(items, answers))
        for attempt in range(MAX_INGEST_ATTEMPTS):
            if not pending:
                break
            try:
                pending = self._record_batch(pending, answers, received_at=received_at)
            except Exception:
                log.exception("ingest transaction failed", extra={"count": len(pending)})
                if attempt == MAX_INGEST_ATTEMPTS - 1:
                    break
        for item in pending:  # still racing after the retries, or the database failed
            answers[item.index] = Rejection(RejectionCode.INTERNAL_ERROR)
        final = [a if a is not None else Rejection(RejectionCode.INTERNAL_ERROR) for a in answers]
        self._audit_ingest(
            [
                AuditEvent(
                    audit_events.INGEST,
                    actor=device_id,
                    subject=answer.request_number,
                    details={"enrolment_id": answer.enrolment_id},
                )
                if isinstance(answer, Ack)
                else AuditEvent(
                    audit_events.INGEST_REFUSED,
                    actor=device_id,
                    details={"code": answer.code.value},
                )
                for (_, device_id), answer in zip(items, final, strict=True)
            ]
        )
        return final

    def _open_each(
        self, items: Sequence[tuple[bytes, str]], answers: list[Ack | Rejection | None]
    ) -> Iterator[_Opened]:
        """Open the items one by one; a refused one gets its answer in ``answers`` and is
        not yielded."""
        devices: dict[str, Device | RejectedError] = {}
        for index, (data, device_id) in enumerate(items):
            try:
                opened = self._open(index, data, device_id, devices)
            except RejectedError as exc:
                answers[index] = self._rejected(exc, device_id)
                continue
            except Exception:
                log.exception("ingest failed", extra={"device_id": device_id})
                answers[index] = Rejection(RejectionCode.INTERNAL_ERROR)
                continue
            yield opened

    def _audit_ingest(self, events: list[AuditEvent]) -> None:
        """The batch's audit events in one append (one fsync instead of one per enrolment);
        if that fails, one by one, so that one bad event does not lose the others."""
        if self.audit is None:
            return
        try:
            self.audit.record_many(events)
        except Exception:
            log.exception("batched audit append failed, appending one by one")
            for item in events:
                try:
                    self.audit.record(
                        item.event, actor=item.actor, subject=item.subject, details=item.details
                    )
                except Exception:
                    log.exception("audit append failed", extra={"event": item.event})

    @staticmethod
    def _rejected(exc: RejectedError, device_id: str) -> Rejection:
        log.info(
            "enrolment rejected",
            extra={"device_id": device_id, "code": exc.rejection.code.value},
        )
        return exc.rejection

    def _open(
        self, index: int, data: bytes, device_id: str, devices: dict[str, Device | RejectedError]
    ) -> _Opened:
        """Check size and sender, verify the signature, open and decode (no writes)."""
        if len(data) > self._max_envelope_bytes:
            raise RejectedError.of(RejectionCode.TOO_LARGE, f"{len(data)} bytes")
        if device_id not in devices:
            try:
                with self.store.transaction(write=False) as tx:
                    devices[device_id] = self._active_device(tx, device_id)
            except RejectedError as exc:
                devices[device_id] = exc
        device = devices[device_id]
        if isinstance(device, RejectedError):
            raise device
        try:
            opened = env.open_enrolment(
                data,
                recipient_keys=self.keys.decryption_keys,
                device_public_key=device.signing_key,
                expected_device_id=device_id,
            )
        except env.EnvelopeError as exc:
            raise RejectedError.of(_envelope_rejection(exc), str(exc)) from None
        record = opened.record
        check_content(record)
        # Encrypted for storage here, outside the transaction, to keep write locks short.
        nonce, ciphertext = self.keys.storage.encrypt(
            opened.record_bytes, aad=_biometrics_aad(record.enrolment_id)
        )
        return _Opened(
            index=index,
            record=record,
            device=device,
            digest=hashlib.sha256(data).digest(),
            sealed_at_rest=(self.keys.storage.key_id, nonce, ciphertext),
        )

    def _record_batch(
        self,
        pending: list[_Opened],
        answers: list[Ack | Rejection | None],
        *,
        received_at: datetime,
    ) -> list[_Opened]:
        """One transaction for ``pending``; fills ``answers`` after the commit, returns the
        items that lost a race and must be tried again (they then see the winner's rows).

        First optimistically, without a savepoint per enrolment and without waiting for
        each conditional UPDATE (their row counts are checked together before the commit):
        fewer statements, and on PostgreSQL fewer round trips. Enrolments of the batch see
        each other's writes, so two on one pre-request or stamp are told apart by reading.
        If it meets anything only a savepoint could undo (a row taken meanwhile by another
        transaction, a unique violation), it is rolled back and the batch is recorded again,
        each enrolment in its own savepoint: the same answers, only slower.
        """
        try:
            results, retry = self._record_all(pending, received_at=received_at, careful=False)
        except (_UnsettledError, ConflictError):
            results, retry = self._record_all(pending, received_at=received_at, careful=True)
        devices_by_index = {item.index: item.device.device_id for item in pending}
        for index, answer in results.items():
            if isinstance(answer, RejectedError):
                answers[index] = self._rejected(answer, devices_by_index[index])
                continue
            answers[index] = answer
            log.info(
                "enrolment recorded",
                extra={"device_id": answer.device_id, "enrolment_id": answer.enrolment_id},
            )
        return retry

    def _record_all(
        self, pending: list[_Opened], *, received_at: datetime, careful: bool
    ) -> tuple[dict[int, Ack | RejectedError], list[_Opened]]:
        results: dict[int, Ack | RejectedError] = {}
        retry: list[_Opened] = []
        # Pipelined (PostgreSQL): statements whose answer is not read at once (inserts,
        # savepoints, deferred UPDATEs) travel with the next read instead of one round trip
        # each.
        with self.store.transaction(pipeline=True) as tx:
            if careful:
                for item in pending:
                    try:
                        with tx.savepoint():
                            results[item.index] = self._record(tx, item, received_at=received_at)
                    except RejectedError as exc:
                        results[item.index] = exc
                    except ConflictError:
                        retry.append(item)
                return results, retry
            deferred: list[_Changed] = []
            for item in pending:
                try:
                    results[item.index] = self._record(
                        tx, item, received_at=received_at, deferred=deferred
                    )
                except RejectedError as exc:  # refused before it wrote anything (see _record)
                    results[item.index] = exc
            tx.sync()
            if any(change.rowcount != 1 for change in deferred):
                raise _UnsettledError  # rolls the transaction back
        return results, retry

    def _stored_answer(self, tx: Transaction, enrolment_id: str, digest: bytes) -> Ack | None:
        row = tx.one(
            "SELECT envelope_digest, ack FROM requests WHERE enrolment_id = ?", (enrolment_id,)
        )
        if row is None:
            return None
        if bytes(row[0]) != digest:
            raise RejectedError.of(RejectionCode.REPLAYED, f"enrolment {enrolment_id}")
        return _ack_from_bytes(bytes(row[1]))

    def _record(
        self,
        tx: Transaction,
        item: _Opened,
        *,
        received_at: datetime,
        deferred: list[_Changed] | None = None,
    ) -> Ack:
        """Decide and write one enrolment. Every refusal that needs only reading comes
        before the first write. ``deferred`` (optimistic mode): the conditional UPDATEs are
        not waited for but appended there, for the caller to check; a refusal after a
        write then raises :class:`_UnsettledError` (only a savepoint could undo that write)."""
        record, device, digest = item.record, item.device, item.digest
        now = self._clock()
        # One round trip for the three facts the decision starts from, read from one snapshot:
        # this enrolment already recorded? the device still active? the pre-request usable?
        # (the same snapshot matters: a pre-request consumed by this very enrolment shows up
        # together with its stored ack.)
        row = tx.one(
            "SELECT (SELECT envelope_digest FROM requests WHERE enrolment_id = ?),"
            " (SELECT ack FROM requests WHERE enrolment_id = ?),"
            " (SELECT state FROM devices WHERE device_id = ?),"
            " p.status, p.expires_at, p.reason, p.birth_date"
            " FROM (SELECT 1 AS one) AS o LEFT JOIN prerequests p ON p.number = ?",
            (record.enrolment_id, record.enrolment_id, device.device_id, record.prerequest_number),
        )
        assert row is not None
        if row[0] is not None:
            if bytes(row[0]) != digest:
                raise RejectedError.of(RejectionCode.REPLAYED, f"enrolment {record.enrolment_id}")
            return _ack_from_bytes(bytes(row[1]))
        if row[2] != DeviceState.ACTIVE.value:  # revoked meanwhile
            raise RejectedError.of(RejectionCode.REVOKED_DEVICE, device.device_id)
        pre = self._prerequest_facts(record.prerequest_number, row[3:])
        if record.reason != pre.reason:
            raise RejectedError.of(
                RejectionCode.INVALID_RECORD,
                f"reason {record.reason} differs from the pre-request's {pre.reason}",
            )
        check_fingers(record, birth_date=pre.birth_date)
        leased_number = self._leased_number(tx, record, device_id=device.device_id)
        stamp = self._stamp_to_consume(tx, record, pre=pre, device=device)
        # --- writes from here on ---
        try:
            return self._write(
                tx,
                item,
                pre=pre,
                leased_number=leased_number,
                stamp=stamp,
                received_at=received_at,
                now=now,
                deferred=deferred,
            )
        except RejectedError:
            if deferred is None:
                raise
            raise _UnsettledError from None

    def _write(
        self,
        tx: Transaction,
        item: _Opened,
        *,
        pre: _PreRequestFacts,
        leased_number: str | None,
        stamp: str | None,
        received_at: datetime,
        now: datetime,
        deferred: list[_Changed] | None,
    ) -> Ack:
        record, device, digest = item.record, item.device, item.digest
        number = (
            leased_number if leased_number is not None else request_number_for(self._allocate(tx))
        )
        consumed = tx.execute(
            "UPDATE prerequests SET status = 'consumed', consumed_at = ?, request_number = ?"
            " WHERE number = ? AND status IN ('validated', 'declared')",
            (_ts(now), number, pre.number),
        )
        if deferred is not None:
            deferred.append(consumed)
        elif not consumed.rowcount:
            # Taken meanwhile (PostgreSQL: this UPDATE waited for the other transaction).
            # If the taker was this very enrolment, delivered twice at once, its ack is
            # visible now (READ COMMITTED: each statement sees what committed before it).
            stored = self._stored_answer(tx, record.enrolment_id, digest)
            if stored is not None:
                return stored
            raise RejectedError.of(RejectionCode.PREREQUEST_CONSUMED)
        if stamp is not None:
            used = tx.execute(
                "UPDATE stamps SET state = 'used', used_at = ?, request_number = ?"
                " WHERE number = ? AND state = 'unused' AND expires_at > ?",
                (_ts(now), number, stamp, _ts(now)),
            )
            if deferred is not None:
                deferred.append(used)
            elif not used.rowcount:
                raise RejectedError.of(RejectionCode.STAMP_USED)
        ack = Ack.signed(
            enrolment_id=record.enrolment_id,
            device_id=device.device_id,
            request_number=number,
            prerequest_number=pre.number,
            received_at=received_at,
            recorded_at=now,
            key=self.keys.signing,
        )
        recorded_at = _ts(now)
        tx.execute(
            "INSERT INTO requests (request_number, enrolment_id, envelope_digest, device_id,"
            " commune_code, prerequest_number, stamp_number, agent_id, leased, stage,"
            " stage_at, received_at, recorded_at, ack)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                number,
                record.enrolment_id,
                digest,
                device.device_id,
                device.commune_code,
                pre.number,
                record.tax_stamp_number,
                record.agent_id,
                int(leased_number is not None),
                Stage.RECEIVED.value,
                recorded_at,
                _ts(received_at),
                recorded_at,
                ack.to_bytes(),
            ),
        )
        tx.execute(
            "INSERT INTO stage_history (request_number, seq, stage, at, note)"
            " VALUES (?, 0, ?, ?, '')",
            (number, Stage.RECEIVED.value, recorded_at),
        )
        key_id, nonce, ciphertext = item.sealed_at_rest  # encrypted once, in _open
        tx.execute(
            "INSERT INTO biometrics (enrolment_id, key_id, nonce, ciphertext) VALUES (?, ?, ?, ?)",
            (record.enrolment_id, key_id, nonce, ciphertext),
        )
        tx.execute(
            "INSERT INTO retention (enrolment_id, erase_images) VALUES (?, ?)",
            (record.enrolment_id, int(record.erase_images_after_decision)),
        )
        return ack

    def _leased_number(
        self, tx: Transaction, record: EnrolmentRecord, *, device_id: str
    ) -> str | None:
        """The record's leased number, checked (None: central assigns a fresh one)."""
        if record.request_number is None:
            return None
        try:
            number = parse_request_number(record.request_number)
        except MistypedIdentifierError:
            raise RejectedError.of(RejectionCode.NUMBER_MISTYPED) from None
        except IdentifierError as exc:
            raise RejectedError.of(RejectionCode.NUMBER_MALFORMED, exc.reason) from None
        counter = counter_of_request_number(number)
        lease = tx.one(
            "SELECT lease_id FROM leases WHERE device_id = ? AND first_counter <= ?"
            " AND first_counter + count > ?",
            (device_id, counter, counter),
        )
        if lease is None:
            raise RejectedError.of(RejectionCode.NUMBER_NOT_LEASED, number)
        if tx.one("SELECT 1 FROM requests WHERE request_number = ?", (number,)) is not None:
            raise RejectedError.of(RejectionCode.NUMBER_ALREADY_USED, number)
        return number

    def _stamp_to_consume(
        self, tx: Transaction, record: EnrolmentRecord, *, pre: _PreRequestFacts, device: Device
    ) -> str | None:
        """The stamp the enrolment pays with, checked usable (None: no stamp needed)."""
        if record.tax_stamp_number is None:
            if pre.reason.requires_tax_stamp:
                raise RejectedError.of(RejectionCode.STAMP_REQUIRED)
            return None
        return self._usable_stamp(
            tx, record.tax_stamp_number, commune_code=device.commune_code
        ).number

    def enrolment_record(
        self,
        request_number: str,
        *,
        actor: str = audit_events.CENTRAL,
        event: str = audit_events.RECORD_OPENED,
    ) -> EnrolmentRecord:
        """Decrypt a stored enrolment (instructing centre's side; never logged, audited)."""
        number = parse_request_number(request_number)
        with self.store.transaction(write=False) as tx:
            row = tx.one(
                "SELECT b.enrolment_id, b.nonce, b.ciphertext FROM biometrics b"
                " JOIN requests r ON r.enrolment_id = b.enrolment_id WHERE r.request_number = ?",
                (number,),
            )
        if row is None:
            raise KeyError(number)
        self.audit_event(event, actor=actor, subject=number)
        plaintext = self.keys.storage.decrypt(
            bytes(row[1]), bytes(row[2]), aad=_biometrics_aad(row[0])
        )
        return EnrolmentRecord.from_bytes(plaintext)

    # --- status ----------------------------------------------------------------------------

    def request_status(self, number: str) -> RequestStatus | Rejection:
        """Public status of a request; a mistyped number is told apart from an unknown one."""
        try:
            parsed = _parse_number_or_reject(number)
            with self.store.transaction(write=False) as tx:
                status = self._load_status(tx, parsed)
        except RejectedError as exc:
            return exc.rejection
        if status is None:
            return Rejection(RejectionCode.NUMBER_UNKNOWN)
        return status

    def advance_status(self, number: str, stage: Stage, *, note: str = "") -> RequestStatus:
        """Operator: move a request to ``stage`` (forward only, or to rejected).

        Raises :class:`RejectedError` (malformed/mistyped/unknown number) or
        :class:`StageTransitionError`.
        """
        parsed = _parse_number_or_reject(number)
        with self.store.transaction() as tx:
            status = self._advance(tx, parsed, stage, note=note)
        self.audit_event(
            audit_events.STAGE_CHANGED,
            actor=audit_events.OPERATOR,
            subject=parsed,
            details={"stage": stage.value},
        )
        return status

    def _advance(self, tx: Transaction, number: str, stage: Stage, *, note: str) -> RequestStatus:
        current = self._load_status(tx, number)
        if current is None:
            raise RejectedError.of(RejectionCode.NUMBER_UNKNOWN)
        if stage not in NEXT_STAGES[current.stage]:
            raise StageTransitionError(number, current.stage, stage)
        now = self._clock()
        # Conditional on the stage read: two operators racing move it once.
        if not tx.execute(
            "UPDATE requests SET stage = ?, stage_at = ? WHERE request_number = ? AND stage = ?",
            (stage.value, _ts(now), number, current.stage.value),
        ).rowcount:
            raise StageTransitionError(number, current.stage, stage)
        tx.execute(
            "INSERT INTO stage_history (request_number, seq, stage, at, note)"
            " VALUES (?, ?, ?, ?, ?)",
            (number, len(current.history), stage.value, _ts(now), note),
        )
        status = self._load_status(tx, number)
        assert status is not None
        return status

    def _load_status(self, tx: Transaction, number: str) -> RequestStatus | None:
        row = tx.one("SELECT stage, commune_code FROM requests WHERE request_number = ?", (number,))
        if row is None:
            return None
        history = tx.all(
            "SELECT stage, at, note FROM stage_history WHERE request_number = ? ORDER BY seq",
            (number,),
        )
        return RequestStatus(
            request_number=number,
            stage=Stage(row[0]),
            commune_code=row[1],
            history=tuple(StageEvent(Stage(s), _dt(at), note) for s, at, note in history),
        )

    def _handover_request(self, tx: Transaction, number: str, device: Device) -> RequestStatus:
        status = self._load_status(tx, number)
        if status is None:
            raise RejectedError.of(RejectionCode.NUMBER_UNKNOWN)
        if status.stage is not Stage.AVAILABLE:
            raise RejectedError.of(RejectionCode.NOT_AVAILABLE_FOR_HANDOVER, status.stage)
        if status.commune_code != device.commune_code:
            raise RejectedError.of(RejectionCode.WRONG_MAIRIE, status.commune_code)
        return status

    def handover_templates(self, number: str, *, device_id: str) -> bytes | Rejection:
        """For a DR at handover: the enrolment's templates sealed to this device's key."""
        try:
            parsed = _parse_number_or_reject(number)
            with self.store.transaction() as tx:
                device = self._active_device(tx, device_id)
                self._handover_request(tx, parsed, device)
            if device.handover_key is None:
                raise RejectedError.of(RejectionCode.NO_HANDOVER_KEY, device_id)
        except RejectedError as exc:
            return exc.rejection
        record = self.enrolment_record(parsed, actor=device_id, event=audit_events.TEMPLATES_OPENED)
        templates = [
            HandoverTemplate(position=f.position, template=f.template)
            for f in record.captured_fingers
            if f.template is not None
        ]
        return seal_handover(
            templates,
            request_number=parsed,
            device_id=device_id,
            device_key=CentralRecipientKey(device.handover_key),
        )

    def record_handover(self, number: str, *, device_id: str) -> RequestStatus | Rejection:
        """For a DR: the card was handed over (after the identity check)."""
        try:
            parsed = _parse_number_or_reject(number)
            with self.store.transaction() as tx:
                device = self._active_device(tx, device_id)
                self._handover_request(tx, parsed, device)
                status = self._advance(tx, parsed, Stage.HANDED_OVER, note=device_id)
        except RejectedError as exc:
            return exc.rejection
        except StageTransitionError:
            return Rejection(RejectionCode.NOT_AVAILABLE_FOR_HANDOVER)
        self.audit_event(audit_events.HANDOVER, actor=device_id, subject=parsed)
        return status

    def requests_by_stage(self) -> dict[str, int]:
        """Counts per stage (dashboard)."""
        with self.store.transaction(write=False) as tx:
            rows = tx.all("SELECT stage, COUNT(*) FROM requests GROUP BY stage")
        return {str(stage): int(count) for stage, count in rows}

    def iter_request_numbers(self) -> Iterator[str]:
        with self.store.transaction(write=False) as tx:
            rows = tx.all("SELECT request_number FROM requests ORDER BY recorded_at")
        for (number,) in rows:
            yield number


_DEVICE_SELECT: Final = (
    "SELECT device_id, commune_code, commune_name, station, signing_key, handover_key, state,"
    " registered_at, revoked_at FROM devices"
)


def _device_from_row(row: Row) -> Device:
    handover = row[5]
    return Device(
        device_id=row[0],
        commune_code=row[1],
        commune_name=row[2],
        station=int(row[3]),
        signing_key=Ed25519PublicKey.from_public_bytes(bytes(row[4])),
        handover_key=None if handover is None else bytes(handover),
        state=DeviceState(row[6]),
        registered_at=_dt(row[7]),
        revoked_at=_dt_opt(row[8]),
    )


def _biometrics_aad(enrolment_id: str) -> bytes:
    return b"dr-central-biometrics-v1\x00" + enrolment_id.encode("ascii")


def _ack_from_bytes(data: bytes) -> Ack:
    # Our own stored bytes, from our own database: decoded, not re-verified.
    return Ack.from_bytes(data)


def _parse_number_or_reject(number: str) -> str:
    try:
        return parse_request_number(number)
    except MistypedIdentifierError:
        raise RejectedError.of(RejectionCode.NUMBER_MISTYPED) from None
    except IdentifierError as exc:
        raise RejectedError.of(RejectionCode.NUMBER_MALFORMED, exc.reason) from None


def _envelope_rejection(exc: env.EnvelopeError) -> RejectionCode:
    mapping: tuple[tuple[type[env.EnvelopeError], RejectionCode], ...] = (
        (env.EnvelopeTooLargeError, RejectionCode.TOO_LARGE),
        (env.MalformedEnvelopeError, RejectionCode.MALFORMED_ENVELOPE),
        (env.BadSignatureError, RejectionCode.BAD_SIGNATURE),
        (env.UnknownRecipientKeyError, RejectionCode.UNKNOWN_RECIPIENT_KEY),
        (env.DecryptionFailedError, RejectionCode.DECRYPTION_FAILED),
        (env.ReplayedEnvelopeError, RejectionCode.REPLAYED),
        (env.InvalidRecordError, RejectionCode.INVALID_RECORD),
    )
    if isinstance(exc, env.ContextMismatchError):
        # The transport's device against the header, or the record against the header.
        return (
            RejectionCode.DEVICE_MISMATCH
            if exc.field == "device_id"
            else RejectionCode.INVALID_RECORD
        )
    for kind, code in mapping:
        if isinstance(exc, kind):
            return code
    return RejectionCode.MALFORMED_ENVELOPE


__all__ = ["CentralService", "DeviceExistsError", "utc_now"]
