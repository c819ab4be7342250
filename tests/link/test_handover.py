"""The card-handover RPCs over the real parts: mosquitto, the real central service, HPKE sealing.

``handover_templates`` brings back the enrolment's templates sealed to the asking device's
handover key (only that device opens them, only for that request); ``record_handover`` moves
the request to ``handed_over``. Refusals (card not ready, another mairie, no handover key,
malformed number) arrive as :class:`RpcRejectedError` carrying central's rejection.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest

from central.models import Stage
from dr_contracts.handover import HandoverError, open_handover
from dr_contracts.keys import CentralDecryptionKey
from dr_contracts.messages import MalformedMessageError, RpcOp, RpcRequest
from dr_contracts.rejections import Rejection, RejectionCode
from edge.link.errors import RpcRejectedError, RpcTimeoutError
from tests.link.conftest import Device, LinkWorld, running

EVRY = "dr-91228-01"


def handover_device(
    world: LinkWorld, device_id: str, *, commune: str = "Évry", **options: Any
) -> tuple[Device, CentralDecryptionKey]:
    """A device registered with a handover key, as provisioning makes it."""
    device = world.device(device_id, register=False, **options)
    handover = CentralDecryptionKey.generate()
    world.service.register_device(
        device_id,
        commune_name=commune,
        signing_key=device.signing.public_key,
        handover_key=handover.public_key(),
    )
    return device, handover


async def enrol_over_the_link(world: LinkWorld, device: Device) -> str:
    """One enrolment sent through the outbox and acked; its request number."""
    (enrolment_id,) = world.enqueue(device, 1)
    await device.wait_acked(1)
    return device.acked[enrolment_id]


def make_available(world: LinkWorld, number: str) -> None:
    for stage in (Stage.UNDER_REVIEW, Stage.IN_PRODUCTION, Stage.AVAILABLE):
        world.service.advance_status(number, stage)


async def rejection_of(call: Awaitable[object]) -> Rejection:
    with pytest.raises(RpcRejectedError) as info:
        await call
    return info.value.rejection


async def test_templates_sealed_to_the_device_then_handover_recorded(world: LinkWorld) -> None:
    device, handover = handover_device(world, EVRY)
    async with running(world.central_link(), device.link):
        number = await enrol_over_the_link(world, device)
        early = await rejection_of(device.link.handover_templates(number))
        assert early.code is RejectionCode.NOT_AVAILABLE_FOR_HANDOVER
        assert early.message_fr  # what the agent is shown
        early = await rejection_of(device.link.record_handover(number))
        assert early.code is RejectionCode.NOT_AVAILABLE_FOR_HANDOVER

        make_available(world, number)
        sealed = await device.link.handover_templates(number)
        templates = open_handover(
            sealed, device_key=handover, device_id=EVRY, request_number=number
        )
        record = world.service.enrolment_record(number)
        expected = [(f.position, f.template) for f in record.captured_fingers if f.template]
        assert expected
        assert [(t.position, t.template) for t in templates] == expected
        with pytest.raises(HandoverError):  # sealed for this request only
            open_handover(sealed, device_key=handover, device_id=EVRY, request_number="X" * 12)

        status = await device.link.record_handover(number)
        assert status["request_number"] == number
        assert status["stage"] == Stage.HANDED_OVER.value
        again = await rejection_of(device.link.record_handover(number))
        assert again.code is RejectionCode.NOT_AVAILABLE_FOR_HANDOVER
        later = await rejection_of(device.link.handover_templates(number))
        assert later.code is RejectionCode.NOT_AVAILABLE_FOR_HANDOVER
    stored = world.service.request_status(number)
    assert not isinstance(stored, Rejection)
    assert stored.stage is Stage.HANDED_OVER


async def test_handover_refused_elsewhere_and_without_handover_key(world: LinkWorld) -> None:
    enrolling, _ = handover_device(world, EVRY)
    paris, _ = handover_device(world, "dr-75056-01", commune="Paris")
    keyless = world.device("dr-91228-02")  # same mairie, registered without a handover key
    async with running(world.central_link(), enrolling.link, paris.link, keyless.link):
        number = await enrol_over_the_link(world, enrolling)
        make_available(world, number)
        for call in (paris.link.handover_templates, paris.link.record_handover):
            refused = await rejection_of(call(number))
            assert refused.code is RejectionCode.WRONG_MAIRIE
        refused = await rejection_of(keyless.link.handover_templates(number))
        assert refused.code is RejectionCode.NO_HANDOVER_KEY
        for call in (enrolling.link.handover_templates, enrolling.link.record_handover):
            refused = await rejection_of(call("ABC"))
            assert refused.code in {RejectionCode.NUMBER_MALFORMED, RejectionCode.NUMBER_MISTYPED}
        # None of the refusals changed the request: the mairie's own device still can.
        await enrolling.link.handover_templates(number)
    stored = world.service.request_status(number)
    assert not isinstance(stored, Rejection)
    assert stored.stage is Stage.AVAILABLE


async def test_revoked_device_gets_central_refusal(world: LinkWorld) -> None:
    device, _ = handover_device(world, EVRY)
    async with running(world.central_link(), device.link):
        number = await enrol_over_the_link(world, device)
        make_available(world, number)
        world.service.revoke_device(EVRY)
        for call in (device.link.handover_templates, device.link.record_handover):
            refused = await rejection_of(call(number))
            assert refused.code is RejectionCode.REVOKED_DEVICE


async def test_handover_rpc_times_out_without_central(world: LinkWorld) -> None:
    device, _ = handover_device(world, EVRY, rpc_timeout_s=0.3)
    async with running(device.link):
        with pytest.raises(RpcTimeoutError) as info:
            await device.link.handover_templates("ABCD-EFGH-IJKL")
        assert info.value.op is RpcOp.HANDOVER_TEMPLATES


@pytest.mark.parametrize("op", [RpcOp.HANDOVER_TEMPLATES, RpcOp.RECORD_HANDOVER])
def test_handover_request_arguments_are_checked(op: RpcOp) -> None:
    request = RpcRequest(op=op, args={"number": "ABCD-EFGH-IJKL"})
    assert RpcRequest.from_wire(request.to_wire()) == request
    for args in ({}, {"number": ""}, {"number": "A", "device": "dr-75056-01"}, {"count": 1}):
        with pytest.raises(ValueError, match=op.value):
            RpcRequest(op=op, args=args)
        with pytest.raises(MalformedMessageError):
            RpcRequest.from_wire({"op": op.value, "args": args})
