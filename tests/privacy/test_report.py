"""A request's data report: every stored field and deadline, no biometric content; CLI and
HTTP (operator) forms; audited."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from central.cli import main as central_main
from central.config import load_config
from central.data_report import data_report
from central.http import build_app
from central.models import Stage
from central.retention import RetentionPolicy, run_retention, years_after
from central.service import CentralService
from dr_contracts.acks import Ack
from dr_contracts.audit import AuditLog
from dr_contracts.envelope import seal_record
from dr_contracts.identifiers import format_request_number
from dr_contracts.keys import SigningKey
from dr_contracts.rejections import Rejection, RejectionCode
from tests.fixtures.central import sample_form
from tests.fixtures.keys import sample_record
from tests.fixtures.privacy import AuditedKit

POLICY = RetentionPolicy()
TOKEN = "operator-token-0123456789"


def _biometric_forms(blobs: list[bytes]) -> list[str]:
    """Text forms a careless report could carry bytes in: hex and base64 fragments."""
    forms = []
    for blob in blobs:
        piece = blob[30:60]
        forms += [piece.hex(), base64.b64encode(piece).decode()[:30]]
    return forms


def test_report_lists_fields_dates_and_deadlines_without_biometrics(
    audited_kit: AuditedKit,
) -> None:
    kit, service = audited_kit.kit, audited_kit.kit.service
    item = audited_kit.ingest(stage=Stage.HANDED_OVER, erase_images=True)
    handed_over = kit.clock.now
    report = data_report(service, item.number, policy=POLICY)
    assert not isinstance(report, Rejection)
    text = json.dumps(report, ensure_ascii=False)
    assert report["request"]["request_number"] == format_request_number(item.number)
    assert report["request"]["stage"] == "handed_over"
    assert [h["stage"] for h in report["request"]["history"]][-1] == "handed_over"
    assert report["prerequest"]["form"]["surname"] == "Durand"
    fingers = report["biometrics"]["fingers"]
    assert [f["position"] for f in fingers] == ["right_index", "left_index"]
    assert all(f["image_stored"] and f["template_bytes"] > 0 for f in fingers)
    assert report["biometrics"]["erase_images_requested"] is True
    deadlines = report["retention"]
    assert deadlines["request_rule"] == "title_record"
    assert deadlines["request_purged_on"] == years_after(handed_over, 15).isoformat()
    assert deadlines["images_erased_on"] == (handed_over + timedelta(days=90)).isoformat()
    for form in _biometric_forms(list(item.record.biometric_blobs())):
        assert form not in text

    kit.clock.advance(timedelta(days=91))
    run_retention(service, POLICY)
    after = data_report(service, item.number, policy=POLICY)
    assert not isinstance(after, Rejection)
    assert not any(f["image_stored"] for f in after["biometrics"]["fingers"])
    assert [f["template_bytes"] for f in after["biometrics"]["fingers"]] == [
        f["template_bytes"] for f in fingers
    ]
    assert after["biometrics"]["images_erased_at"] is not None

    with AuditLog(audited_kit.audit_path) as audit:
        reports = [e for e in audit.entries() if e.event == "data_report"]
    assert {e.subject for e in reports} == {item.number}
    assert all(e.actor == "operator" for e in reports)


def test_report_refuses_bad_and_unknown_numbers(audited_kit: AuditedKit) -> None:
    service = audited_kit.kit.service
    item = audited_kit.ingest()
    mistyped = item.number[:-1] + ("0" if item.number[-1] != "0" else "1")
    cases = {"XX": RejectionCode.NUMBER_MALFORMED, mistyped: RejectionCode.NUMBER_MISTYPED}
    for number, code in cases.items():
        answer = data_report(service, number, policy=POLICY)
        assert isinstance(answer, Rejection)
        assert answer.code is code
    audited_kit.kit.clock.advance(timedelta(days=400))
    run_retention(service, POLICY)  # abandoned: purged
    answer = data_report(service, item.number, policy=POLICY)
    assert isinstance(answer, Rejection)
    assert answer.code is RejectionCode.NUMBER_UNKNOWN


@pytest.fixture
async def client(
    audited_kit: AuditedKit,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = build_app(audited_kit.kit.service, operator_token=TOKEN, retention=POLICY)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize("central_database", ["sqlite"], indirect=True)
async def test_report_over_http_needs_the_operator_token(
    audited_kit: AuditedKit, client: TestClient[web.Request, web.Application]
) -> None:
    item = audited_kit.ingest()
    path = f"/api/v1/requests/{format_request_number(item.number)}/report"
    assert (await client.get(path)).status == 401
    response = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    body = await response.json()
    assert body["request"]["enrolment_id"] == item.record.enrolment_id
    assert body["retention"]["provisional"] is True
    unknown = await client.get(
        "/api/v1/requests/AAAAAAAAAAAA/report", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert unknown.status in (400, 404)


def test_report_cli_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "central"
    assert central_main(["--data-dir", str(data_dir), "init"]) == 0
    device = SigningKey.generate()
    with CentralService.from_config(load_config(None, env={}, data_dir=data_dir)) as service:
        service.register_device("dr-91228-01", commune_name="Évry", signing_key=device.public_key)
        pre = service.create_prerequest(sample_form())
        import random

        record = sample_record(
            random.Random(7),
            prerequest_number=pre.number,
            reason=pre.form.reason,
            completed_at=service.now(),
            started_at=service.now() - timedelta(minutes=5),
        )
        ack = service.ingest(
            seal_record(record, recipient=service.recipient_public_key, signer=device),
            device_id="dr-91228-01",
        )
        assert isinstance(ack, Ack), ack
    capsys.readouterr()
    assert central_main(["--data-dir", str(data_dir), "report", ack.request_number]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["request"]["device_id"] == "dr-91228-01"
    assert report["biometrics"]["erase_images_requested"] is False
    assert central_main(["--data-dir", str(data_dir), "report", "AAAA-AAAA-AAAA"]) == 1
    assert "number_" in capsys.readouterr().err
    # dry run then run, from the CLI, are audited too
    assert (
        central_main(["--data-dir", str(data_dir), "retention", "run", "--dry-run", "--json"]) == 0
    )
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True
    assert dry["actions"] == []
    with AuditLog(data_dir / "audit.sqlite3") as audit:
        events = [e.event for e in audit.entries()]
    assert events.count("ingest") == 1
    assert "data_report" in events
    assert events[-1] == "retention_run"
