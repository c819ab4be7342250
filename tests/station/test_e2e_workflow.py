"""The workflow over the real parts: mosquitto, central, simulators, daemon (see conftest)."""

from __future__ import annotations

import asyncio

import pytest

from dr_contracts.identifiers import parse_request_number
from edge.biometrics.types import FingerPosition as P
from edge.console.client import ConsoleError
from tests.station.conftest import StationWorld

BOTH_INDEXES = {P.RIGHT_INDEX: 101, P.LEFT_INDEX: 102}


async def scan_and_recall(world: StationWorld, sid: str, payload: str) -> dict:
    recall = asyncio.create_task(world.call("recall", sid, from_scanner=True, timeout=30))
    # The console waits for the scanner; the citizen's QR code is presented meanwhile.
    while not recall.done():
        await world.scanner.control.scan(payload)
        done, _ = await asyncio.wait({recall}, timeout=0.5)
    return await recall


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
    view = await world.capture_until(s["id"], BOTH_INDEXES)
    assert view["step"] == "summary"
    captured = {f["position"] for f in view["fingers"]["fingers"] if f["captured"]}
    assert captured == {P.RIGHT_INDEX, P.LEFT_INDEX}
    view = await world.call("confirm", s["id"])
    assert view["step"] == "done"
    number = view["request_number"]
    assert (await world.outcome(view)) == number
    status = world.service.request_status(parse_request_number(number))
    assert getattr(status, "stage", None) is not None
    assert world.service.get_prerequest(pre.number).status == "consumed"
    pdf = await asyncio.to_thread(open(view["receipt"], "rb").read)
    assert pdf.startswith(b"%PDF-")
