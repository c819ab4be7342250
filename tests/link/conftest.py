"""A whole link in one process: real mosquitto, real central service (SQLite), real outbox.

``world`` gives a :class:`LinkWorld`: the broker, a central service with its keys, helpers to
make devices (EdgeLink + Outbox + keys + certificate) and enrolments, and the central link.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from central.keyring import CentralKeyring
from central.mqtt.server import CentralLink
from central.mqtt.settings import CentralLinkSettings
from central.service import CentralService
from dr_contracts.enrolment import EnrolmentRecord
from dr_contracts.envelope import seal_record
from dr_contracts.keys import SigningKey
from dr_contracts.rejections import Rejection
from edge.link.client import EdgeLink
from edge.link.settings import LinkSettings
from edge.queue import AsyncOutbox, Outbox, OutboxLimits, OutboxMeta
from edge.queue.backoff import Backoff
from tests.fixtures.broker import RunningBroker
from tests.fixtures.central import ManualClock, sample_form
from tests.fixtures.keys import sample_record

WAIT_S = 60.0  # generous bound on any wait: a failure, not a timing, when exceeded
FAST_RECONNECT = Backoff(initial_s=0.05, factor=2.0, maximum_s=0.5, jitter=0.5)


@dataclass
class Device:
    """One simulated DR: its keys, outbox and link, and what it saw acknowledged."""

    device_id: str
    signing: SigningKey
    outbox: Outbox
    link: EdgeLink
    acked: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, Rejection] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_acked(self, count: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.acked) < count:
                self.changed.clear()
                await self.changed.wait()

    async def wait_rejected(self, count: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.rejected) < count:
                self.changed.clear()
                await self.changed.wait()


@dataclass
class LinkWorld:
    broker: RunningBroker
    service: CentralService
    clock: ManualClock
    directory: Path
    rng: random.Random
    devices: dict[str, Device] = field(default_factory=dict)

    def central_settings(self, **options: Any) -> CentralLinkSettings:
        files = self.broker.client_files("central")
        options.setdefault("fleet_interval_s", 0.2)
        return CentralLinkSettings(
            host=self.broker.host,
            port=self.broker.port,
            ca_file=self.broker.ca_file,
            cert_file=files.cert,
            key_file=files.key,
            reconnect_initial_s=0.05,
            reconnect_max_s=0.5,
            **options,
        )

    def central_link(self, **options: Any) -> CentralLink:
        link = CentralLink(
            self.central_settings(**options),
            backend=self.service,
            signing_key=self.service.keys.signing,
        )
        self.service.add_revocation_listener(link.forget_device)
        return link

    def link_settings(self, device_id: str, **options: Any) -> LinkSettings:
        files = self.broker.client_files(device_id)
        options.setdefault("reconnect", FAST_RECONNECT)
        options.setdefault("rpc_timeout_s", 5.0)
        return LinkSettings(
            device_id=device_id,
            host=self.broker.host,
            port=self.broker.port,
            ca_file=self.broker.ca_file,
            cert_file=files.cert,
            key_file=files.key,
            **options,
        )

    def device(
        self, device_id: str = "dr-91228-01", *, register: bool = True, **options: Any
    ) -> Device:
        signing = SigningKey.generate()
        if register:
            self.service.register_device(
                device_id, commune_name="Évry", signing_key=signing.public_key
            )
        outbox = Outbox(
            self.directory / f"{device_id}.outbox.db",
            limits=OutboxLimits(
                ack_timeout_s=options.pop("ack_timeout_s", 30.0),
                backoff=Backoff(initial_s=0.1, factor=2.0, maximum_s=1.0, jitter=0.5),
            ),
        )
        holder: dict[str, Device] = {}

        def acked(enrolment_id: str, number: str) -> None:
            holder["d"].acked[enrolment_id] = number
            holder["d"].changed.set()

        def rejected(enrolment_id: str, rejection: Rejection) -> None:
            holder["d"].rejected[enrolment_id] = rejection
            holder["d"].changed.set()

        link = EdgeLink(
            self.link_settings(device_id, **options),
            signing_key=signing,
            central_key=self.service.signing_public_key,
            outbox=AsyncOutbox(outbox),
            on_acked=acked,
            on_rejection=rejected,
        )
        device = Device(device_id=device_id, signing=signing, outbox=outbox, link=link)
        holder["d"] = device
        self.devices[device_id] = device
        return device

    def record(self, device_id: str, **overrides: Any) -> EnrolmentRecord:
        pre = self.service.create_prerequest(sample_form())
        overrides.setdefault("completed_at", self.clock.now)
        overrides.setdefault("started_at", self.clock.now)
        return sample_record(
            self.rng, device_id=device_id, prerequest_number=pre.number, **overrides
        )

    def seal(self, record: EnrolmentRecord, *, signer: SigningKey | None = None) -> bytes:
        signer = signer or self.devices[record.device_id].signing
        return seal_record(record, recipient=self.service.recipient_public_key, signer=signer)

    def enqueue(self, device: Device, count: int = 1) -> list[str]:
        ids = []
        for _ in range(count):
            record = self.record(device.device_id)
            device.outbox.enqueue(
                record.enrolment_id,
                self.seal(record),
                meta=OutboxMeta(prerequest_number=record.prerequest_number),
            )
            ids.append(record.enrolment_id)
        device.link.notify_enqueued()
        return ids


@contextlib.asynccontextmanager
async def running(*links: EdgeLink | CentralLink) -> AsyncIterator[None]:
    """Run links in a TaskGroup for the block; wait until each is connected; cancel after."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(link.run()) for link in links]
        try:
            async with asyncio.timeout(10):
                for link in links:
                    await link.wait_connected()
            yield
        finally:
            for task in tasks:
                task.cancel()


@pytest.fixture
def world(
    broker: RunningBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[LinkWorld]:
    key_dir = tmp_path / "central-keys"
    CentralKeyring.create(key_dir)
    clock = ManualClock()
    service = CentralService.open(
        database=f"sqlite://{tmp_path / 'central.db'}", key_dir=key_dir, clock=clock
    )
    world = LinkWorld(
        broker=broker,
        service=service,
        clock=clock,
        directory=tmp_path,
        rng=random.Random(request.node.nodeid),
    )
    try:
        yield world
    finally:
        for device in world.devices.values():
            device.outbox.close()
        service.close()
