"""The workflow over the real parts: mosquitto, central, simulators, daemon (see conftest)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dr_contracts.identifiers import parse_request_number
from edge.biometrics.types import FingerPosition as P
from edge.console.client import ConsoleError
from tests.station.conftest import StationWorld


async def scan_and_recall(world: StationWorld, sid: str, payload: str) -> dict[str, Any]:
    recall = asyncio.create_task(world.call("recall", sid, from_scanner=True, timeout=30))
    # The console waits for the scanner; the citizen's QR code is presented meanwhile.
    while not recall.done():
        await world.scanner.control.scan(payload)
        await asyncio.wait({recall}, timeout=0.5)  # a scanner re-reads a code it still sees
    view: dict[str, Any] = await recall
    return view


async def test_happy_path_qr_scan_to_acknowledged_request(world: StationWorld) -> None:
    pre = world.prerequest(surname="Martin", given_names="Léa")
    await world.start_daemon()
    status = await world.call("status")
    assert status["sensor"] in {"ready", "absent"}
    s = await world.call("start")
    view = await scan_and_recall(world, s["id"], world.qr(pre.number))
    assert view["step"] == "documents"
    assert view["prerequest"]["surname"] == "Martin"
    view = await world.call("documents", s["id"], checked=["photo", "proof_of_address"])
    assert view["step"] == "fingers"
    view = await world.capture_until(s["id"])
    assert view["step"] == "summary"
    captured = [f["position"] for f in view["fingers"]["fingers"] if f["captured"]]
    # Both index fingers, unless the matcher found no consistent pair in three captures of
    # one: then the policy fell back to the next finger of that hand, which is fine too.
    assert len(captured) == 2
    view = await world.call("confirm", s["id"])
    assert view["step"] == "done"
    number = view["request_number"]
    assert (await world.outcome(view)) == number
    status = world.service.request_status(parse_request_number(number))
    assert getattr(status, "stage", None) is not None
    consumed = world.service.get_prerequest(pre.number)
    assert consumed is not None
    assert consumed.status == "consumed"
    pdf = await asyncio.to_thread(Path(view["receipt"]).read_bytes)
    assert pdf.startswith(b"%PDF-")


async def test_prerequest_refusals(world: StationWorld) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from dr_contracts.qr import encode_prerequest_qr

    pre = world.prerequest()
    await world.start_daemon()
    sid = (await world.call("start"))["id"]
    cases = [
        ({"number": "AB12"}, "prerequest_malformed"),
        ({"qr": "https://example.org/not-ours"}, "qr_malformed"),
        (
            {"qr": encode_prerequest_qr(pre.number, signing_key=Ed25519PrivateKey.generate())},
            "qr_forged",
        ),
        ({"qr": world.qr(pre.number).replace(pre.number, "ZZZZZZZZZZ")}, "qr_forged"),
        ({"number": "ZZZZZZZZZZ"}, "prerequest_unknown"),
    ]
    for body, code in cases:
        with pytest.raises(ConsoleError) as err:
            await world.call("recall", sid, **body)
        assert err.value.code == code, body
        assert err.value.message  # a French sentence for the agent
    expired = world.prerequest(surname="Ancien")
    from datetime import timedelta

    world.clock.advance(timedelta(days=400))
    with pytest.raises(ConsoleError) as err:
        await world.call("recall", sid, number=expired.number)
    assert err.value.code == "prerequest_expired"
    assert "expiré" in err.value.message
    assert (await world.call("session", sid))["step"] == "prerequest"


async def test_consumed_prerequest_refused_after_enrolment(world: StationWorld) -> None:
    pre = world.prerequest()
    await world.start_daemon()
    sid = (await world.call("start"))["id"]
    await world.call("recall", sid, number=pre.number)
    await world.call("documents", sid, checked=["photo", "proof_of_address"])
    await world.capture_until(sid)
    view = await world.call("confirm", sid)
    assert (await world.outcome(view)) == view["request_number"]
    again = (await world.call("start"))["id"]
    with pytest.raises(ConsoleError) as err:
        await world.call("recall", again, number=pre.number)
    assert err.value.code == "prerequest_consumed"


async def test_stamp_required_checked_and_consumed(world: StationWorld) -> None:
    from dr_contracts.enrolment import RequestReason

    stamp = world.service.create_stamp().number
    pre = world.prerequest(reason=RequestReason.LOSS)
    await world.start_daemon()
    sid = (await world.call("start"))["id"]
    view = await world.call("recall", sid, number=pre.number)
    assert view["stamp_required"] is True
    docs = ["photo", "proof_of_address"]
    with pytest.raises(ConsoleError) as err:
        await world.call("documents", sid, checked=docs)
    assert err.value.code == "stamp_required"
    with pytest.raises(ConsoleError) as err:
        await world.call("documents", sid, checked=docs, stamp="1111222233334444")
    assert err.value.code == "stamp_unknown"
    view = await world.call("documents", sid, checked=docs, stamp=stamp)
    assert view["stamp"] == stamp
    await world.capture_until(sid)
    view = await world.call("confirm", sid)
    assert (await world.outcome(view)) == view["request_number"]
    used = world.service.get_stamp(stamp)
    assert used is not None
    assert used.state == "used"
    other = world.prerequest(reason=RequestReason.THEFT, surname="Autre")
    sid2 = (await world.call("start"))["id"]
    await world.call("recall", sid2, number=other.number)
    with pytest.raises(ConsoleError) as err:
        await world.call("documents", sid2, checked=docs, stamp=stamp)
    assert err.value.code == "stamp_used"


async def test_finger_fallback_and_exceptions_reach_central(world: StationWorld) -> None:
    pre = world.prerequest()
    await world.start_daemon()
    sid = (await world.call("start"))["id"]
    await world.call("recall", sid, number=pre.number)
    await world.call("documents", sid, checked=["photo", "proof_of_address"])
    view = await world.call("exception", sid, "amputated")
    assert view["fingers"]["current"]["position"] == P.RIGHT_MIDDLE
    with pytest.raises(ConsoleError) as err:
        await world.call("exception", sid, "under_age")  # the policy's, not the agent's
    assert err.value.code == "bad_exception"
    view = await world.capture_until(sid)
    assert view["step"] == "summary"
    view = await world.call("confirm", sid)
    number = await world.outcome(view)
    assert number == view["request_number"]
    record = world.service.enrolment_record(parse_request_number(number))
    by_position = {f.position: f for f in record.fingers}
    assert by_position[P.RIGHT_INDEX].exception == "amputated"
    assert sum(1 for f in record.fingers if f.captured) == 2
    assert P.RIGHT_INDEX not in {f.position for f in record.fingers if f.captured}


async def test_under_12_no_fingerprints(world: StationWorld) -> None:
    from tests.station.conftest import child_birth_date

    pre = world.prerequest(birth_date=child_birth_date(), given_names="Théo")
    await world.start_daemon()
    sid = (await world.call("start"))["id"]
    await world.call("recall", sid, number=pre.number)
    view = await world.call("documents", sid, checked=["photo", "proof_of_address"])
    assert view["step"] == "summary"
    assert view["fingers"]["under_age"] is True
    with pytest.raises(ConsoleError) as err:
        await world.call("capture", sid)
    assert err.value.code == "wrong_step"
    view = await world.call("confirm", sid)
    number = await world.outcome(view)
    record = world.service.enrolment_record(parse_request_number(number))
    assert {f.exception for f in record.fingers} == {"under_age"}


async def _offline_session(world: StationWorld, surname: str) -> tuple[str, dict[str, str]]:
    """A session started once the station holds leased numbers and the broker is down: its
    id, and the agent's offline details of the citizen ``surname``."""
    daemon = await world.start_daemon()
    async with asyncio.timeout(60):
        await daemon.station.wait_for(lambda: daemon.station.free_numbers() > 0)
    world.broker.stop()
    sid = (await world.call("start"))["id"]
    offline = {
        "surname": surname,
        "given_names": "Camille",
        "birth_date": "1988-05-17",
        "reason": "renewal",
    }
    return sid, offline


async def test_offline_enrolment_with_leased_number_delivered_later(world: StationWorld) -> None:
    pre = world.prerequest(surname="Hors-Ligne")
    sid, offline = await _offline_session(world, "Hors-Ligne")
    view = await world.call("recall", sid, qr=world.qr(pre.number), offline_details=offline)
    assert view["prerequest"]["verified_online"] is False
    await world.call("documents", sid, checked=["photo", "proof_of_address"])
    await world.capture_until(sid)
    view = await world.call("confirm", sid)
    assert view["step"] == "done"
    assert view["offline"] is True
    number = view["request_number"]
    assert (await world.call("status"))["queue"]["depth"] == 1
    world.broker.start()
    assert (await world.outcome(view)) == number  # central kept the leased number
    consumed = world.service.get_prerequest(pre.number)
    assert consumed is not None
    assert consumed.status == "consumed"


async def test_daemon_restart_in_the_middle_of_a_session(world: StationWorld) -> None:
    pre = world.prerequest()
    await world.start_daemon()
    sid = (await world.call("start"))["id"]
    await world.call("recall", sid, number=pre.number)
    await world.call("documents", sid, checked=["photo", "proof_of_address"])
    await world.place(103)
    first = await world.call("capture", sid)
    assert first["fingers"]["current"]["attempts"] == 1
    await world.stop_daemon()
    await world.start_daemon()  # signs in again
    view = await world.call("session", sid)
    assert view["step"] == "fingers"
    assert view["fingers"]["current"] == first["fingers"]["current"]
    view = await world.capture_until(sid)
    view = await world.call("confirm", sid)
    assert (await world.outcome(view)) == view["request_number"]


async def test_offline_enrolment_refused_by_central_is_shown(world: StationWorld) -> None:
    from datetime import timedelta

    from dr_contracts.rejections import Rejection

    pre = world.prerequest(surname="Trop-Tard")
    sid, offline = await _offline_session(world, "Trop-Tard")
    await world.call("recall", sid, number=pre.number, offline_details=offline)
    await world.call("documents", sid, checked=["photo", "proof_of_address"])
    await world.capture_until(sid)
    view = await world.call("confirm", sid)
    world.clock.advance(timedelta(days=400))  # the pre-request expired before delivery
    world.broker.start()
    outcome = await world.outcome(view)
    assert isinstance(outcome, Rejection)
    status = await world.call("status")
    assert [r["code"] for r in status["rejections"]] == [str(outcome.code)]
    assert status["rejections"][0]["message"] == outcome.message_fr
