"""The retention job over the real store (SQLite and PostgreSQL) with a fake clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from central.models import Stage
from central.retention import (
    RetentionPolicy,
    plan_retention,
    run_retention,
    stored_templates,
    years_after,
)
from central.service import CentralService
from dr_contracts.audit import AuditLog
from dr_contracts.enrolment import RequestReason
from dr_contracts.rejections import Rejection, RejectionCode
from tests.fixtures.privacy import AuditedKit

POLICY = RetentionPolicy(
    title_record_years=15,
    images_after_decision_days=90,
    rejected_after_days=200,
    abandoned_after_days=400,
    unused_prerequest_after_days=30,
)


def _rows(service: CentralService, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with service.store.transaction(write=False) as tx:
        return tx.all(sql, params)


def _gone(service: CentralService, number: str, enrolment_id: str, prerequest: str) -> bool:
    checks = [
        ("SELECT 1 FROM requests WHERE request_number = ?", number),
        ("SELECT 1 FROM stage_history WHERE request_number = ?", number),
        ("SELECT 1 FROM biometrics WHERE enrolment_id = ?", enrolment_id),
        ("SELECT 1 FROM retention WHERE enrolment_id = ?", enrolment_id),
        ("SELECT 1 FROM prerequests WHERE number = ?", prerequest),
    ]
    return all(not _rows(service, sql, (value,)) for sql, value in checks)


def _events(kit: AuditedKit) -> list[tuple[str, str, dict[str, Any]]]:
    with AuditLog(kit.audit_path) as audit:
        return [(e.event, e.subject, dict(e.details)) for e in audit.entries()]


def test_policy_from_mapping_validates() -> None:
    assert RetentionPolicy.from_mapping({"title_record_years": 10}).title_record_years == 10
    with pytest.raises(ValueError, match="unknown key"):
        RetentionPolicy.from_mapping({"forever": 1})
    with pytest.raises(ValueError, match="positive"):
        RetentionPolicy(images_after_decision_days=0)


def test_images_erased_90_days_after_handover_only_when_asked(audited_kit: AuditedKit) -> None:
    kit, service = audited_kit.kit, audited_kit.kit.service
    asked = audited_kit.ingest(stage=Stage.HANDED_OVER, erase_images=True)
    not_asked = audited_kit.ingest(stage=Stage.HANDED_OVER, erase_images=False)
    pending = audited_kit.ingest(stage=Stage.AVAILABLE, erase_images=True)

    kit.clock.advance(timedelta(days=89))
    assert run_retention(service, POLICY).done == 0

    kit.clock.advance(timedelta(days=2))
    dry = run_retention(service, POLICY, dry_run=True)
    assert [(a.kind, a.subject) for a in dry.actions] == [("images", asked.number)]
    assert dry.done == 0
    assert service.enrolment_record(asked.number).fingers[0].image_png is not None

    run = run_retention(service, POLICY)
    assert run.done == 1
    # The templates stay, byte for byte; the images are gone from the stored row.
    kept = stored_templates(service, asked.number)
    expected = {f.position: f.template for f in asked.record.captured_fingers}
    assert {t.position: t.template for t in kept} == expected
    with pytest.raises(Exception):  # noqa: B017,PT011  (the whole record cannot be opened any more)
        service.enrolment_record(asked.number)
    # The others keep their images.
    for other in (not_asked, pending):
        record = service.enrolment_record(other.number)
        assert all(f.image_png is not None for f in record.captured_fingers)
    assert run_retention(service, POLICY).done == 0  # idempotent
    events = _events(audited_kit)
    purges = [(event, subject) for event, subject, _ in events if event.startswith("purge")]
    assert purges == [("purge_images", asked.number)]


def test_images_erased_after_refusal(audited_kit: AuditedKit) -> None:
    kit, service = audited_kit.kit, audited_kit.kit.service
    refused = audited_kit.ingest(stage=Stage.REJECTED, erase_images=True)
    kit.clock.advance(timedelta(days=91))
    run = run_retention(service, POLICY)
    assert [(a.kind, a.rule) for a in run.actions] == [("images", "images_after_decision")]
    assert len(stored_templates(service, refused.number)) == 2


def test_title_record_kept_15_years_after_handover_then_purged(audited_kit: AuditedKit) -> None:
    kit, service = audited_kit.kit, audited_kit.kit.service
    kit.add_device("dr-91228-01")
    stamp = service.create_stamp()
    pre = kit.prerequest(reason=RequestReason.LOSS)
    record = kit.record(pre, tax_stamp_number=stamp.number)
    ack = service.ingest(kit.seal(record), device_id="dr-91228-01")
    assert not isinstance(ack, Rejection), ack
    for stage in (Stage.UNDER_REVIEW, Stage.IN_PRODUCTION, Stage.AVAILABLE, Stage.HANDED_OVER):
        service.advance_status(ack.request_number, stage)
    handed_over = kit.clock.now

    kit.clock.now = years_after(handed_over, 15) - timedelta(days=1)
    assert run_retention(service, POLICY).done == 0
    assert len(stored_templates(service, ack.request_number)) == 2

    kit.clock.now = years_after(handed_over, 15) + timedelta(seconds=1)
    run = run_retention(service, POLICY)
    assert [(a.kind, a.rule) for a in run.actions] == [("request", "title_record")]
    assert run.done == 1
    assert _gone(service, ack.request_number, record.enrolment_id, pre.number)
    status = service.request_status(ack.request_number)
    assert isinstance(status, Rejection)
    assert status.code is RejectionCode.NUMBER_UNKNOWN
    # The stamp (a payment record) stays, unlinked from the purged request.
    assert _rows(
        service, "SELECT state, request_number FROM stamps WHERE number = ?", (stamp.number,)
    ) == [("used", None)]
    event = [e for e in _events(audited_kit) if e[0] == "purge_request"]
    assert event == [
        (
            "purge_request",
            ack.request_number,
            {"rule": "title_record", "since": handed_over.date().isoformat()},
        )
    ]


def test_rejected_and_abandoned_requests_purged_after_their_periods(
    audited_kit: AuditedKit,
) -> None:
    kit, service = audited_kit.kit, audited_kit.kit.service
    refused = audited_kit.ingest(stage=Stage.REJECTED)
    stalled = audited_kit.ingest(stage=Stage.UNDER_REVIEW)
    uncollected = audited_kit.ingest(stage=Stage.AVAILABLE)
    issued = audited_kit.ingest(stage=Stage.HANDED_OVER)

    kit.clock.advance(timedelta(days=199))
    assert run_retention(service, POLICY).done == 0
    kit.clock.advance(timedelta(days=2))
    run = run_retention(service, POLICY)
    assert [(a.subject, a.rule) for a in run.actions] == [(refused.number, "rejected")]

    # A stage change restarts the abandoned clock.
    kit.clock.advance(timedelta(days=150))
    service.advance_status(stalled.number, Stage.IN_PRODUCTION)
    kit.clock.advance(timedelta(days=50))  # 401 days after the others' last change
    run = run_retention(service, POLICY)
    assert [(a.subject, a.rule) for a in run.actions] == [(uncollected.number, "abandoned")]
    remaining = {row[0] for row in _rows(service, "SELECT request_number FROM requests")}
    assert remaining == {stalled.number, issued.number}
    for gone in (refused, uncollected):
        assert _gone(service, gone.number, gone.record.enrolment_id, gone.record.prerequest_number)


def test_unused_prerequests_purged_after_expiry(audited_kit: AuditedKit) -> None:
    kit, service = audited_kit.kit, audited_kit.kit.service
    unused = kit.prerequest()
    used = audited_kit.ingest()
    kit.clock.now = unused.expires_at + timedelta(days=29)
    assert not [
        a for a in plan_retention(service, POLICY, now=kit.clock.now) if a.kind == "prerequest"
    ]
    kit.clock.now = unused.expires_at + timedelta(days=31)
    run = run_retention(service, POLICY)
    assert [(a.kind, a.subject) for a in run.actions if a.kind == "prerequest"] == [
        ("prerequest", unused.number)
    ]
    assert service.get_prerequest(unused.number) is None
    assert service.get_prerequest(used.record.prerequest_number) is not None


def test_a_request_moved_between_plan_and_purge_is_left_alone(audited_kit: AuditedKit) -> None:
    from central.retention import _execute  # the job's one-action step

    kit, service = audited_kit.kit, audited_kit.kit.service
    stalled = audited_kit.ingest(stage=Stage.UNDER_REVIEW)
    kit.clock.advance(timedelta(days=401))
    [action] = plan_retention(service, POLICY, now=kit.clock.now)
    service.advance_status(stalled.number, Stage.IN_PRODUCTION)  # an operator, meanwhile
    assert not _execute(service, action, now=kit.clock.now)
    assert service.enrolment_record(stalled.number).enrolment_id == stalled.record.enrolment_id


def test_ingest_records_the_applicants_choice(audited_kit: AuditedKit) -> None:
    service = audited_kit.kit.service
    asked = audited_kit.ingest(erase_images=True)
    not_asked = audited_kit.ingest()
    rows = dict(_rows(service, "SELECT enrolment_id, erase_images FROM retention"))
    assert rows == {asked.record.enrolment_id: 1, not_asked.record.enrolment_id: 0}
    assert service.enrolment_record(asked.number).erase_images_after_decision is True


async def test_periodic_job_runs_at_start_and_stops_cleanly(
    audited_kit: AuditedKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import contextlib
    import threading

    import central.retention as retention

    kit, service = audited_kit.kit, audited_kit.kit.service
    refused = audited_kit.ingest(stage=Stage.REJECTED)
    kit.clock.advance(timedelta(days=201))
    finished = threading.Event()
    real = retention.run_retention

    def observed(*args: Any, **kwargs: Any) -> retention.RetentionRun:
        try:
            return real(*args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(retention, "run_retention", observed)
    task = asyncio.create_task(retention.retention_loop(service, POLICY))
    try:
        assert await asyncio.to_thread(finished.wait, 60)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    status = service.request_status(refused.number)
    assert isinstance(status, Rejection)
    assert status.code is RejectionCode.NUMBER_UNKNOWN


def test_stop_flag_ends_a_run_between_deletions(audited_kit: AuditedKit) -> None:
    import threading

    kit, service = audited_kit.kit, audited_kit.kit.service
    for _ in range(2):
        audited_kit.ingest(stage=Stage.REJECTED)
    kit.clock.advance(timedelta(days=201))
    stop = threading.Event()
    stop.set()
    run = run_retention(service, POLICY, stop=stop)
    assert (len(run.actions), run.done, run.skipped) == (2, 0, 2)
    assert run_retention(service, POLICY).done == 2
