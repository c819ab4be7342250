"""The whole link over the real parts: mosquitto, central service, sealed envelopes, outbox."""

from __future__ import annotations

import pytest

from central.audit_hooks import CentralAudit
from dr_contracts.audit import AuditLog
from dr_contracts.identifiers import parse_request_number
from dr_contracts.rejections import RejectionCode
from edge.link.errors import LinkUnavailableError, RpcRejectedError
from edge.queue import RowState
from tests.fixtures.central import sample_form
from tests.link.conftest import LinkWorld, running


async def test_rpcs_answered_by_the_real_service(world: LinkWorld) -> None:
    device = world.device("dr-91228-01")
    pre = world.service.create_prerequest(sample_form())
    async with running(world.central_link(), device.link):
        found = await device.link.lookup_prerequest(pre.number)
        assert found["number"] == pre.number
        assert found["status"] == "validated"
        with pytest.raises(RpcRejectedError) as info:
            await device.link.lookup_prerequest("ZZZZZZZZZZ")
        assert info.value.rejection.code is RejectionCode.PREREQUEST_UNKNOWN
        with pytest.raises(RpcRejectedError) as info:
            await device.link.check_stamp("1234567890123456")
        assert info.value.rejection.code in {
            RejectionCode.STAMP_UNKNOWN,
            RejectionCode.STAMP_MALFORMED,
        }
        lease = await device.link.lease_numbers(5)
        assert lease.lease.count == 5
        assert lease.lease.device_id == "dr-91228-01"
        assert len(set(lease.lease.numbers())) == 5


async def test_lookups_over_mqtt_are_audited_once_each(world: LinkWorld) -> None:
    """The audit append runs beside the reply (out of the round trip), never instead of it."""
    audit_path = world.directory / "audit" / "central.db"
    world.service.audit = CentralAudit.open(
        audit_path, signer=world.service.keys.signing.private_key
    )
    device = world.device("dr-91228-01")
    found = [world.service.create_prerequest(sample_form()) for _ in range(3)]
    async with running(world.central_link(), device.link):
        for pre in found:
            assert (await device.link.lookup_prerequest(pre.number))["number"] == pre.number
        with pytest.raises(RpcRejectedError):
            await device.link.lookup_prerequest("ZZZZZZZZZZ")  # refused: nothing disclosed
    # The links have stopped: every append has ended (the fixture closes the audit log).
    with AuditLog(audit_path) as log:
        lookups = [e for e in log.entries() if e.event == "prerequest_lookup"]
    assert [(e.actor, e.subject) for e in lookups] == [("dr-91228-01", pre.number) for pre in found]


async def test_enrolments_are_acked_once_with_one_number_each(world: LinkWorld) -> None:
    device = world.device("dr-91228-01")
    async with running(world.central_link(), device.link):
        ids = world.enqueue(device, 5)
        await device.wait_acked(5)
    assert set(device.acked) == set(ids)
    numbers = list(device.acked.values())
    assert len(set(numbers)) == 5
    for enrolment_id, number in device.acked.items():
        assert parse_request_number(number) == number
        entry = device.outbox.entry(enrolment_id)
        assert entry.state is RowState.ACKED
        assert entry.request_number == number
    assert device.outbox.stats().pending_count == 0


async def test_rpc_without_connection_raises_link_unavailable(world: LinkWorld) -> None:
    device = world.device("dr-91228-01")
    with pytest.raises(LinkUnavailableError):
        await device.link.lookup_prerequest("ABCDEFGHIJ")
