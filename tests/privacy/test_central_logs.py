"""Central's logs and audit trail carry no biometric data and no personal data.

The whole life of requests runs (ingest, a refused enrolment, stage changes, a handover RPC,
an operator lookup, a data report, the retention job) with every logger at DEBUG; then the
log records and the audit file are scanned.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from central.models import Stage
from central.retention import RetentionPolicy, run_retention
from dr_contracts.audit import AuditLog
from dr_contracts.rejections import Rejection
from tests.fixtures.privacy import DEVICE, AuditedKit

PERSONAL = ["Durand", "Camille", "1988-05-17", "12 rue des Lilas", "Évry-Courcouronnes"]


@pytest.mark.parametrize("central_database", ["sqlite"], indirect=True)
def test_logs_and_audit_hold_no_personal_or_biometric_data(
    audited_kit: AuditedKit, caplog: pytest.LogCaptureFixture
) -> None:
    from central.data_report import data_report

    caplog.set_level(logging.DEBUG)
    kit, service = audited_kit.kit, audited_kit.kit.service
    issued = audited_kit.ingest(stage=Stage.AVAILABLE, erase_images=True)
    assert not isinstance(service.handover_templates(issued.number, device_id=DEVICE), Rejection)
    assert not isinstance(service.record_handover(issued.number, device_id=DEVICE), Rejection)
    refused = audited_kit.ingest(stage=Stage.REJECTED)
    again = service.ingest(kit.seal(kit.record(kit.prerequest())), device_id="dr-91228-09")
    assert isinstance(again, Rejection)  # unknown device: refused, and audited
    pre = kit.prerequest()
    assert service.lookup_prerequest(pre.number, device_id=DEVICE) is not None
    data_report(service, issued.number, policy=RetentionPolicy())
    kit.clock.advance(timedelta(days=400))
    run = run_retention(service, RetentionPolicy())
    assert run.done >= 2

    blobs = [b for item in (issued, refused) for b in item.record.biometric_blobs()]
    pieces = [blob[i : i + 24] for blob in blobs for i in (30, len(blob) // 2)]
    text = caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)
    assert [w for w in PERSONAL if w in text] == []
    for piece in pieces:
        assert piece.hex() not in text
        assert repr(piece)[2:30] not in text

    raw = audited_kit.audit_path.read_bytes()
    wal = audited_kit.audit_path.with_name(audited_kit.audit_path.name + "-wal")
    if wal.exists():
        raw += wal.read_bytes()
    assert [w for w in PERSONAL if w.encode() in raw] == []
    assert all(piece not in raw for piece in pieces)
    with AuditLog(audited_kit.audit_path) as audit:
        events = {e.event for e in audit.entries()}
    assert {
        "ingest",
        "ingest_refused",
        "prerequest_lookup",
        "templates_opened_for_handover",
        "handover",
        "stage_changed",
        "data_report",
        "purge_request",
        "retention_run",
    } <= events
