"""Retention at central: the policy (``[retention]`` in the configuration) and the job that
enforces it (``dr-central retention run [--dry-run]``, and periodically in ``dr-central serve``).

Rules (docs/privacy.md gives the legal background):

- **title record**: a request whose card was handed over (délivrance, stage ``handed_over``)
  is kept, with its two fingerprint templates, ``title_record_years`` (15) after that date,
  then purged whole;
- **images**: when the applicant asked for it (décret 2021-279, art. 4-3 I bis; the record's
  ``erase_images_after_decision``), the full images are erased ``images_after_decision_days``
  (90) after the card is handed over or the request refused; the templates stay;
- **rejected**: a refused request is purged whole ``rejected_after_days`` after the refusal;
- **abandoned**: a request that is neither handed over nor refused and whose stage has not
  changed for ``abandoned_after_days`` is purged whole (uncollected cards included);
- **unused pre-requests**: a pre-request never used for an enrolment is purged
  ``unused_prerequest_after_days`` after it expired.

A purge is real deletion: the rows go (biometrics, stage history, request, pre-request with
the applicant's form); an image erasure rewrites the encrypted biometric row with the
templates only. SQLite connections run with ``secure_delete`` (freed pages are zeroed) and the
job truncates the WAL afterwards, so the old bytes leave the files. Each purge is committed in
its own short transaction, re-checking its condition (an operator may move the request
meanwhile), then recorded in the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import cbor2

from central import audit_hooks as audit_events
from central.store import SqliteStore, Transaction
from dr_contracts.enrolment import EnrolmentRecord
from edge.biometrics.types import FingerPosition

if TYPE_CHECKING:
    from central.service import CentralService

log = logging.getLogger("central.retention")

TERMINAL_STAGES: Final = ("handed_over", "rejected")

# Rule names, as reported and audited.
RULE_TITLE: Final = "title_record"
RULE_IMAGES: Final = "images_after_decision"
RULE_REJECTED: Final = "rejected"
RULE_ABANDONED: Final = "abandoned"
RULE_UNUSED_PREREQUEST: Final = "unused_prerequest"

TEMPLATES_FORMAT_VERSION: Final = 1


def _ts(when: datetime) -> str:
    """The store's time text (fixed-width ISO-8601 UTC, see central.schema)."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def years_before(when: datetime, years: int) -> datetime:
    """``when`` moved back ``years`` calendar years (29 February -> 28 February)."""
    try:
        return when.replace(year=when.year - years)
    except ValueError:
        return when.replace(year=when.year - years, day=28)


def years_after(when: datetime, years: int) -> datetime:
    return years_before(when, -years)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The retention periods (see the module docstring); all positive."""

    title_record_years: int = 15
    images_after_decision_days: int = 90
    rejected_after_days: int = 365
    abandoned_after_days: int = 365
    unused_prerequest_after_days: int = 30
    run_every_hours: int = 24

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"retention.{name}: expected a positive integer, got {value!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, int]) -> RetentionPolicy:
        """From ``CentralConfig.retention`` (unknown keys refused)."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"retention: unknown key {sorted(unknown)[0]}")
        return cls(**values)

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class PurgeAction:
    """One thing the job deletes: ``kind`` images | request | prerequest."""

    kind: str
    subject: str  # request number, or pre-request number for kind "prerequest"
    rule: str
    since: datetime  # the event the period runs from (handover, refusal, last change, expiry)
    # The condition re-checked at execution (stage and stage time, or nothing).
    guard: tuple[str, str] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "rule": self.rule,
            "since": self.since.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """What a run found (``dry_run``) or did."""

    at: datetime
    dry_run: bool
    actions: tuple[PurgeAction, ...]
    done: int
    skipped: int  # changed between the plan and the deletion: left for the next run

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.rule] = counts.get(action.rule, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "done": self.done,
            "skipped": self.skipped,
            "actions": [a.to_dict() for a in self.actions],
        }


def plan_retention(
    service: CentralService, policy: RetentionPolicy, *, now: datetime
) -> list[PurgeAction]:
    """What is due for deletion at ``now`` (reads only)."""
    title_cutoff = _ts(years_before(now, policy.title_record_years))
    images_cutoff = _ts(now - timedelta(days=policy.images_after_decision_days))
    rejected_cutoff = _ts(now - timedelta(days=policy.rejected_after_days))
    abandoned_cutoff = _ts(now - timedelta(days=policy.abandoned_after_days))
    unused_cutoff = _ts(now - timedelta(days=policy.unused_prerequest_after_days))
    actions: list[PurgeAction] = []
    with service.store.transaction(write=False) as tx:
        whole = [
            (RULE_TITLE, "stage = 'handed_over' AND stage_at <= ?", title_cutoff),
            (RULE_REJECTED, "stage = 'rejected' AND stage_at <= ?", rejected_cutoff),
            (
                RULE_ABANDONED,
                "stage NOT IN ('handed_over', 'rejected') AND stage_at <= ?",
                abandoned_cutoff,
            ),
        ]
        purged: set[str] = set()
        for rule, condition, cutoff in whole:
            for number, stage, stage_at in tx.all(
                f"SELECT request_number, stage, stage_at FROM requests WHERE {condition}"  # noqa: S608  (fixed conditions above)
                " ORDER BY stage_at",
                (cutoff,),
            ):
                purged.add(number)
                actions.append(
                    PurgeAction(
                        "request",
                        number,
                        rule,
                        datetime.fromisoformat(stage_at),
                        guard=(stage, stage_at),
                    )
                )
        for number, stage, stage_at in tx.all(
            "SELECT r.request_number, r.stage, r.stage_at FROM requests r"
            " JOIN retention t ON t.enrolment_id = r.enrolment_id"
            " WHERE t.erase_images = 1 AND t.images_erased_at IS NULL"
            " AND r.stage IN ('handed_over', 'rejected') AND r.stage_at <= ?"
            " ORDER BY r.stage_at",
            (images_cutoff,),
        ):
            if number not in purged:
                actions.append(
                    PurgeAction(
                        "images",
                        number,
                        RULE_IMAGES,
                        datetime.fromisoformat(stage_at),
                        guard=(stage, stage_at),
                    )
                )
        for number, expires_at in tx.all(
            "SELECT number, expires_at FROM prerequests"
            " WHERE status IN ('validated', 'declared') AND expires_at <= ? ORDER BY expires_at",
            (unused_cutoff,),
        ):
            actions.append(
                PurgeAction(
                    "prerequest", number, RULE_UNUSED_PREREQUEST, datetime.fromisoformat(expires_at)
                )
            )
    return actions


def run_retention(
    service: CentralService,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    actor: str = audit_events.CENTRAL,
    stop: threading.Event | None = None,
) -> RetentionRun:
    """Plan, then (unless ``dry_run``) delete what is due; every deletion is audited.

    ``stop`` (set from another thread) ends the run between two deletions; the rest is left
    for the next run and counted as skipped."""
    now = now if now is not None else service.now()
    actions = plan_retention(service, policy, now=now)
    done = skipped = 0
    if not dry_run:
        for action in actions:
            if stop is not None and stop.is_set():
                skipped += 1
                continue
            if _execute(service, action, now=now):
                done += 1
                service.audit_event(
                    {
                        "images": audit_events.PURGE_IMAGES,
                        "request": audit_events.PURGE_REQUEST,
                        "prerequest": audit_events.PURGE_PREREQUEST,
                    }[action.kind],
                    actor=actor,
                    subject=action.subject,
                    details={"rule": action.rule, "since": action.since.date().isoformat()},
                )
            else:
                skipped += 1
        if done:
            _truncate_sqlite_wal(service)
    run = RetentionRun(now, dry_run, tuple(actions), done, skipped)
    details: dict[str, str | int | bool | None] = {"dry_run": dry_run, "done": done}
    details.update(run.counts())
    service.audit_event(audit_events.RETENTION_RUN, actor=actor, details=details)
    log.info("retention run", extra={"dry_run": dry_run, "due": len(actions), "done": done})
    return run


def _execute(service: CentralService, action: PurgeAction, *, now: datetime) -> bool:
    with service.store.transaction() as tx:
        if action.kind == "prerequest":
            return bool(
                tx.execute(
                    "DELETE FROM prerequests WHERE number = ?"
                    " AND status IN ('validated', 'declared') AND expires_at = ?",
                    (action.subject, _ts(action.since)),
                ).rowcount
            )
        assert action.guard is not None
        stage, stage_at = action.guard
        # Takes the row's lock (PostgreSQL) and re-checks the condition the plan saw.
        if not tx.execute(
            "UPDATE requests SET stage = stage WHERE request_number = ? AND stage = ?"
            " AND stage_at = ?",
            (action.subject, stage, stage_at),
        ).rowcount:
            return False
        if action.kind == "images":
            return _erase_images(service, tx, action.subject, now=now)
        _delete_request(tx, action.subject)
        return True


def _delete_request(tx: Transaction, number: str) -> None:
    row = tx.one(
        "SELECT enrolment_id, prerequest_number FROM requests WHERE request_number = ?",
        (number,),
    )
    assert row is not None
    enrolment_id, prerequest = row
    tx.execute("DELETE FROM retention WHERE enrolment_id = ?", (enrolment_id,))
    tx.execute("DELETE FROM biometrics WHERE enrolment_id = ?", (enrolment_id,))
    tx.execute("DELETE FROM stage_history WHERE request_number = ?", (number,))
    # The tax stamp stays (a payment record), without its link to the purged request.
    tx.execute("UPDATE stamps SET request_number = NULL WHERE request_number = ?", (number,))
    tx.execute("DELETE FROM requests WHERE request_number = ?", (number,))
    tx.execute("DELETE FROM prerequests WHERE number = ?", (prerequest,))


def _templates_aad(enrolment_id: str) -> bytes:
    return b"dr-central-templates-v1\x00" + enrolment_id.encode("ascii")


def _records_aad(enrolment_id: str) -> bytes:
    # The same associated data as central.service uses for whole records.
    return b"dr-central-biometrics-v1\x00" + enrolment_id.encode("ascii")


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    position: FingerPosition
    template: bytes = field(repr=False)
    quality: int


def _erase_images(service: CentralService, tx: Transaction, number: str, *, now: datetime) -> bool:
    row = tx.one(
        "SELECT b.enrolment_id, b.nonce, b.ciphertext FROM biometrics b"
        " JOIN requests r ON r.enrolment_id = b.enrolment_id"
        " JOIN retention t ON t.enrolment_id = b.enrolment_id"
        " WHERE r.request_number = ? AND t.images_erased_at IS NULL",
        (number,),
    )
    if row is None:
        return False
    enrolment_id = str(row[0])
    record = EnrolmentRecord.from_bytes(
        service.keys.storage.decrypt(bytes(row[1]), bytes(row[2]), aad=_records_aad(enrolment_id))
    )
    kept = cbor2.dumps(
        {
            "v": TEMPLATES_FORMAT_VERSION,
            "fingers": [
                {"pos": int(f.position), "tpl": f.template, "q": f.quality.score}
                for f in record.captured_fingers
                if f.template is not None and f.quality is not None
            ],
        },
        canonical=True,
    )
    nonce, ciphertext = service.keys.storage.encrypt(kept, aad=_templates_aad(enrolment_id))
    tx.execute(
        "UPDATE biometrics SET key_id = ?, nonce = ?, ciphertext = ? WHERE enrolment_id = ?",
        (service.keys.storage.key_id, nonce, ciphertext, enrolment_id),
    )
    tx.execute(
        "UPDATE retention SET images_erased_at = ? WHERE enrolment_id = ?",
        (_ts(now), enrolment_id),
    )
    return True


def stored_templates(
    service: CentralService,
    request_number: str,
    *,
    actor: str = audit_events.CENTRAL,
    event: str = audit_events.RECORD_OPENED,
) -> list[StoredTemplate]:
    """The templates kept for a request, whether its images were erased or not (audited).

    Raises ``KeyError`` when nothing is stored for the number.
    """
    with service.store.transaction(write=False) as tx:
        row = tx.one(
            "SELECT b.enrolment_id, b.nonce, b.ciphertext, t.images_erased_at FROM biometrics b"
            " JOIN requests r ON r.enrolment_id = b.enrolment_id"
            " LEFT JOIN retention t ON t.enrolment_id = b.enrolment_id"
            " WHERE r.request_number = ?",
            (request_number,),
        )
    if row is None:
        raise KeyError(request_number)
    service.audit_event(event, actor=actor, subject=request_number)
    enrolment_id, nonce, ciphertext = str(row[0]), bytes(row[1]), bytes(row[2])
    if row[3] is None:
        record = EnrolmentRecord.from_bytes(
            service.keys.storage.decrypt(nonce, ciphertext, aad=_records_aad(enrolment_id))
        )
        return [
            StoredTemplate(f.position, f.template, f.quality.score)
            for f in record.captured_fingers
            if f.template is not None and f.quality is not None
        ]
    return _decode_templates(
        service.keys.storage.decrypt(nonce, ciphertext, aad=_templates_aad(enrolment_id))
    )


def _decode_templates(data: bytes) -> list[StoredTemplate]:
    obj = cbor2.loads(data)
    if not isinstance(obj, dict) or obj.get("v") != TEMPLATES_FORMAT_VERSION:
        raise ValueError("stored templates: unknown format")
    return [
        StoredTemplate(FingerPosition(int(f["pos"])), bytes(f["tpl"]), int(f["q"]))
        for f in obj["fingers"]
    ]


def _truncate_sqlite_wal(service: CentralService) -> None:
    """Move the WAL into the database and empty it, so deleted bytes leave the WAL file too."""
    store = service.store
    if not isinstance(store, SqliteStore):
        return
    connection = sqlite3.connect(store.path, timeout=30.0)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        log.warning("WAL checkpoint after purge failed; it will happen later")
    finally:
        connection.close()


async def retention_loop(service: CentralService, policy: RetentionPolicy) -> None:
    """Run the job now, then every ``policy.run_every_hours`` (a task of ``dr-central serve``;
    cancel to stop). A failed run is logged and retried at the next period."""
    period = policy.run_every_hours * 3600.0
    while True:
        stop = threading.Event()
        run = asyncio.ensure_future(asyncio.to_thread(run_retention, service, policy, stop=stop))
        try:
            await asyncio.shield(run)
        except asyncio.CancelledError:
            # Shutdown: the run's thread cannot be cancelled; make it stop after the deletion
            # in progress and wait for it, so the service is not closed under it.
            stop.set()
            with contextlib.suppress(Exception):
                await run
            raise
        except Exception:
            log.exception("retention run failed")
        await asyncio.sleep(period)  # a schedule, not a synchronisation


__all__ = [
    "PurgeAction",
    "RetentionPolicy",
    "RetentionRun",
    "StoredTemplate",
    "plan_retention",
    "retention_loop",
    "run_retention",
    "stored_templates",
]
