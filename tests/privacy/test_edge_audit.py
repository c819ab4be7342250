"""The DR's outbox events reach the audit trail: sent, payload deleted on ack or refusal,
receipts purged; once per real change, in one verifiable chain with the station's events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dr_contracts.audit import AuditLog, key_id
from dr_contracts.enrolment import EnrolmentRecord
from dr_contracts.identifiers import request_number_for
from dr_contracts.keys import SigningKey
from edge.audit_hooks import AuditedOutbox, OutboxAudit
from edge.queue import Outbox, OutboxLimits, OutboxMeta
from tests.fixtures.queue import FakeClock

NUMBER = request_number_for(42)


async def test_outbox_changes_are_audited_once(
    outbox: Outbox,
    make_record: Callable[..., EnrolmentRecord],
    seal: Callable[[EnrolmentRecord], bytes],
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.sqlite3"
    device = SigningKey.generate()
    with AuditLog(path) as station_audit:  # the station's own events share the file
        station_audit.append("enrolment_queued", actor="agent.test", subject="session-1")
    audited = AuditedOutbox(outbox, audit=OutboxAudit(path, signer=device.private_key))
    records = [make_record() for _ in range(3)]
    for record in records:
        await audited.enqueue(
            record.enrolment_id,
            seal(record),
            meta=OutboxMeta(prerequest_number=record.prerequest_number),
        )
    ids = [r.enrolment_id for r in records]
    assert await audited.mark_sent_many(ids) == [True, True, True]
    assert await audited.mark_acked_many([(ids[0], NUMBER, None)]) == [True]
    assert await audited.mark_acked(ids[0], request_number=NUMBER) is False  # repeated
    assert await audited.mark_rejected(ids[1], code="invalid_record") is True
    with AuditLog(path) as audit:
        entries = list(audit.entries())
        report = audit.verify({key_id(device.public_key): device.public_key})
    assert report.ok, report.problems
    assert report.signed_heads >= 1
    assert [(e.event, e.subject) for e in entries] == [
        ("enrolment_queued", "session-1"),
        ("enrolment_sent", ids[0]),
        ("enrolment_sent", ids[1]),
        ("enrolment_sent", ids[2]),
        ("payload_deleted_on_ack", ids[0]),
        ("payload_deleted_on_rejection", ids[1]),
    ]
    assert entries[4].details == {"request_number": NUMBER}
    # The payloads really are gone for the closed rows, not for the open one.
    rows = outbox.next_due(limit=10)
    assert {row.enrolment_id for row in rows} <= {ids[2]}


async def test_receipt_metadata_purged_after_its_period_and_audited(
    outbox: Outbox,
    fake_clock: FakeClock,
    make_record: Callable[..., EnrolmentRecord],
    seal: Callable[[EnrolmentRecord], bytes],
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.sqlite3"
    audited = AuditedOutbox(outbox, audit=OutboxAudit(path))
    record = make_record()
    await audited.enqueue(
        record.enrolment_id,
        seal(record),
        meta=OutboxMeta(prerequest_number=record.prerequest_number),
    )
    await audited.mark_sent(record.enrolment_id)
    await audited.mark_acked(record.enrolment_id, request_number=NUMBER)
    files = [outbox.path, Path(f"{outbox.path}-wal")]

    def holds_receipt() -> bool:
        data = b"".join(p.read_bytes() for p in files if p.exists())
        return record.prerequest_number.encode() in data or NUMBER.encode() in data

    assert holds_receipt()  # control: the receipt is on disk while it is kept
    fake_clock.advance(OutboxLimits().receipt_retention_s - 60)  # the fixture's period
    assert await audited.purge_expired_receipts() == 0
    fake_clock.advance(120)
    assert await audited.purge_expired_receipts() == 1
    outbox.checkpoint()
    assert not holds_receipt()
    with AuditLog(path) as audit:
        purged = [e for e in audit.entries() if e.event == "receipts_purged"]
    assert [e.details for e in purged] == [{"count": 1}]
