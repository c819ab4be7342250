"""No biometric plaintext in the outbox's files (database, WAL, shm) nor in the logs; and once
central acknowledges, not even the sealed payload stays on disk."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dr_contracts.enrolment import EnrolmentRecord
from dr_contracts.identifiers import request_number_for
from edge.queue import Outbox, OutboxLimits, OutboxMeta
from tests.fixtures.queue import FakeClock

MakeRecord = Callable[..., EnrolmentRecord]
Seal = Callable[[EnrolmentRecord], bytes]


def _files(db: Path) -> list[Path]:
    return [
        p
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
        if p.exists()
    ]


def _disk_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in _files(db))


def _needles(record: EnrolmentRecord) -> Iterator[bytes]:
    """Whole templates and images, and 48-byte windows inside them (a partial copy counts)."""
    rng = random.Random(record.enrolment_id)
    for blob in record.biometric_blobs():
        yield blob
        for _ in range(8):
            start = rng.randrange(16, len(blob) - 48)
            yield blob[start : start + 48]


def _log_forms(needle: bytes) -> list[str]:
    return [needle.hex(), repr(needle)[2:-1][:60], needle[:24].hex()]


def test_no_biometric_plaintext_on_disk_or_in_logs(
    tmp_path: Path,
    make_record: MakeRecord,
    seal: Seal,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "outbox.db"
    box = Outbox(db, limits=OutboxLimits(min_free_disk_bytes=0), clock=fake_clock)
    records = [make_record() for _ in range(3)]
    envelopes = [seal(r) for r in records]
    for record, envelope in zip(records, envelopes, strict=True):
        box.enqueue(
            record.enrolment_id,
            envelope,
            meta=OutboxMeta(prerequest_number=record.prerequest_number),
        )
        logging.getLogger("edge.queue").debug("queued %r", record)  # a careless caller's log
    for row in box.next_due(limit=10):
        box.mark_sent(row.enrolment_id)
    box.mark_failed(records[0].enrolment_id, "timeout")
    box.mark_acked(records[1].enrolment_id, request_number=request_number_for(1))

    on_disk = _disk_bytes(db)
    # Control: the scan does see what is there (the sealed bytes of a pending row).
    assert envelopes[2][5000:5064] in on_disk
    for record in records:
        for needle in _needles(record):
            assert needle not in on_disk
            for form in _log_forms(needle):
                assert form not in caplog.text
    box.close()
    on_disk = _disk_bytes(db)
    for record in records:
        for needle in _needles(record):
            assert needle not in on_disk


def test_acknowledged_payload_is_erased_from_the_files(
    tmp_path: Path, make_record: MakeRecord, seal: Seal, fake_clock: FakeClock
) -> None:
    db = tmp_path / "outbox.db"
    box = Outbox(db, limits=OutboxLimits(min_free_disk_bytes=0), clock=fake_clock)
    acked, kept = make_record(), make_record()
    acked_envelope, kept_envelope = seal(acked), seal(kept)
    for record, envelope in ((acked, acked_envelope), (kept, kept_envelope)):
        box.enqueue(
            record.enrolment_id,
            envelope,
            meta=OutboxMeta(prerequest_number=record.prerequest_number),
        )
    box.checkpoint()  # the payload is now in the main database file, not only in the WAL
    chunks = [acked_envelope[i : i + 64] for i in range(2000, len(acked_envelope) - 64, 9973)]
    assert any(chunk in _disk_bytes(db) for chunk in chunks)  # control

    box.mark_acked(acked.enrolment_id, request_number=request_number_for(5))
    box.purge_expired_receipts()  # keeps the fresh receipt, truncates the WAL
    on_disk = _disk_bytes(db)
    for chunk in chunks:
        assert chunk not in on_disk
    assert kept_envelope[3000:3064] in on_disk
    assert box.entry(acked.enrolment_id).request_number == request_number_for(5)
    box.close()
