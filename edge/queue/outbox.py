"""The store-and-forward outbox: sealed enrolments in SQLite until central acknowledges them.

Durability: WAL journal, ``synchronous=FULL`` (every commit fsyncs the WAL), one transaction
per call. :meth:`Outbox.enqueue` returns only after its commit is on disk: that is when the
agent may be told "done". A crash (SIGKILL, power cut) at any point leaves each enrolment
either fully queued or absent, never half-written.

Life of a row::

    enqueue -> pending --mark_sent--> sent --mark_acked----> acked    (payload deleted) --purge-->
                  ^                     |  --mark_rejected-> rejected (payload deleted) --purge-->
                  +----mark_failed------+   (or: no ack within ack_timeout_s -> due again)

- ``mark_rejected`` is for central's *definitive* refusals (``Rejection.retryable`` false:
  consumed pre-request, used stamp, invalid record...): retrying cannot succeed, so the row
  leaves the backlog, its payload is deleted, and its rejection code stays in the receipt for
  the station to show. Transient refusals go through ``mark_failed`` (retried with backoff).

- ``next_due`` returns pending rows whose retry time has come, and sent rows whose ack did not
  arrive within ``ack_timeout_s`` (lost ack, central restarted...): the outbox owns every retry.
- ``mark_acked`` is idempotent: a second ack of the same enrolment is a no-op (returns False)
  and is never counted twice. The sealed payload is deleted in the same transaction (with
  ``PRAGMA secure_delete=ON`` so freed pages are zeroed); only receipt metadata (pre-request
  number, request number, times) stays, for ``receipt_retention_s``, then
  ``purge_expired_receipts`` deletes it and truncates the WAL.
- Limits: beyond ``max_pending_count``, ``max_pending_bytes``, ``max_oldest_pending_age_s``
  or below ``min_free_disk_bytes``, new enrolments are refused with :class:`BacklogFull`
  (French message for the agent) instead of filling the disk; ``stats()`` raises an alert
  flag earlier (``alert_fraction`` of a limit) for telemetry.
- A full disk during a write raises :class:`OutboxStorageError` after a rollback: nothing
  confirmed before is lost and the database stays consistent (SQLite's guarantee, tested on a
  real, small filesystem).

Threads and asyncio: an ``Outbox`` holds one SQLite connection guarded by a lock; every method
is thread-safe and short (one transaction; an fsync for writes, ~1-10 ms). From an event loop,
use :class:`edge.queue.AsyncOutbox`, which runs each call in a worker thread
(``asyncio.to_thread``) so the loop never blocks on an fsync. Several processes may open the
same file (SQLite locking, ``busy_timeout``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from sqlite_utils import Database

from dr_contracts.enrolment import parse_enrolment_id
from dr_contracts.envelope import MAX_ENVELOPE_BYTES, MalformedEnvelopeError, peek_header
from dr_contracts.identifiers import parse_prerequest_number, parse_request_number
from edge.queue.backoff import Backoff
from edge.queue.errors import (
    BacklogFull,
    BacklogReason,
    DuplicateEnrolmentError,
    OutboxStorageError,
    UnknownEnrolmentError,
)
from edge.queue.schema import migrate

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Returns the current time as Unix seconds (``time.time``)."""

Synchronous = Literal["FULL", "EXTRA", "NORMAL"]

_BUSY_TIMEOUT_MS = 10_000
_MAX_ERROR_TEXT = 500
_WAL_SIZE_LIMIT = 4 * 1024 * 1024
# SQLite primary result codes (sqlite3.h) that mean "the storage failed", not "bad SQL".
_SQLITE_IOERR = 10
_SQLITE_FULL = 13


class RowState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    ACKED = "acked"  # central recorded it: payload deleted, receipt kept
    REJECTED = "rejected"  # central refused it for good: payload deleted, code kept

    @property
    def closed(self) -> bool:
        return self in (RowState.ACKED, RowState.REJECTED)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxLimits:
    """When to refuse new enrolments, and how long to keep things. Durations in seconds."""

    max_pending_count: int = 2000
    max_pending_bytes: int = 512 * 1024 * 1024
    max_oldest_pending_age_s: float = 14 * 86400.0
    min_free_disk_bytes: int = 256 * 1024 * 1024  # 0 disables the check
    alert_fraction: float = 0.8
    receipt_retention_s: float = 90 * 86400.0
    ack_timeout_s: float = 60.0
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if self.max_pending_count < 1 or self.max_pending_bytes < 1:
            raise ValueError("max_pending_count and max_pending_bytes must be >= 1")
        if self.max_oldest_pending_age_s <= 0 or self.ack_timeout_s <= 0:
            raise ValueError("max_oldest_pending_age_s and ack_timeout_s must be > 0")
        if self.min_free_disk_bytes < 0 or self.receipt_retention_s < 0:
            raise ValueError("min_free_disk_bytes and receipt_retention_s must be >= 0")
        if not 0 < self.alert_fraction <= 1:
            raise ValueError("alert_fraction must be within (0, 1]")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxMeta:
    """Receipt metadata stored beside the sealed envelope (no biometrics, never sealed)."""

    prerequest_number: str
    request_number: str | None = None  # leased number printed on the receipt, if any

    def __post_init__(self) -> None:
        if parse_prerequest_number(self.prerequest_number) != self.prerequest_number:
            raise ValueError("prerequest_number must be normalised")
        if self.request_number is not None and (
            parse_request_number(self.request_number) != self.request_number
        ):
            raise ValueError("request_number must be normalised")


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A row's metadata (no payload): what the station shows and telemetry counts."""

    enrolment_id: str
    state: RowState
    prerequest_number: str
    request_number: str | None
    envelope_size: int
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
    acked_at: datetime | None
    rejected_at: datetime | None = None
    rejection_code: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A row due for (re)sending, with its sealed envelope."""

    enrolment_id: str
    envelope: bytes
    state: RowState
    attempts: int
    created_at: datetime
    last_error: str | None

    def __repr__(self) -> str:
        return (
            f"OutboxRow(enrolment_id={self.enrolment_id!r}, state={self.state.value}, "
            f"attempts={self.attempts}, envelope=<{len(self.envelope)} bytes>)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxStats:
    """Telemetry snapshot. ``pending_*`` counts rows not yet acknowledged (pending + sent)."""

    pending_count: int
    pending_bytes: int
    in_flight_count: int
    oldest_pending_age_s: float | None
    receipts_count: int
    enqueued_total: int
    acked_total: int
    rejected_total: int
    free_disk_bytes: int
    alert: bool
    refusing: bool
    refusal_reason: BacklogReason | None

    @property
    def depth(self) -> int:
        return self.pending_count

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for telemetry."""
        data = asdict(self)
        data["refusal_reason"] = self.refusal_reason.value if self.refusal_reason else None
        return data


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _storage_error(operation: str, exc: sqlite3.Error) -> OutboxStorageError:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return OutboxStorageError(
        operation,
        sqlite_error=f"{getattr(exc, 'sqlite_errorname', type(exc).__name__)}: {exc}",
        disk_full=code == _SQLITE_FULL,
    )


def _is_storage_failure(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (_SQLITE_FULL, _SQLITE_IOERR) or "disk is full" in str(exc)


class Outbox:
    """SQLite outbox of sealed enrolments (see the module docstring for the guarantees).

    Parameters
    ----------
    path : the database file (created 0600 with its directory if missing).
    limits : refusal thresholds, retention, retry schedule.
    clock : Unix seconds, injectable for tests (default ``time.time``).
    rng : random source for the retry jitter (default: a fresh ``random.Random()``).
    synchronous : ``FULL`` (default; the durability contract) or ``NORMAL`` (benchmarks only:
        a power cut may lose the last commits, though never corrupt the database).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        limits: OutboxLimits | None = None,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        synchronous: Synchronous = "FULL",
    ) -> None:
        if synchronous not in ("FULL", "EXTRA", "NORMAL"):
            raise ValueError(f"synchronous must be FULL, EXTRA or NORMAL, not {synchronous!r}")
        self.path = Path(path)
        self.limits = limits or OutboxLimits()
        self._clock = clock
        self._rng = rng or random.Random()  # jitter only, never a secret
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        if created:
            # Created 0600 before SQLite opens it: SQLite gives the WAL and shm files the
            # database file's permissions.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            check_same_thread=False,  # guarded by self._lock
            timeout=_BUSY_TIMEOUT_MS / 1000,
        )
        try:
            self._db = Database(conn, execute_plugins=False, recursive_triggers=False)
            _configure(self._db, synchronous=synchronous)
            before, after = migrate(self._db, path=str(self.path))
        except sqlite3.Error as exc:
            conn.close()
            raise _storage_error("open", exc) from exc
        except BaseException:
            conn.close()
            raise
        if created:
            _fsync_directory(self.path.parent)  # the new file's name must survive a power cut
        if before != after:
            logger.info("outbox %s: schema migrated from v%d to v%d", self.path, before, after)
        try:
            # Every (re)start enforces the retention of receipts, even if nothing else calls
            # purge_expired_receipts(); a full disk must not keep the outbox from opening.
            # No WAL checkpoint here: TRUNCATE waits for other connections' readers.
            self._purge(checkpoint=False)
        except OutboxStorageError as exc:
            logger.warning("outbox %s: purge at open skipped: %s", self.path, exc)

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self, operation: str) -> Iterator[Database]:
        """One ``BEGIN IMMEDIATE`` transaction; storage failures become OutboxStorageError."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                self._rollback_quietly()
                if isinstance(exc, sqlite3.Error) and _is_storage_failure(exc):
                    logger.warning("outbox %s failed, rolled back: %s", operation, exc)
                    raise _storage_error(operation, exc) from exc
                raise

    def _rollback_quietly(self) -> None:
        if self._db.conn.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:  # SQLite may already have rolled back on SQLITE_FULL
                logger.warning("outbox rollback: %s", exc)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return list(self._db.query(sql, params))
            except sqlite3.Error as exc:
                if _is_storage_failure(exc):
                    raise _storage_error("read", exc) from exc
                raise

    # --- admission -------------------------------------------------------------------------

    def _free_disk_bytes(self) -> int:
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize

    def _totals(self) -> tuple[int, int, float | None, int]:
        row = self._db.execute(
            "SELECT count(*), coalesce(sum(envelope_size), 0), min(created_at),"
            " sum(state = 'sent') FROM outbox WHERE state IN ('pending', 'sent')"
        ).fetchone()
        return int(row[0]), int(row[1]), row[2], int(row[3] or 0)

    def _refusal(
        self, count: int, size: int, oldest: float | None, free: int, *, incoming: int
    ) -> BacklogFull | None:
        limits = self.limits
        now = self._clock()
        if count + 1 > limits.max_pending_count:
            return BacklogFull(BacklogReason.COUNT, value=count, limit=limits.max_pending_count)
        if size + incoming > limits.max_pending_bytes:
            return BacklogFull(BacklogReason.BYTES, value=size, limit=limits.max_pending_bytes)
        if oldest is not None and now - oldest > limits.max_oldest_pending_age_s:
            return BacklogFull(
                BacklogReason.AGE, value=now - oldest, limit=limits.max_oldest_pending_age_s
            )
        if limits.min_free_disk_bytes and free - incoming < limits.min_free_disk_bytes:
            return BacklogFull(BacklogReason.DISK, value=free, limit=limits.min_free_disk_bytes)
        return None

    def check_admission(self, *, incoming_bytes: int = 0) -> None:
        """Raise :class:`BacklogFull` if a new enrolment would be refused now.

        The station calls it before a session starts, so that the agent learns of a full
        outbox before capturing fingers, not after.
        """
        with self._lock:
            count, size, oldest, _ = self._totals()
            refusal = self._refusal(
                count, size, oldest, self._free_disk_bytes(), incoming=incoming_bytes
            )
        if refusal is not None:
            raise refusal

    # --- the link's and the station's API ----------------------------------------------------

    def enqueue(self, enrolment_id: str, envelope: bytes, *, meta: OutboxMeta) -> None:
        """Queue a sealed envelope; return only once it is committed to disk.

        Idempotent for identical bytes (a retry after a crash that hid the commit's outcome).

        Raises
        ------
        ValueError
            ``envelope`` is not a sealed envelope for ``enrolment_id``.
        BacklogFull
            a limit is reached (``.message_fr`` for the agent).
        DuplicateEnrolmentError
            the id is already queued with other bytes.
        OutboxStorageError
            the disk is full or failing; nothing was written, nothing before was lost.
        """
        enrolment_id = parse_enrolment_id(enrolment_id)
        if not isinstance(envelope, bytes) or not 0 < len(envelope) <= MAX_ENVELOPE_BYTES:
            raise ValueError("envelope must be non-empty bytes within MAX_ENVELOPE_BYTES")
        try:
            header = peek_header(envelope)
        except MalformedEnvelopeError as exc:
            raise ValueError(f"not a sealed enrolment envelope: {exc}") from None
        if header.enrolment_id != enrolment_id:
            raise ValueError(f"envelope is for enrolment {header.enrolment_id}, not {enrolment_id}")
        digest = hashlib.sha256(envelope).digest()
        with self._write("enqueue") as db:
            existing = db.execute(
                "SELECT envelope_sha256 FROM outbox WHERE enrolment_id = ?", (enrolment_id,)
            ).fetchone()
            if existing is not None:
                if bytes(existing[0]) != digest:
                    raise DuplicateEnrolmentError(enrolment_id)
                logger.info("outbox: enrolment %s already queued (no-op)", enrolment_id)
                return
            count, size, oldest, _ = self._totals()
            refusal = self._refusal(
                count, size, oldest, self._free_disk_bytes(), incoming=len(envelope)
            )
            if refusal is not None:
                logger.warning("outbox refuses enrolment %s: %s", enrolment_id, refusal)
                raise refusal
            now = self._clock()
            db.execute(
                "INSERT INTO outbox (enrolment_id, state, prerequest_number, request_number,"
                " envelope_size, envelope_sha256, created_at, attempts, next_attempt_at,"
                " envelope) VALUES (?, 'pending', ?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    enrolment_id,
                    meta.prerequest_number,
                    meta.request_number,
                    len(envelope),
                    digest,
                    now,
                    now,
                    envelope,
                ),
            )
            db.execute("UPDATE outbox_counters SET value = value + 1 WHERE name = 'enqueued_total'")
        logger.info("outbox: enrolment %s queued (%d bytes)", enrolment_id, len(envelope))

    def next_due(self, *, limit: int = 8) -> list[OutboxRow]:
        """Rows to (re)send now, oldest retry time first, at most ``limit``."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        rows = self._read(
            "SELECT enrolment_id, envelope, state, attempts, created_at, last_error"
            " FROM outbox WHERE state IN ('pending', 'sent') AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (self._clock(), limit),
        )
        return [
            OutboxRow(
                enrolment_id=r["enrolment_id"],
                envelope=bytes(r["envelope"]),
                state=RowState(r["state"]),
                attempts=r["attempts"],
                created_at=_utc(r["created_at"]),
                last_error=r["last_error"],
            )
            for r in rows
        ]

    def next_due_at(self) -> datetime | None:
        """When the earliest unacknowledged row becomes due (None if none is waiting)."""
        rows = self._read(
            "SELECT min(next_attempt_at) AS t FROM outbox WHERE state IN ('pending', 'sent')"
        )
        value = rows[0]["t"]
        return None if value is None else _utc(value)

    def mark_sent(self, enrolment_id: str) -> bool:
        """Record a send attempt (call it just before publishing). The row is due again after
        ``ack_timeout_s`` unless acknowledged. Returns False if the row is already closed
        (acked or rejected): do not send it."""
        return self.mark_sent_many([enrolment_id])[0]

    def mark_sent_many(self, enrolment_ids: Sequence[str]) -> list[bool]:
        """:meth:`mark_sent` for several rows in one transaction (one fsync); all or nothing:
        an unknown id raises :class:`UnknownEnrolmentError` and changes no row."""
        now = self._clock()
        results: list[bool] = []
        with self._write("mark_sent") as db:
            for enrolment_id in enrolment_ids:
                if self._state_for_update(db, enrolment_id).closed:
                    results.append(False)
                    continue
                db.execute(
                    "UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_at = ?,"
                    " next_attempt_at = ? WHERE enrolment_id = ?",
                    (now, now + self.limits.ack_timeout_s, enrolment_id),
                )
                results.append(True)
        return results

    def mark_failed(self, enrolment_id: str, error: str) -> bool:
        """Record a failed attempt and reschedule it with jittered exponential backoff.
        Returns False (no-op) if the row is already closed (acked or rejected)."""
        now = self._clock()
        with self._write("mark_failed") as db:
            state = self._state_for_update(db, enrolment_id)
            if state.closed:
                return False
            attempts = db.execute(
                "SELECT attempts FROM outbox WHERE enrolment_id = ?", (enrolment_id,)
            ).fetchone()[0]
            delay = self.limits.backoff.delay(max(int(attempts), 1), self._rng)
            db.execute(
                "UPDATE outbox SET state = 'pending', last_error = ?, next_attempt_at = ?"
                " WHERE enrolment_id = ?",
                (str(error)[:_MAX_ERROR_TEXT], now + delay, enrolment_id),
            )
        logger.info("outbox: enrolment %s attempt failed, retry in %.1f s", enrolment_id, delay)
        return True

    def mark_acked(
        self, enrolment_id: str, *, request_number: str, acked_at: datetime | None = None
    ) -> bool:
        """Central acknowledged the enrolment: delete its payload, keep the receipt.

        Idempotent: returns True the first time, False (no-op, not counted) for a repeated
        ack or an ack of a row whose receipt was already purged.
        """
        return self.mark_acked_many([(enrolment_id, request_number, acked_at)])[0]

    def mark_acked_many(self, acks: Sequence[tuple[str, str, datetime | None]]) -> list[bool]:
        """:meth:`mark_acked` for several ``(enrolment_id, request_number, acked_at)`` in one
        transaction (one fsync). Arguments are all checked before anything is written."""
        checked: list[tuple[str, str, float]] = []
        for enrolment_id, request_number, acked_at in acks:
            if acked_at is not None and acked_at.tzinfo is None:
                raise ValueError("acked_at must be timezone-aware")
            checked.append(
                (
                    enrolment_id,
                    parse_request_number(request_number),
                    acked_at.timestamp() if acked_at is not None else self._clock(),
                )
            )
        with self._write("mark_acked") as db:
            results = [self._ack_in(db, *ack) for ack in checked]
        for (enrolment_id, _number, _ts), applied in zip(checked, results, strict=True):
            if applied:
                logger.info("outbox: enrolment %s acknowledged", enrolment_id)
        return results

    def _ack_in(
        self, db: Database, enrolment_id: str, request_number: str, acked_ts: float
    ) -> bool:
        row = db.execute(
            "SELECT state, request_number FROM outbox WHERE enrolment_id = ?", (enrolment_id,)
        ).fetchone()
        if row is None:
            logger.info("outbox: ack for unknown or purged enrolment %s", enrolment_id)
            return False
        if row[0] == RowState.ACKED:
            return False
        if row[0] == RowState.REJECTED:
            # Central's dedup makes this impossible for one central; log, keep the ack.
            logger.warning("outbox: enrolment %s acknowledged after a rejection", enrolment_id)
        if row[1] is not None and row[1] != request_number:
            logger.warning(
                "outbox: enrolment %s queued with request number %s, central assigned %s",
                enrolment_id,
                row[1],
                request_number,
            )
        db.execute(
            "UPDATE outbox SET state = 'acked', envelope = NULL, request_number = ?,"
            " acked_at = ?, closed_at = ?, rejected_at = NULL, rejection_code = NULL,"
            " last_error = NULL WHERE enrolment_id = ?",
            (request_number, acked_ts, acked_ts, enrolment_id),
        )
        db.execute("UPDATE outbox_counters SET value = value + 1 WHERE name = 'acked_total'")
        return True

    def mark_rejected(
        self, enrolment_id: str, *, code: str, rejected_at: datetime | None = None
    ) -> bool:
        """Central refused the enrolment for good: close the row, delete its payload, keep
        the receipt with the rejection ``code`` (for the station to show).

        Idempotent: False (no-op) if the row is already closed or its receipt was purged.
        """
        if not isinstance(code, str) or not 0 < len(code) <= 64:
            raise ValueError("a rejection code is a non-empty string of at most 64 characters")
        if rejected_at is not None and rejected_at.tzinfo is None:
            raise ValueError("rejected_at must be timezone-aware")
        when = rejected_at.timestamp() if rejected_at is not None else self._clock()
        with self._write("mark_rejected") as db:
            row = db.execute(
                "SELECT state FROM outbox WHERE enrolment_id = ?", (enrolment_id,)
            ).fetchone()
            if row is None or RowState(row[0]).closed:
                return False
            db.execute(
                "UPDATE outbox SET state = 'rejected', envelope = NULL, rejection_code = ?,"
                " rejected_at = ?, closed_at = ?, last_error = ? WHERE enrolment_id = ?",
                (code, when, when, f"rejected: {code}", enrolment_id),
            )
            db.execute("UPDATE outbox_counters SET value = value + 1 WHERE name = 'rejected_total'")
        logger.warning("outbox: enrolment %s rejected by central (%s)", enrolment_id, code)
        return True

    def _state_for_update(self, db: Database, enrolment_id: str) -> RowState:
        row = db.execute(
            "SELECT state FROM outbox WHERE enrolment_id = ?", (enrolment_id,)
        ).fetchone()
        if row is None:
            raise UnknownEnrolmentError(enrolment_id)
        return RowState(row[0])

    # --- receipts, stats, housekeeping -------------------------------------------------------

    _ENTRY_COLUMNS = (
        "enrolment_id, state, prerequest_number, request_number, envelope_size, attempts,"
        " created_at, next_attempt_at, last_error, sent_at, acked_at, rejected_at,"
        " rejection_code"
    )

    def entry(self, enrolment_id: str) -> OutboxEntry:
        """A row's metadata (no payload). Raises :class:`UnknownEnrolmentError`."""
        rows = self._read(
            f"SELECT {self._ENTRY_COLUMNS} FROM outbox WHERE enrolment_id = ?",  # noqa: S608
            (enrolment_id,),
        )
        if not rows:
            raise UnknownEnrolmentError(enrolment_id)
        return _entry(rows[0])

    def entries(self) -> list[OutboxEntry]:
        """Every row's metadata (no payload), oldest first."""
        rows = self._read(f"SELECT {self._ENTRY_COLUMNS} FROM outbox ORDER BY id")  # noqa: S608
        return [_entry(r) for r in rows]

    def stats(self) -> OutboxStats:
        with self._lock:
            try:
                count, size, oldest, in_flight = self._totals()
                receipts = self._db.execute(
                    "SELECT count(*) FROM outbox WHERE closed_at IS NOT NULL"
                ).fetchone()[0]
                counters = dict(
                    self._db.execute("SELECT name, value FROM outbox_counters").fetchall()
                )
            except sqlite3.Error as exc:
                if _is_storage_failure(exc):
                    raise _storage_error("stats", exc) from exc
                raise
            free = self._free_disk_bytes()
            refusal = self._refusal(count, size, oldest, free, incoming=0)
        limits = self.limits
        now = self._clock()
        age = None if oldest is None else max(0.0, now - oldest)
        fraction = limits.alert_fraction
        alert = (
            refusal is not None
            or count >= fraction * limits.max_pending_count
            or size >= fraction * limits.max_pending_bytes
            or (age is not None and age >= fraction * limits.max_oldest_pending_age_s)
            or free < limits.min_free_disk_bytes / fraction
        )
        return OutboxStats(
            pending_count=count,
            pending_bytes=size,
            in_flight_count=in_flight,
            oldest_pending_age_s=age,
            receipts_count=int(receipts),
            enqueued_total=int(counters.get("enqueued_total", 0)),
            acked_total=int(counters.get("acked_total", 0)),
            rejected_total=int(counters.get("rejected_total", 0)),
            free_disk_bytes=free,
            alert=alert,
            refusing=refusal is not None,
            refusal_reason=refusal.reason if refusal is not None else None,
        )

    def purge_expired_receipts(self) -> int:
        """Delete receipts older than ``receipt_retention_s``; truncate the WAL so that no
        old page (payloads of acknowledged rows included) lingers in it. Returns the count.

        Call it periodically (the daemon: daily); it also runs, without the WAL truncation,
        each time an outbox is opened."""
        return self._purge(checkpoint=True)

    def _purge(self, *, checkpoint: bool) -> int:
        cutoff = self._clock() - self.limits.receipt_retention_s
        with self._write("purge") as db:
            cursor = db.execute(
                "DELETE FROM outbox WHERE closed_at IS NOT NULL AND closed_at < ?", (cutoff,)
            )
            purged = max(cursor.rowcount, 0)
            if purged:  # an untouched database commits nothing (no WAL frame, no fsync)
                db.execute(
                    "UPDATE outbox_counters SET value = value + ? WHERE name = 'purged_total'",
                    (purged,),
                )
        if checkpoint:
            self.checkpoint()
        if purged:
            logger.info("outbox: purged %d expired receipts", purged)
        return purged

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it (secure_delete zeroes freed pages).
        Returns False if readers kept it from completing (it is retried at the next call)."""
        with self._lock:
            try:
                busy, _log, _done = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                if _is_storage_failure(exc):
                    raise _storage_error("checkpoint", exc) from exc
                raise
        return not busy

    def settings(self) -> dict[str, object]:
        """The durability settings in force on this connection (for diagnostics and tests)."""
        with self._lock:
            return {
                name: self._db.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "secure_delete", "user_version")
            }

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` messages (``["ok"]`` when sound)."""
        with self._lock:
            return [str(r[0]) for r in self._db.execute("PRAGMA integrity_check").fetchall()]


def _entry(r: dict[str, Any]) -> OutboxEntry:
    def when(value: float | None) -> datetime | None:
        return None if value is None else _utc(value)

    return OutboxEntry(
        enrolment_id=r["enrolment_id"],
        state=RowState(r["state"]),
        prerequest_number=r["prerequest_number"],
        request_number=r["request_number"],
        envelope_size=r["envelope_size"],
        attempts=r["attempts"],
        created_at=_utc(r["created_at"]),
        next_attempt_at=_utc(r["next_attempt_at"]),
        last_error=r["last_error"],
        sent_at=when(r["sent_at"]),
        acked_at=when(r["acked_at"]),
        rejected_at=when(r["rejected_at"]),
        rejection_code=r["rejection_code"],
    )


def _configure(db: Database, *, synchronous: Synchronous) -> None:
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise OutboxStorageError(
            "open", sqlite_error=f"journal_mode is {mode}, WAL required", disk_full=False
        )
    db.execute(f"PRAGMA synchronous={synchronous}")
    # Freed pages (payloads of acknowledged rows) are overwritten with zeros.
    db.execute("PRAGMA secure_delete=ON")
    db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    # After a checkpoint, a WAL that grew large (a long reader held checkpoints back) is
    # truncated to this size instead of keeping its disk space for ever.
    db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
