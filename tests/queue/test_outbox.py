"""Outbox over a real SQLite file: states, idempotent acks, backoff, limits, migrations."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dr_contracts.enrolment import EnrolmentRecord
from dr_contracts.envelope import open_enrolment
from dr_contracts.identifiers import request_number_for
from dr_contracts.keys import CentralDecryptionKey, SigningKey
from edge.queue import (
    AsyncOutbox,
    BacklogFull,
    BacklogReason,
    Backoff,
    DuplicateEnrolmentError,
    Outbox,
    OutboxLimits,
    OutboxMeta,
    RowState,
    SchemaVersionError,
    UnknownEnrolmentError,
)
from edge.queue.schema import MIGRATIONS, migrate, user_version
from tests.fixtures.queue import FakeClock

MakeRecord = Callable[..., EnrolmentRecord]
Seal = Callable[[EnrolmentRecord], bytes]


def _meta(record: EnrolmentRecord) -> OutboxMeta:
    return OutboxMeta(
        prerequest_number=record.prerequest_number, request_number=record.request_number
    )


def _queue(outbox: Outbox, make_record: MakeRecord, seal: Seal, **overrides: object) -> str:
    record = make_record(**overrides)
    outbox.enqueue(record.enrolment_id, seal(record), meta=_meta(record))
    return record.enrolment_id


def test_enqueued_envelope_comes_back_intact_and_opens(
    outbox: Outbox,
    make_record: MakeRecord,
    seal: Seal,
    central_key: CentralDecryptionKey,
    device_key: SigningKey,
) -> None:
    record = make_record()
    envelope = seal(record)
    outbox.enqueue(record.enrolment_id, envelope, meta=_meta(record))
    (row,) = outbox.next_due(limit=10)
    assert row.enrolment_id == record.enrolment_id
    assert row.envelope == envelope
    assert row.state is RowState.PENDING
    opened = open_enrolment(
        row.envelope,
        recipient_keys={central_key.key_id: central_key},
        device_public_key=device_key.public_key,
    )
    assert opened.record == record
    entry = outbox.entry(record.enrolment_id)
    assert entry.prerequest_number == record.prerequest_number
    assert entry.envelope_size == len(envelope)


def test_durability_settings(outbox: Outbox) -> None:
    settings = outbox.settings()
    assert settings["journal_mode"] == "wal"
    assert settings["synchronous"] == 2  # FULL
    assert settings["secure_delete"] == 1
    assert settings["user_version"] == len(MIGRATIONS)
    assert (outbox.path.stat().st_mode & 0o777) == 0o600


def test_enqueue_is_idempotent_for_the_same_bytes_only(
    outbox: Outbox, make_record: MakeRecord, seal: Seal
) -> None:
    record = make_record()
    envelope = seal(record)
    outbox.enqueue(record.enrolment_id, envelope, meta=_meta(record))
    outbox.enqueue(record.enrolment_id, envelope, meta=_meta(record))
    assert outbox.stats().pending_count == 1
    assert outbox.stats().enqueued_total == 1
    with pytest.raises(DuplicateEnrolmentError):
        outbox.enqueue(record.enrolment_id, seal(record), meta=_meta(record))
    assert outbox.next_due(limit=5)[0].envelope == envelope


def test_enqueue_refuses_what_is_not_a_sealed_envelope_for_that_id(
    outbox: Outbox, make_record: MakeRecord, seal: Seal
) -> None:
    record, other = make_record(), make_record()
    with pytest.raises(ValueError, match="not a sealed"):
        outbox.enqueue(record.enrolment_id, record.to_bytes(), meta=_meta(record))
    with pytest.raises(ValueError, match="is for enrolment"):
        outbox.enqueue(record.enrolment_id, seal(other), meta=_meta(record))
    with pytest.raises(ValueError, match="normalised"):
        OutboxMeta(prerequest_number="ab12-cd34ef")
    assert outbox.stats().pending_count == 0


def test_rows_come_out_oldest_first(
    outbox: Outbox, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    ids = []
    for _ in range(4):
        ids.append(_queue(outbox, make_record, seal))
        fake_clock.advance(1)
    assert [r.enrolment_id for r in outbox.next_due(limit=3)] == ids[:3]
    assert [r.enrolment_id for r in outbox.next_due(limit=10)] == ids


def test_sent_row_is_due_again_when_no_ack_comes(
    outbox: Outbox, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    enrolment_id = _queue(outbox, make_record, seal)
    assert outbox.mark_sent(enrolment_id)
    assert outbox.next_due() == []
    assert outbox.stats().in_flight_count == 1
    fake_clock.advance(outbox.limits.ack_timeout_s + 0.001)
    (row,) = outbox.next_due()
    assert row.state is RowState.SENT
    assert row.attempts == 1


def test_failed_attempts_back_off_exponentially_with_jitter(
    tmp_path: Path, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    backoff = Backoff(initial_s=10, factor=2, maximum_s=100, jitter=0.5)
    box = Outbox(
        tmp_path / "o.db",
        limits=OutboxLimits(min_free_disk_bytes=0, backoff=backoff),
        clock=fake_clock,
        rng=random.Random(99),
    )
    mirror = random.Random(99)  # the same stream the outbox draws its jitter from
    enrolment_id = _queue(box, make_record, seal)
    delays = []
    for attempt in range(1, 6):
        box.mark_sent(enrolment_id)
        box.mark_failed(enrolment_id, f"timeout {attempt}")
        entry = box.entry(enrolment_id)
        assert entry.state is RowState.PENDING
        assert entry.attempts == attempt
        assert entry.last_error == f"timeout {attempt}"
        delay = entry.next_attempt_at.timestamp() - fake_clock.now
        assert delay == pytest.approx(backoff.delay(attempt, mirror))
        cap = min(100.0, 10.0 * 2 ** (attempt - 1))
        assert cap * 0.5 <= delay <= cap
        delays.append(delay)
        assert box.next_due() == []
        fake_clock.advance(delay + 0.001)  # next_attempt_at is stored as float seconds
        assert [r.enrolment_id for r in box.next_due()] == [enrolment_id]
    assert delays[-1] <= 100.0
    box.close()


def test_ack_deletes_payload_keeps_receipt_and_counts_once(
    outbox: Outbox, make_record: MakeRecord, seal: Seal
) -> None:
    enrolment_id = _queue(outbox, make_record, seal)
    outbox.mark_sent(enrolment_id)
    number = request_number_for(7)
    acked_at = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert outbox.mark_acked(enrolment_id, request_number=number, acked_at=acked_at) is True
    assert outbox.mark_acked(enrolment_id, request_number=number, acked_at=acked_at) is False
    entry = outbox.entry(enrolment_id)
    assert entry.state is RowState.ACKED
    assert entry.request_number == number
    assert entry.acked_at == acked_at
    stats = outbox.stats()
    assert stats.acked_total == 1
    assert stats.pending_count == 0
    assert stats.receipts_count == 1
    assert outbox.next_due() == []
    # A late send report or failure of an acked row changes nothing.
    assert outbox.mark_sent(enrolment_id) is False
    assert outbox.mark_failed(enrolment_id, "late timeout") is False
    assert outbox.entry(enrolment_id).state is RowState.ACKED
    with sqlite3.connect(outbox.path) as conn:
        (payload,) = conn.execute(
            "SELECT envelope FROM outbox WHERE enrolment_id = ?", (enrolment_id,)
        ).fetchone()
    assert payload is None


def test_definitive_rejection_closes_the_row(
    outbox: Outbox, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    rejected = _queue(outbox, make_record, seal)
    kept = _queue(outbox, make_record, seal)
    outbox.mark_sent(rejected)
    assert outbox.mark_rejected(rejected, code="prerequest_consumed") is True
    assert outbox.mark_rejected(rejected, code="prerequest_consumed") is False
    entry = outbox.entry(rejected)
    assert entry.state is RowState.REJECTED
    assert entry.rejection_code == "prerequest_consumed"
    assert entry.rejected_at is not None
    # Out of the backlog and never sent again; its payload is gone.
    stats = outbox.stats()
    assert stats.pending_count == 1
    assert stats.rejected_total == 1
    assert stats.receipts_count == 1
    fake_clock.advance(outbox.limits.ack_timeout_s * 10)
    assert [r.enrolment_id for r in outbox.next_due()] == [kept]
    assert outbox.mark_sent(rejected) is False
    assert outbox.mark_failed(rejected, "late") is False
    with sqlite3.connect(outbox.path) as conn:
        (payload,) = conn.execute(
            "SELECT envelope FROM outbox WHERE enrolment_id = ?", (rejected,)
        ).fetchone()
    assert payload is None
    with pytest.raises(ValueError, match="rejection code"):
        outbox.mark_rejected(kept, code="")
    fake_clock.advance(outbox.limits.receipt_retention_s + 1)
    assert outbox.purge_expired_receipts() == 1
    with pytest.raises(UnknownEnrolmentError):
        outbox.entry(rejected)


def test_unknown_ids(outbox: Outbox) -> None:
    unknown = "0b6a9ff2-8c39-4f5e-9d2a-57ef4c1b7a00"
    assert outbox.mark_acked(unknown, request_number=request_number_for(1)) is False
    assert outbox.mark_rejected(unknown, code="replayed") is False
    with pytest.raises(UnknownEnrolmentError):
        outbox.mark_sent(unknown)
    with pytest.raises(UnknownEnrolmentError):
        outbox.mark_failed(unknown, "x")
    with pytest.raises(UnknownEnrolmentError):
        outbox.entry(unknown)


def test_ack_with_a_malformed_request_number_is_refused(
    outbox: Outbox, make_record: MakeRecord, seal: Seal
) -> None:
    enrolment_id = _queue(outbox, make_record, seal)
    with pytest.raises(ValueError, match="request number"):
        outbox.mark_acked(enrolment_id, request_number="NOT-A-NUMBER")
    assert outbox.entry(enrolment_id).state is RowState.PENDING


def test_receipts_are_purged_after_the_retention_period(
    outbox: Outbox, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    first = _queue(outbox, make_record, seal)
    second = _queue(outbox, make_record, seal)
    outbox.mark_acked(first, request_number=request_number_for(1))
    assert outbox.purge_expired_receipts() == 0
    fake_clock.advance(outbox.limits.receipt_retention_s + 1)
    outbox.mark_acked(second, request_number=request_number_for(2))
    assert outbox.purge_expired_receipts() == 1
    with pytest.raises(UnknownEnrolmentError):
        outbox.entry(first)
    assert outbox.entry(second).state is RowState.ACKED
    # A duplicate ack arriving after the purge is a harmless no-op.
    assert outbox.mark_acked(first, request_number=request_number_for(1)) is False
    assert outbox.stats().acked_total == 2


# --- limits -------------------------------------------------------------------------------


def _limited(tmp_path: Path, clock: FakeClock, **limits: object) -> Outbox:
    return Outbox(
        tmp_path / "limited.db",
        limits=OutboxLimits(**{"min_free_disk_bytes": 0, **limits}),  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(0),
    )


def test_count_limit_refuses_with_a_french_message_and_loses_nothing(
    tmp_path: Path, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    box = _limited(tmp_path, fake_clock, max_pending_count=2)
    kept = [_queue(box, make_record, seal) for _ in range(2)]
    with pytest.raises(BacklogFull) as info:
        _queue(box, make_record, seal)
    assert info.value.reason is BacklogReason.COUNT
    assert "Enregistrement impossible" in info.value.message_fr
    assert "2" in info.value.message_fr
    with pytest.raises(BacklogFull):
        box.check_admission()
    stats = box.stats()
    assert stats.refusing
    assert stats.alert
    assert stats.refusal_reason is BacklogReason.COUNT
    assert sorted(r.enrolment_id for r in box.next_due(limit=10)) == sorted(kept)
    # Once central acknowledges one, enrolments are accepted again.
    box.mark_acked(kept[0], request_number=request_number_for(3))
    box.check_admission()
    _queue(box, make_record, seal)
    box.close()


def test_bytes_limit(
    tmp_path: Path, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    record = make_record()
    envelope = seal(record)
    box = _limited(tmp_path, fake_clock, max_pending_bytes=int(len(envelope) * 1.5))
    box.enqueue(record.enrolment_id, envelope, meta=_meta(record))
    with pytest.raises(BacklogFull) as info:
        _queue(box, make_record, seal)
    assert info.value.reason is BacklogReason.BYTES
    assert "file d'attente locale est pleine" in info.value.message_fr
    box.close()


def test_age_limit_and_early_alert(
    tmp_path: Path, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    box = _limited(tmp_path, fake_clock, max_oldest_pending_age_s=1000.0, alert_fraction=0.5)
    _queue(box, make_record, seal)
    assert not box.stats().alert
    fake_clock.advance(600)
    stats = box.stats()
    assert stats.alert
    assert not stats.refusing
    assert stats.oldest_pending_age_s == pytest.approx(600)
    fake_clock.advance(500)
    with pytest.raises(BacklogFull) as info:
        _queue(box, make_record, seal)
    assert info.value.reason is BacklogReason.AGE
    assert "jours" in info.value.message_fr
    assert box.stats().refusal_reason is BacklogReason.AGE
    box.close()


def test_free_disk_limit(tmp_path: Path, make_record: MakeRecord, seal: Seal) -> None:
    box = Outbox(tmp_path / "d.db", limits=OutboxLimits(min_free_disk_bytes=2**62))
    with pytest.raises(BacklogFull) as info:
        _queue(box, make_record, seal)
    assert info.value.reason is BacklogReason.DISK
    assert "espace disque" in info.value.message_fr
    assert box.stats().refusing
    assert box.stats().pending_count == 0
    box.close()


def test_count_alert_fraction(
    tmp_path: Path, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    box = _limited(tmp_path, fake_clock, max_pending_count=5, alert_fraction=0.8)
    for _ in range(3):
        _queue(box, make_record, seal)
    assert not box.stats().alert
    _queue(box, make_record, seal)
    assert box.stats().alert
    assert not box.stats().refusing
    assert box.stats().as_dict()["pending_count"] == 4
    box.close()


# --- persistence and schema versions -----------------------------------------------------


def test_rows_survive_reopening(
    tmp_path: Path, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, limits=OutboxLimits(min_free_disk_bytes=0), clock=fake_clock) as box:
        enrolment_id = _queue(box, make_record, seal)
        box.mark_sent(enrolment_id)
    with Outbox(path, limits=OutboxLimits(min_free_disk_bytes=0), clock=fake_clock) as box:
        entry = box.entry(enrolment_id)
        assert entry.state is RowState.SENT
        assert entry.attempts == 1
        assert box.integrity_check() == ["ok"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaVersionError) as info:
        Outbox(path)
    assert info.value.found == 99


def test_migrations_apply_in_order_and_atomically(
    tmp_path: Path, make_record: MakeRecord, seal: Seal
) -> None:
    from sqlite_utils import Database

    path = tmp_path / "m.db"
    with Outbox(path, limits=OutboxLimits(min_free_disk_bytes=0)) as box:
        enrolment_id = _queue(box, make_record, seal)
    conn = sqlite3.connect(path, isolation_level=None)
    db = Database(conn, execute_plugins=False)
    broken = (*MIGRATIONS, ("ALTER TABLE outbox ADD COLUMN note TEXT", "THIS IS NOT SQL"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, path=str(path), migrations=broken)
    assert user_version(db) == 1
    assert "note" not in db["outbox"].columns_dict  # the half-applied migration rolled back
    good = (*MIGRATIONS, ("ALTER TABLE outbox ADD COLUMN note TEXT",))
    assert migrate(db, path=str(path), migrations=good) == (1, 2)
    assert user_version(db) == 2
    assert "note" in db["outbox"].columns_dict
    assert migrate(db, path=str(path), migrations=good) == (2, 2)
    assert (
        db.execute("SELECT count(*) FROM outbox WHERE enrolment_id = ?", [enrolment_id]).fetchone()[
            0
        ]
        == 1
    )
    conn.close()


# --- concurrency --------------------------------------------------------------------------


def test_threads_share_one_outbox(outbox: Outbox, make_record: MakeRecord, seal: Seal) -> None:
    records = [make_record() for _ in range(12)]
    envelopes = [seal(r) for r in records]
    errors: list[BaseException] = []

    def worker(start: int) -> None:
        try:
            for i in range(start, len(records), 3):
                outbox.enqueue(records[i].enrolment_id, envelopes[i], meta=_meta(records[i]))
                outbox.stats()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert {r.enrolment_id for r in outbox.next_due(limit=100)} == {r.enrolment_id for r in records}
    assert outbox.integrity_check() == ["ok"]


def test_two_processes_worth_of_connections_on_one_file(
    tmp_path: Path, make_record: MakeRecord, seal: Seal
) -> None:
    path = tmp_path / "shared.db"
    limits = OutboxLimits(min_free_disk_bytes=0)
    with Outbox(path, limits=limits) as writer, Outbox(path, limits=limits) as reader:
        enrolment_id = _queue(writer, make_record, seal)
        assert reader.entry(enrolment_id).state is RowState.PENDING
        reader.mark_acked(enrolment_id, request_number=request_number_for(9))
        assert writer.entry(enrolment_id).state is RowState.ACKED


async def test_async_outbox_from_the_event_loop(
    outbox: Outbox, make_record: MakeRecord, seal: Seal
) -> None:
    box = AsyncOutbox(outbox)
    records = [make_record() for _ in range(4)]
    await asyncio.gather(*(box.enqueue(r.enrolment_id, seal(r), meta=_meta(r)) for r in records))
    await box.check_admission()
    due = await box.next_due(limit=10)
    assert len(due) == 4
    assert await box.next_due_at() is not None
    for row in due:
        assert await box.mark_sent(row.enrolment_id)
    assert await box.mark_failed(due[0].enrolment_id, "broker down")
    for n, row in enumerate(due):
        assert await box.mark_acked(row.enrolment_id, request_number=request_number_for(n))
    stats = await box.stats()
    assert stats.acked_total == 4
    assert (await box.entry(due[1].enrolment_id)).state is RowState.ACKED
    assert await box.mark_rejected(due[0].enrolment_id, code="stamp_used") is False
    assert await box.purge_expired_receipts() == 0


# --- backoff ------------------------------------------------------------------------------


def test_backoff_bounds() -> None:
    backoff = Backoff(initial_s=1, factor=3, maximum_s=50, jitter=0.2)
    rng = random.Random(5)
    for attempts in range(1, 200):
        cap = min(50.0, 3.0 ** (attempts - 1))
        assert 0.8 * cap <= backoff.delay(attempts, rng) <= cap
    assert Backoff(jitter=0).delay(10**9, rng) == Backoff().maximum_s
    for bad in ({"initial_s": 0}, {"factor": 0.5}, {"jitter": 1.5}, {"maximum_s": 1}):
        with pytest.raises(ValueError, match="backoff"):
            Backoff(**bad)


def test_reopening_purges_expired_receipts(
    tmp_path: Path, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    path = tmp_path / "o.db"
    limits = OutboxLimits(min_free_disk_bytes=0, receipt_retention_s=3600)
    with Outbox(path, limits=limits, clock=fake_clock) as box:
        enrolment_id = _queue(box, make_record, seal)
        box.mark_acked(enrolment_id, request_number=request_number_for(4))
    fake_clock.advance(3601)
    with Outbox(path, limits=limits, clock=fake_clock) as box:
        with pytest.raises(UnknownEnrolmentError):
            box.entry(enrolment_id)
        assert box.stats().receipts_count == 0


def test_batch_forms_commit_together_with_the_single_call_semantics(
    outbox: Outbox, make_record: MakeRecord, seal: Seal
) -> None:
    ids = [_queue(outbox, make_record, seal) for _ in range(3)]
    outbox.mark_acked(ids[1], request_number=request_number_for(1))
    assert outbox.mark_sent_many(ids) == [True, False, True]
    assert [outbox.entry(i).attempts for i in ids] == [1, 0, 1]
    unknown = "0b6a9ff2-8c39-4f5e-9d2a-57ef4c1b7a00"
    with pytest.raises(UnknownEnrolmentError):
        outbox.mark_sent_many([ids[0], unknown])
    assert outbox.entry(ids[0]).attempts == 1  # the batch was rolled back as a whole
    with pytest.raises(ValueError, match="request number"):
        outbox.mark_acked_many([(ids[0], request_number_for(2), None), (ids[2], "BAD", None)])
    assert outbox.entry(ids[0]).state is RowState.SENT
    results = outbox.mark_acked_many(
        [
            (ids[0], request_number_for(2), None),
            (ids[0], request_number_for(2), None),
            (ids[1], request_number_for(1), None),
            (unknown, request_number_for(3), None),
            (ids[2], request_number_for(4), datetime(2026, 6, 2, tzinfo=UTC)),
        ]
    )
    assert results == [True, False, False, False, True]
    assert outbox.stats().acked_total == 3
    assert outbox.entry(ids[2]).acked_at == datetime(2026, 6, 2, tzinfo=UTC)


async def test_async_batch_forms(outbox: Outbox, make_record: MakeRecord, seal: Seal) -> None:
    box = AsyncOutbox(outbox)
    ids = [_queue(outbox, make_record, seal) for _ in range(2)]
    assert await box.mark_sent_many(ids) == [True, True]
    acks = [(i, request_number_for(n), None) for n, i in enumerate(ids)]
    assert await box.mark_acked_many(acks) == [True, True]
    assert await box.mark_acked_many(acks) == [False, False]
