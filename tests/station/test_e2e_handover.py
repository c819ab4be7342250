"""Step 7, card handover: central seals the enrolment's templates to this device's handover key,
the station opens them and compares one live finger 1:1, then records the handover.

Everything is the real thing: the two handover RPCs go over the MQTT link (mosquitto, signed
requests and replies) to central's service; sealing, opening, ISO decoding, matching, the
console and the sensor simulator too.
"""

from __future__ import annotations

import pytest

from central.models import Stage
from dr_contracts.identifiers import parse_request_number
from dr_contracts.rejections import Rejection
from edge.console.client import ConsoleError
from edge.link.client import EdgeLink
from edge.station.link_adapter import LinkCentral
from tests.station.conftest import FINGERS, StationWorld


async def test_identity_check_at_card_handover(world: StationWorld) -> None:
    pre = world.prerequest(surname="Remise")
    await world.start_daemon()
    assert world.wiring is not None
    central = world.wiring.central
    assert isinstance(central, LinkCentral)
    assert isinstance(central.link, EdgeLink)  # the real link, not a stand-in
    sid = (await world.call("start"))["id"]
    await world.call("recall", sid, number=pre.number)
    await world.call("documents", sid, checked=["photo", "proof_of_address"])
    view = await world.capture_until(sid)
    enrolled = [f["position"] for f in view["fingers"]["fingers"] if f["captured"]]
    view = await world.call("confirm", sid)
    number = await world.outcome(view)

    with pytest.raises(ConsoleError) as err:  # the card is not made yet
        await world.call("handover", number)
    assert err.value.code == "not_available_for_handover"

    parsed = parse_request_number(number)
    for stage in (Stage.UNDER_REVIEW, Stage.IN_PRODUCTION, Stage.AVAILABLE):
        world.service.advance_status(parsed, stage)

    await world.place(999)  # somebody else's finger
    result = await world.call("handover", number)
    assert result["matched"] is False
    assert "ne correspond pas" in result["message_fr"]

    from edge.biometrics.types import FingerPosition as P

    matched = False
    for _ in range(3):  # a fresh impression may miss the threshold, as at enrolment
        await world.place(FINGERS[P(enrolled[0])])
        result = await world.call("handover", number)
        if result["matched"]:
            matched = True
            break
    assert matched
    status = world.service.request_status(parsed)
    assert not isinstance(status, Rejection)
    assert status.stage is Stage.HANDED_OVER
    with pytest.raises(ConsoleError) as err:
        await world.call("handover", number)
    assert err.value.code == "already_handed_over"
