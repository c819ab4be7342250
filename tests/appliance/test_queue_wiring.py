"""The queue engineer's requests, wired: a definitive refusal from central closes the outbox
row (real broker, central and outbox), and a storage failure of the outbox reaches the agent
as a station refusal with the outbox's French message."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.keyring import CentralKeyring
from central.service import CentralService
from dr_contracts.rejections import RejectionCode
from edge.queue import OutboxStorageError
from edge.queue.outbox import RowState
from edge.station.adapters import OutboxSink
from edge.station.errors import QueueFullError
from tests.fixtures.broker import RunningBroker
from tests.fixtures.central import ManualClock
from tests.link.conftest import LinkWorld, running

A = "dr-91228-01"


@pytest.fixture
def link_world(broker: RunningBroker, tmp_path: Path) -> Iterator[LinkWorld]:
    key_dir = tmp_path / "central-keys"
    CentralKeyring.create(key_dir)
    service = CentralService.open(
        database=f"sqlite://{tmp_path / 'central.db'}", key_dir=key_dir, clock=ManualClock()
    )
    world = LinkWorld(
        broker=broker,
        service=service,
        clock=ManualClock(),
        directory=tmp_path,
        rng=random.Random(9),
    )
    try:
        yield world
    finally:
        for device in world.devices.values():
            device.outbox.close()
        service.close()


async def test_a_definitive_rejection_closes_the_outbox_row(link_world: LinkWorld) -> None:
    device = link_world.device(A)
    async with running(link_world.central_link(), device.link):
        await device.link.wait_connected()
        link_world.service.revoke_device(A)
        (enrolment_id,) = link_world.enqueue(device, 1)
        await device.wait_rejected(1)
    rejection = device.rejected[enrolment_id]
    assert rejection.code is RejectionCode.REVOKED_DEVICE
    assert not rejection.retryable
    entry = device.outbox.entry(enrolment_id)
    assert entry.state is RowState.REJECTED  # not retried for ever
    stats = device.outbox.stats()
    assert stats.pending_count == 0
    assert stats.rejected_total == 1


class _BrokenOutbox:
    """An outbox whose disk fails (the real failure is tested in tests/queue/test_disk_full)."""

    def _fail(self, *args: object, **kwargs: object) -> None:
        raise OutboxStorageError("enqueue", sqlite_error="disk I/O error", disk_full=True)

    check_admission = _fail
    enqueue = _fail

    def entry(self, enrolment_id: str) -> None:
        raise LookupError(enrolment_id)


def test_storage_error_at_admission_is_a_station_refusal_in_french() -> None:
    sink = OutboxSink(_BrokenOutbox(), recipient=None, signer=None)  # type: ignore[arg-type]
    with pytest.raises(QueueFullError) as info:
        sink.check_admission()
    assert info.value.code == "storage_error"
    assert info.value.message == OutboxStorageError.message_fr
    assert "espace disque" in info.value.message
