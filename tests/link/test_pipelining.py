"""Publishes awaiting their PUBACK do not hold the link back (device drain, central acks).

Unit tests of one layer each: the aiomqtt client is replaced by one whose publishes wait
until released (a PUBACK that does not come), everything else is real (outbox, central
service, signed envelopes and acknowledgements).
"""

from __future__ import annotations

import asyncio
from typing import cast

import aiomqtt

from dr_contracts.acks import Ack
from dr_contracts.envelope import peek_header
from dr_contracts.messages import CENTRAL, EnrolmentAck, MessageKind, encode_message, open_message
from tests.link.conftest import WAIT_S, LinkWorld

A = "dr-91228-01"


class HeldPublishes:
    """Records every publish; none completes until ``release`` is set."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.release = asyncio.Event()
        self._changed = asyncio.Event()

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, **_: object) -> None:
        self.published.append((topic, payload))
        self._changed.set()
        await self.release.wait()

    async def wait_published(self, count: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.published) < count:
                self._changed.clear()
                await self._changed.wait()


def _signed_ack(world: LinkWorld, ack: Ack) -> bytes:
    return encode_message(
        EnrolmentAck(enrolment_id=ack.enrolment_id, ack=ack.to_bytes()),
        sender=CENTRAL,
        recipient=A,
        key=world.service.keys.signing,
        now_ms=int(world.clock().timestamp() * 1000),
    )


async def test_an_acked_slot_is_refilled_while_other_publishes_await_their_puback(
    world: LinkWorld,
) -> None:
    device = world.device(A, inflight_window=2)
    link = device.link
    held = HeldPublishes()
    link._client = cast(aiomqtt.Client, held)
    ids = world.enqueue(device, 3)
    assert link._outbox is not None
    async with asyncio.TaskGroup() as tg:
        drain = tg.create_task(link._drain(link._outbox))
        await held.wait_published(2)  # the window, both still waiting for their PUBACK
        first = held.published[0][1]
        answer = world.service.ingest(first, device_id=A)
        assert isinstance(answer, Ack)
        await link._on_ack(_signed_ack(world, answer))
        # The freed slot is used at once, though no PUBACK has come for the other two.
        await held.wait_published(3)
        held.release.set()
        drain.cancel()
    sent = [peek_header(payload).enrolment_id for _, payload in held.published]
    assert sent == ids  # each row once, oldest first, never more than the window unacked


async def test_central_ingests_the_next_batch_while_acks_await_their_puback(
    world: LinkWorld,
) -> None:
    device = world.device(A)
    central = world.central_link(max_batch=2)
    held = HeldPublishes()
    central._client = cast(aiomqtt.Client, held)
    ids = []
    for _ in range(4):
        record = world.record(A)
        ids.append(record.enrolment_id)
        central._enrolments.put_nowait((A, world.seal(record, signer=device.signing)))
    async with asyncio.TaskGroup() as tg:
        loop = tg.create_task(central._ingest_loop())
        # Two batches of two: the second is ingested and answered although no PUBACK has
        # come for the first batch's acknowledgements.
        await held.wait_published(4)
        held.release.set()
        loop.cancel()
    acked = []
    for topic, payload in held.published:
        assert topic == f"dr/{A}/acks"
        message = open_message(
            payload,
            keys=lambda sender: world.service.signing_public_key if sender == CENTRAL else None,
            sender=CENTRAL,
            recipient=A,
            kinds=frozenset({MessageKind.ACK}),
        )
        assert isinstance(message.body, EnrolmentAck)
        assert message.body.ack is not None
        acked.append(message.body.enrolment_id)
    assert sorted(acked) == sorted(ids)
