"""Request stages, the status lookup, and the card handover (templates sealed back)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from central.models import Stage, StageTransitionError
from dr_contracts.acks import Ack
from dr_contracts.handover import HandoverError, open_handover
from dr_contracts.identifiers import format_request_number
from dr_contracts.rejections import RejectedError, Rejection, RejectionCode
from tests.fixtures.central import CentralKit

DEVICE = "dr-91228-01"


@pytest.fixture
def recorded(central_kit: CentralKit) -> tuple[CentralKit, Ack]:
    central_kit.add_device(DEVICE)
    ack = central_kit.service.ingest(central_kit.enrolment(), device_id=DEVICE)
    assert isinstance(ack, Ack)
    return central_kit, ack


def test_stages_move_forward_with_history(recorded: tuple[CentralKit, Ack]) -> None:
    kit, ack = recorded
    for stage in (Stage.UNDER_REVIEW, Stage.IN_PRODUCTION, Stage.AVAILABLE):
        kit.clock.advance(timedelta(days=3))
        status = kit.service.advance_status(ack.request_number, stage, note="ok")
        assert status.stage is stage
    status = kit.service.request_status(format_request_number(ack.request_number).lower())
    assert not isinstance(status, Rejection)
    assert [e.stage for e in status.history] == [
        Stage.RECEIVED,
        Stage.UNDER_REVIEW,
        Stage.IN_PRODUCTION,
        Stage.AVAILABLE,
    ]
    assert status.history[0].at < status.history[-1].at
    with pytest.raises(StageTransitionError):
        kit.service.advance_status(ack.request_number, Stage.UNDER_REVIEW)


def test_rejected_is_final(recorded: tuple[CentralKit, Ack]) -> None:
    kit, ack = recorded
    kit.service.advance_status(ack.request_number, Stage.REJECTED, note="pièce manquante")
    with pytest.raises(StageTransitionError):
        kit.service.advance_status(ack.request_number, Stage.UNDER_REVIEW)


def test_mistyped_unknown_malformed(recorded: tuple[CentralKit, Ack]) -> None:
    kit, ack = recorded
    number = ack.request_number
    typo = number[:5] + ("X" if number[5] != "X" else "Y") + number[6:]
    swapped = number[:2] + number[3] + number[2] + number[4:]
    for wrong in (typo, swapped):
        if wrong == number:
            continue
        answer = kit.service.request_status(wrong)
        assert isinstance(answer, Rejection)
        assert answer.code is RejectionCode.NUMBER_MISTYPED
    from dr_contracts.identifiers import request_number_for

    unknown = kit.service.request_status(request_number_for(10**9))
    assert isinstance(unknown, Rejection)
    assert unknown.code is RejectionCode.NUMBER_UNKNOWN
    short = kit.service.request_status("ABC")
    assert isinstance(short, Rejection)
    assert short.code is RejectionCode.NUMBER_MALFORMED
    with pytest.raises(RejectedError):
        kit.service.advance_status(typo, Stage.UNDER_REVIEW)


def test_handover_identity_check_and_record(recorded: tuple[CentralKit, Ack]) -> None:
    kit, ack = recorded
    number = ack.request_number
    early = kit.service.handover_templates(number, device_id=DEVICE)
    assert isinstance(early, Rejection)
    assert early.code is RejectionCode.NOT_AVAILABLE_FOR_HANDOVER
    for stage in (Stage.UNDER_REVIEW, Stage.IN_PRODUCTION, Stage.AVAILABLE):
        kit.service.advance_status(number, stage)
    sealed = kit.service.handover_templates(number, device_id=DEVICE)
    assert isinstance(sealed, bytes)
    device = kit.devices[DEVICE]
    templates = open_handover(
        sealed, device_key=device.handover, device_id=DEVICE, request_number=number
    )
    record = kit.service.enrolment_record(number)
    assert [(t.position, t.template) for t in templates] == [
        (f.position, f.template) for f in record.captured_fingers
    ]
    # Sealed for this device and this request only.
    with pytest.raises(HandoverError):
        open_handover(
            sealed, device_key=device.handover, device_id="dr-91228-02", request_number=number
        )
    other = kit.add_device("dr-91228-02")
    with pytest.raises(HandoverError):
        open_handover(sealed, device_key=other.handover, device_id=DEVICE, request_number=number)
    kit.add_device("dr-75056-01", commune="Paris")
    elsewhere = kit.service.record_handover(number, device_id="dr-75056-01")
    assert isinstance(elsewhere, Rejection)
    assert elsewhere.code is RejectionCode.WRONG_MAIRIE
    done = kit.service.record_handover(number, device_id="dr-91228-02")
    assert not isinstance(done, Rejection)
    assert done.stage is Stage.HANDED_OVER
    again = kit.service.record_handover(number, device_id=DEVICE)
    assert isinstance(again, Rejection)
    assert again.code is RejectionCode.NOT_AVAILABLE_FOR_HANDOVER


def test_prerequest_lookup_gives_the_agent_fields(central_kit: CentralKit) -> None:
    kit = central_kit
    kit.add_device(DEVICE)
    pre = kit.prerequest()
    typed = f"{pre.number[:4].lower()}-{pre.number[4:]}"
    found = kit.service.lookup_prerequest(typed, device_id=DEVICE)
    assert not isinstance(found, Rejection)
    view = found.to_dict()
    assert view["status"] == "validated"
    assert view["form"]["surname"] == "Durand"
    assert view["form"]["birth_date"] == "1988-05-17"
    assert view["needs_stamp"] is False
    for number, code in (
        ("ZZZZZZZZZ0", RejectionCode.PREREQUEST_UNKNOWN),
        ("ABC", RejectionCode.PREREQUEST_MALFORMED),
    ):
        answer = kit.service.lookup_prerequest(number, device_id=DEVICE)
        assert isinstance(answer, Rejection)
        assert answer.code is code
        assert answer.message_fr
    unknown_device = kit.service.lookup_prerequest(pre.number, device_id="dr-91228-09")
    assert isinstance(unknown_device, Rejection)
    assert unknown_device.code is RejectionCode.UNKNOWN_DEVICE
