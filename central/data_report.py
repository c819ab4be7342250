"""A request's data report, for the citizen or the data protection officer.

``data_report(service, number, policy=...)`` says what central stores about one CNI request:
every field (the pre-request form included, since the report is the citizen's own data), the
dates, and when each part will be deleted under the retention policy. Biometric data is
described, never given: finger positions, template sizes, whether the image is still stored,
quality scores. Making a report opens the encrypted record, so it is audited (``data_report``).

Served by ``dr-central report NUMBER`` (JSON) and ``GET /api/v1/requests/{number}/report``
(operator token).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from central import audit_hooks as audit_events
from central.models import STAGE_FR, PreRequestForm, Stage
from central.retention import (
    RULE_ABANDONED,
    RULE_IMAGES,
    RULE_REJECTED,
    RULE_TITLE,
    RetentionPolicy,
    stored_templates,
    years_after,
)
from dr_contracts.identifiers import (
    IdentifierError,
    MistypedIdentifierError,
    format_request_number,
    parse_request_number,
)
from dr_contracts.rejections import Rejection, RejectionCode

if TYPE_CHECKING:
    from central.service import CentralService

REPORT_VERSION: Final = 1


def _iso(value: str | None) -> str | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC).isoformat()


def data_report(
    service: CentralService,
    number: str,
    *,
    policy: RetentionPolicy,
    actor: str = audit_events.OPERATOR,
) -> dict[str, Any] | Rejection:
    """The report (a JSON-ready dict), or a rejection for a malformed, mistyped or unknown
    number (a purged request is unknown: nothing is stored about it any more)."""
    try:
        parsed = parse_request_number(number)
    except MistypedIdentifierError:
        return Rejection(RejectionCode.NUMBER_MISTYPED)
    except IdentifierError as exc:
        return Rejection(RejectionCode.NUMBER_MALFORMED, exc.reason)
    with service.store.transaction(write=False) as tx:
        request = tx.one(
            "SELECT r.enrolment_id, r.device_id, r.commune_code, r.prerequest_number,"
            " r.stamp_number, r.agent_id, r.leased, r.stage, r.stage_at, r.received_at,"
            " r.recorded_at, t.erase_images, t.images_erased_at, b.key_id"
            " FROM requests r LEFT JOIN retention t ON t.enrolment_id = r.enrolment_id"
            " LEFT JOIN biometrics b ON b.enrolment_id = r.enrolment_id"
            " WHERE r.request_number = ?",
            (parsed,),
        )
        if request is None:
            service.audit_event(
                audit_events.DATA_REPORT, actor=actor, subject=parsed, details={"found": False}
            )
            return Rejection(RejectionCode.NUMBER_UNKNOWN)
        history = tx.all(
            "SELECT stage, at, note FROM stage_history WHERE request_number = ? ORDER BY seq",
            (parsed,),
        )
        prerequest = tx.one(
            "SELECT number, status, fields, created_at, expires_at, consumed_at"
            " FROM prerequests WHERE number = ?",
            (request[3],),
        )
        stamp = (
            None
            if request[4] is None
            else tx.one(
                "SELECT number, amount_cents, state, used_at FROM stamps WHERE number = ?",
                (request[4],),
            )
        )
    service.audit_event(
        audit_events.DATA_REPORT, actor=actor, subject=parsed, details={"found": True}
    )
    (
        enrolment_id,
        device_id,
        commune_code,
        _,
        _,
        agent_id,
        leased,
        stage_text,
        stage_at,
        received_at,
        recorded_at,
        erase_images,
        images_erased_at,
        key_id,
    ) = request
    stage = Stage(stage_text)
    biometrics = _biometrics(
        service, parsed, key_id=key_id, images_erased=images_erased_at is not None, actor=actor
    )
    biometrics["erase_images_requested"] = None if erase_images is None else bool(erase_images)
    biometrics["images_erased_at"] = _iso(images_erased_at)
    return {
        "report_version": REPORT_VERSION,
        "generated_at": service.now().astimezone(UTC).isoformat(),
        "request": {
            "request_number": format_request_number(parsed),
            "enrolment_id": enrolment_id,
            "stage": stage.value,
            "stage_fr": STAGE_FR[stage],
            "stage_at": _iso(stage_at),
            "commune_code": commune_code,
            "device_id": device_id,
            "agent_id": agent_id,
            "number_leased_offline": bool(leased),
            "received_at": _iso(received_at),
            "recorded_at": _iso(recorded_at),
            "history": [
                {"stage": s, "stage_fr": STAGE_FR[Stage(s)], "at": _iso(at), "note": note}
                for s, at, note in history
            ],
        },
        "prerequest": None
        if prerequest is None
        else {
            "number": prerequest[0],
            "status": prerequest[1],
            "created_at": _iso(prerequest[3]),
            "expires_at": _iso(prerequest[4]),
            "consumed_at": _iso(prerequest[5]),
            "form": PreRequestForm.from_dict(json.loads(prerequest[2])).to_dict(),
        },
        "tax_stamp": None
        if stamp is None
        else {
            "number": stamp[0],
            "amount_cents": int(stamp[1]),
            "state": stamp[2],
            "used_at": _iso(stamp[3]),
        },
        "biometrics": biometrics,
        "retention": _deadlines(
            stage,
            datetime.fromisoformat(stage_at),
            erase_images=bool(erase_images),
            images_erased=images_erased_at is not None,
            policy=policy,
        ),
    }


def _biometrics(
    service: CentralService, number: str, *, key_id: str | None, images_erased: bool, actor: str
) -> dict[str, Any]:
    if key_id is None:
        return {"stored": False, "fingers": []}
    fingers: list[dict[str, Any]] = []
    if not images_erased:
        record = service.enrolment_record(number, actor=actor, event=audit_events.DATA_REPORT)
        for finger in record.fingers:
            fingers.append(
                {
                    "position": finger.position.name.lower(),
                    "captured": finger.captured,
                    "exception": None if finger.exception is None else finger.exception.value,
                    "attempts": finger.attempts,
                    "template_bytes": len(finger.template or b""),
                    "image_stored": finger.image_png is not None,
                    "image_bytes": len(finger.image_png or b""),
                    "quality_score": None if finger.quality is None else finger.quality.score,
                }
            )
    else:
        for template in stored_templates(
            service, number, actor=actor, event=audit_events.DATA_REPORT
        ):
            fingers.append(
                {
                    "position": template.position.name.lower(),
                    "captured": True,
                    "exception": None,
                    "template_bytes": len(template.template),
                    "image_stored": False,
                    "image_bytes": 0,
                    "quality_score": template.quality,
                }
            )
    return {
        "stored": True,
        "encryption": "AES-256-GCM",
        "storage_key_id": key_id,
        "template_format": "ISO/IEC 19794-2:2005",
        "fingers": fingers,
    }


def _deadlines(
    stage: Stage,
    stage_at: datetime,
    *,
    erase_images: bool,
    images_erased: bool,
    policy: RetentionPolicy,
) -> dict[str, Any]:
    """When each part goes. Before a final stage the dates are provisional: they assume the
    request stays where it is (the abandoned rule)."""
    images_due: str | None = None
    if erase_images and not images_erased and stage in (Stage.HANDED_OVER, Stage.REJECTED):
        images_due = (stage_at + timedelta(days=policy.images_after_decision_days)).isoformat()
    if stage is Stage.HANDED_OVER:
        rule, purge = RULE_TITLE, years_after(stage_at, policy.title_record_years)
    elif stage is Stage.REJECTED:
        rule, purge = RULE_REJECTED, stage_at + timedelta(days=policy.rejected_after_days)
    else:
        rule, purge = RULE_ABANDONED, stage_at + timedelta(days=policy.abandoned_after_days)
    return {
        "request_purged_on": purge.astimezone(UTC).isoformat(),
        "request_rule": rule,
        "provisional": stage not in (Stage.HANDED_OVER, Stage.REJECTED),
        "images_rule": RULE_IMAGES if erase_images else None,
        "images_erased_on": images_due,
        "images_note": (
            "erased" if images_erased else ("on request" if erase_images else "kept with record")
        ),
        "policy": policy.to_dict(),
    }


__all__ = ["data_report"]
