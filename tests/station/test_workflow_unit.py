"""The workflow state machine over fake ports (the real-parts tests are in test_e2e*.py)."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dr_contracts.qr import encode_prerequest_qr
from edge.biometrics.types import FingerPosition as P
from edge.station.errors import (
    CentralUnavailableError,
    DocumentsIncompleteError,
    NoRequestNumberError,
    PrerequestRefusedError,
    QueueFullError,
    SessionNotFoundError,
    StampRefusedError,
    WrongStepError,
)
from edge.station.ports import PrerequestInfo
from tests.fixtures.station import StationKit, adult

NUMBER = "AB12CD34EF"


async def _to_fingers(
    kit: StationKit,
    *,
    reason: str = "first_request",
    stamp: str | None = None,
    info: PrerequestInfo | None = None,
) -> str:
    kit.central.prerequests[NUMBER] = info or adult(NUMBER, reason=reason)
    s = await kit.station.start("agent1")
    await kit.station.recall(s["id"], "agent1", number="ab12-cd34 ef")
    view = await kit.station.documents(
        s["id"], "agent1", checked=["photo", "proof_of_address"], stamp=stamp
    )
    assert view["step"] in {"fingers", "summary"}
    return str(s["id"])


async def _capture(kit: StationKit, sid: str, identity: int, quality: int = 80) -> dict[str, Any]:
    kit.sensor.put(identity, quality)
    return await kit.station.capture(sid, "agent1")


async def test_happy_path_two_index_fingers(kit: StationKit) -> None:
    sid = await _to_fingers(kit)
    v = await _capture(kit, sid, 11)
    assert v["last_capture"]["outcome"] == "retry"
    assert v["fingers"]["current"]["position"] == P.RIGHT_INDEX
    v = await _capture(kit, sid, 11, 90)
    assert v["last_capture"]["outcome"] == "captured"
    assert v["fingers"]["current"]["position"] == P.LEFT_INDEX
    await _capture(kit, sid, 22)
    v = await _capture(kit, sid, 22)
    assert v["step"] == "summary"
    v = await kit.station.confirm(sid, "agent1")
    assert v["step"] == "done"
    draft = kit.sink.drafts[0]
    assert [f.position for f in draft.fingers] == [P.RIGHT_INDEX, P.LEFT_INDEX]
    assert draft.fingers[0].quality == 90  # the best capture is kept
    assert draft.request_number == v["request_number"]
    assert draft.documents == ("photo", "proof_of_address")
    assert kit.store.count_captures() == 0  # nothing biometric stays once sealed
    assert (await asyncio.to_thread(Path(v["receipt"]).read_bytes))[:5] == b"%PDF-"


async def test_poor_quality_falls_back_to_middle_finger(kit: StationKit) -> None:
    sid = await _to_fingers(kit)
    for _ in range(3):
        v = await _capture(kit, sid, 11, 10)
    assert v["last_capture"]["outcome"] == "failed"
    assert v["last_capture"]["advice_fr"] == ["Appuyez plus fort."]
    assert v["fingers"]["current"]["position"] == P.RIGHT_MIDDLE
    await _capture(kit, sid, 13)
    await _capture(kit, sid, 13)
    await kit.station.declare_exception(sid, "agent1", code="amputated")  # left index
    v = kit.station.get(sid, "agent1")
    assert v["fingers"]["current"]["position"] == P.LEFT_MIDDLE
    await _capture(kit, sid, 18)
    v = await _capture(kit, sid, 18)
    assert v["step"] == "summary"
    await kit.station.confirm(sid, "agent1")
    draft = kit.sink.drafts[0]
    assert [f.position for f in draft.fingers] == [P.RIGHT_MIDDLE, P.LEFT_MIDDLE]
    assert {p: c for p, c, _ in draft.exceptions} == {
        P.RIGHT_INDEX: "unreadable_after_retries",
        P.LEFT_INDEX: "amputated",
    }


async def test_whole_hand_missing_goes_to_other_hand(kit: StationKit) -> None:
    sid = await _to_fingers(kit)
    for _ in range(3):
        await kit.station.declare_exception(sid, "agent1", code="bandaged_injured")
    v = kit.station.get(sid, "agent1")
    assert v["fingers"]["current"]["position"] == P.LEFT_MIDDLE


async def test_two_captures_must_match(kit: StationKit) -> None:
    sid = await _to_fingers(kit)
    await _capture(kit, sid, 11)
    v = await _capture(kit, sid, 12)  # another finger: not consistent
    assert v["last_capture"]["outcome"] == "retry"
    v = await _capture(kit, sid, 12)  # third matches the second
    assert v["last_capture"]["outcome"] == "captured"


async def test_same_finger_twice_is_refused(kit: StationKit) -> None:
    sid = await _to_fingers(kit)
    await _capture(kit, sid, 11)
    await _capture(kit, sid, 11)
    v = await _capture(kit, sid, 11)  # the right index again, presented as the left index
    assert v["last_capture"]["outcome"] == "same_finger"
    assert v["fingers"]["current"]["position"] == P.LEFT_INDEX
    assert v["fingers"]["current"]["attempts"] == 0


async def test_under_12_no_capture(kit: StationKit) -> None:
    child = PrerequestInfo(
        number=NUMBER,
        surname="Petit",
        given_names="Léo",
        birth_date=date(2016, 1, 1),
        reason="first_request",
    )
    sid = await _to_fingers(kit, info=child)
    v = kit.station.get(sid, "agent1")
    assert v["step"] == "summary"
    await kit.station.confirm(sid, "agent1")
    assert kit.sink.drafts[0].fingers == ()
    assert {c for _, c, _ in kit.sink.drafts[0].exceptions} == {"under_age"}


@pytest.mark.parametrize(
    "code", ["prerequest_unknown", "prerequest_expired", "prerequest_consumed"]
)
async def test_central_refusals(kit: StationKit, code: str) -> None:
    kit.central.refusals[NUMBER] = code
    s = await kit.station.start("agent1")
    with pytest.raises(PrerequestRefusedError) as err:
        await kit.station.recall(s["id"], "agent1", number=NUMBER)
    assert err.value.code == code
    assert kit.station.get(s["id"], "agent1")["step"] == "prerequest"


async def test_malformed_and_forged_qr(kit: StationKit) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    kit.central.prerequests[NUMBER] = adult(NUMBER)
    s = await kit.station.start("agent1")
    with pytest.raises(PrerequestRefusedError) as err:
        await kit.station.recall(s["id"], "agent1", number="ABC")
    assert err.value.code == "prerequest_malformed"
    with pytest.raises(PrerequestRefusedError) as err:
        await kit.station.recall(s["id"], "agent1", qr="hello")
    assert err.value.code == "qr_malformed"
    forged = encode_prerequest_qr(NUMBER, signing_key=Ed25519PrivateKey.generate())
    with pytest.raises(PrerequestRefusedError) as err:
        await kit.station.recall(s["id"], "agent1", qr=forged)
    assert err.value.code == "qr_forged"
    good = encode_prerequest_qr(NUMBER, signing_key=kit.qr_key)
    v = await kit.station.recall(s["id"], "agent1", qr=good)
    assert v["step"] == "documents"


async def test_stamp_required_checked_and_documents(kit: StationKit) -> None:
    kit.central.prerequests[NUMBER] = adult(NUMBER, reason="loss")
    s = await kit.station.start("agent1")
    await kit.station.recall(s["id"], "agent1", number=NUMBER)
    with pytest.raises(DocumentsIncompleteError):
        await kit.station.documents(s["id"], "agent1", checked=["photo"])
    with pytest.raises(StampRefusedError) as err:
        await kit.station.documents(s["id"], "agent1", checked=["photo", "proof_of_address"])
    assert err.value.code == "stamp_required"
    kit.central.stamps["1234567890123456"] = "used"
    with pytest.raises(StampRefusedError) as err:
        await kit.station.documents(
            s["id"], "agent1", checked=["photo", "proof_of_address"], stamp="1234 5678 9012 3456"
        )
    assert err.value.code == "stamp_used"
    kit.central.stamps["1234567890123457"] = "unused"
    v = await kit.station.documents(
        s["id"], "agent1", checked=["photo", "proof_of_address"], stamp="1234567890123457"
    )
    assert v["stamp"] == "1234567890123457"
    assert v["step"] == "fingers"


async def test_offline_enrolment_uses_leased_number(kit: StationKit) -> None:
    await kit.station.top_up_numbers(force=True)
    kit.central.online = False
    s = await kit.station.start("agent1")
    with pytest.raises(CentralUnavailableError):
        await kit.station.recall(s["id"], "agent1", number=NUMBER)
    await kit.station.recall(
        s["id"],
        "agent1",
        number=NUMBER,
        offline_details={
            "surname": "Dupont",
            "given_names": "Marie",
            "birth_date": "1990-05-17",
            "reason": "first_request",
        },
    )
    await kit.station.documents(s["id"], "agent1", checked=["photo", "proof_of_address"])
    for identity in (11, 11, 22, 22):
        await _capture(kit, s["id"], identity)
    v = await kit.station.confirm(s["id"], "agent1")
    assert v["offline"] is True
    assert v["request_number"] == kit.sink.drafts[0].request_number


async def test_no_number_offline_is_refused_then_works(kit: StationKit) -> None:
    sid = await _to_fingers(kit)
    for identity in (11, 11, 22, 22):
        await _capture(kit, sid, identity)
    kit.central.online = False
    with pytest.raises(NoRequestNumberError):
        await kit.station.confirm(sid, "agent1")
    kit.central.online = True
    v = await kit.station.confirm(sid, "agent1")
    assert v["step"] == "done"


async def test_restart_resumes_session(kit: StationKit) -> None:
    sid = await _to_fingers(kit)
    await _capture(kit, sid, 11)
    again = kit.reopen()
    assert (await again.station.resume())["resumed"] == 1
    v = again.station.get(sid, "agent1")
    assert v["fingers"]["current"]["attempts"] == 1
    await _capture(again, sid, 11)  # matches the capture made before the restart
    again.sensor.put(22)
    await again.station.capture(sid, "agent1")
    again.sensor.put(22)
    v = await again.station.capture(sid, "agent1")
    assert v["step"] == "summary"


async def test_restart_aborts_stale_session(kit: StationKit) -> None:
    from datetime import timedelta

    sid = await _to_fingers(kit)
    await _capture(kit, sid, 11)
    kit.clock[0] += timedelta(hours=5)
    again = kit.reopen()
    assert (await again.station.resume())["aborted"] == 1
    assert again.station.get(sid, "agent1")["step"] == "aborted"
    assert again.store.count_captures() == 0


async def test_wrong_step_and_other_agent(kit: StationKit) -> None:
    s = await kit.station.start("agent1")
    with pytest.raises(WrongStepError):
        await kit.station.confirm(s["id"], "agent1")
    with pytest.raises(SessionNotFoundError):
        kit.station.get(s["id"], "agent2")


async def test_handover_identity_check(kit: StationKit) -> None:
    from dr_contracts.identifiers import request_number_for
    from tests.fixtures.station import fake_template

    number = request_number_for(5)
    kit.central.templates[number] = [fake_template(11, P.RIGHT_INDEX)]
    kit.sensor.put(99)
    r = await kit.station.handover("agent1", request_number=number)
    assert r["matched"] is False
    assert kit.central.handed_over == []
    kit.sensor.put(11)
    r = await kit.station.handover("agent1", request_number=number)
    assert r["matched"] is True
    assert kit.central.handed_over == [number]


async def test_full_backlog_refuses_a_new_session(kit: StationKit) -> None:
    kit.sink.full = True
    with pytest.raises(QueueFullError) as err:
        await kit.station.start("agent1")
    assert err.value.http_status == 507


async def test_restart_finishes_an_interrupted_confirmation(kit: StationKit) -> None:
    sid = await _to_fingers(kit)
    for identity in (11, 11, 22, 22):
        await _capture(kit, sid, identity)
    kit.sink.full = True  # the crash: sealing started, the enqueue did not happen

    def refuse(draft: object) -> None:
        raise QueueFullError("backlog_full", "File d'attente pleine.")

    kit.sink.submit = refuse  # type: ignore[method-assign]
    with pytest.raises(QueueFullError):
        await kit.station.confirm(sid, "agent1")
    number = kit.station.get(sid, "agent1")["request_number"]
    again = kit.reopen()
    del again.sink.submit  # the real method again
    again.sink.full = False
    assert (await again.station.resume())["finished"] == 1
    view = again.station.get(sid, "agent1")
    assert view["step"] == "done"
    assert view["request_number"] == number  # the same number, not a second one
    assert again.sink.drafts[0].request_number == number


async def test_finished_sessions_and_receipts_are_purged_after_retention(kit: StationKit) -> None:
    from datetime import timedelta

    sid = await _to_fingers(kit)
    for identity in (11, 11, 22, 22):
        await _capture(kit, sid, identity)
    view = await kit.station.confirm(sid, "agent1")
    receipt = Path(view["receipt"])
    assert await asyncio.to_thread(receipt.exists)
    kit.clock[0] += timedelta(days=30)
    assert (await kit.station.resume())["purged"] == 0
    kit.clock[0] += timedelta(days=61)
    assert (await kit.station.resume())["purged"] == 1
    assert not await asyncio.to_thread(receipt.exists)
    with pytest.raises(SessionNotFoundError):
        kit.station.get(sid, "agent1")
