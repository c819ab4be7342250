"""Faults over the real broker and the real central service (in one process).

Process kills (edge, central, broker SIGKILL) are in test_kills.py.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dr_contracts import topics
from dr_contracts.acks import verify_ack
from dr_contracts.keys import SigningKey
from dr_contracts.messages import (
    CENTRAL,
    MAX_MESSAGE_BYTES,
    EnrolmentAck,
    RpcOp,
    RpcReply,
    RpcRequest,
    encode_message,
    open_message,
)
from dr_contracts.rejections import RejectionCode
from edge.link.errors import LinkUnavailableError, RpcRejectedError
from tests.fixtures.central import sample_form
from tests.link.conftest import WAIT_S, LinkWorld, running

A, B = "dr-91228-01", "dr-91228-02"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _rpc(
    key: SigningKey, *, sender: str = A, number: str = "ABCDEFGHIJ", at_ms: int | None = None
) -> bytes:
    return encode_message(
        RpcRequest(op=RpcOp.LOOKUP_PREREQUEST, args={"number": number}),
        sender=sender,
        recipient=CENTRAL,
        key=key,
        now_ms=_now_ms() if at_ms is None else at_ms,
    )


def _response_to(topic: str) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.ResponseTopic = topic
    return properties


async def _next(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(WAIT_S):
        async for message in client.messages:
            return message
    raise AssertionError("message stream ended")


async def test_broker_down_edge_queues_offline_then_drains(world: LinkWorld) -> None:
    device = world.device(A)
    async with running(world.central_link(), device.link):
        world.enqueue(device, 2)
        await device.wait_acked(2)
        world.broker.stop()
        # The station is told at once that central is out of reach: it goes offline-mode.
        with pytest.raises(LinkUnavailableError):
            await device.link.lookup_prerequest("ABCDEFGHIJ")
        offline_ids = world.enqueue(device, 3)  # enrolments keep being taken
        assert device.outbox.stats().pending_count == 3
        world.broker.start()
        await device.wait_acked(5)
    assert set(offline_ids) <= set(device.acked)
    assert len(set(device.acked.values())) == 5


async def test_duplicated_and_reordered_enrolments_get_one_number_each(
    world: LinkWorld,
) -> None:
    device = world.device(A)
    central = world.central_link()
    records = [world.record(A) for _ in range(3)]
    sealed = [world.seal(r) for r in records]
    order = [2, 0, 0, 1, 2, 1, 0]
    answers: dict[str, set[str]] = {r.enrolment_id: set() for r in records}
    async with running(central), world.broker.client(A) as raw:
        await raw.subscribe(topics.device_topic(A, topics.ACKS), qos=1)
        for index in order:
            await raw.publish(topics.device_topic(A, topics.ENROLMENTS), sealed[index], qos=1)
        for _ in order:
            message = await _next(raw)
            body = open_message(
                message.payload,
                keys=lambda s: world.service.signing_public_key if s == CENTRAL else None,
                sender=CENTRAL,
                recipient=A,
            ).body
            assert isinstance(body, EnrolmentAck)
            assert body.ack is not None, body.rejection
            ack = verify_ack(body.ack, central_keys=[world.service.signing_public_key])
            answers[ack.enrolment_id].add(ack.request_number)
    # Every delivery answered; duplicates with the very same number; three distinct numbers.
    assert all(len(numbers) == 1 for numbers in answers.values())
    assert len({n for numbers in answers.values() for n in numbers}) == 3
    assert len(list(world.service.iter_request_numbers())) == 3
    assert device.outbox.stats().pending_count == 0  # the raw client bypassed the outbox


async def test_device_cannot_use_another_devices_topics(world: LinkWorld) -> None:
    world.device(A)
    world.device(B)
    central = world.central_link(workers=1)
    b_record = world.record(B)
    b_sealed = world.seal(b_record)
    async with running(central), world.broker.client(A) as raw:
        await raw.subscribe(topics.device_topic(B, topics.ACKS), qos=1)  # refused by the ACL
        await raw.subscribe(topics.device_topic(A, topics.ACKS), qos=1)
        # B's genuine envelope published by A into B's namespace: the broker drops it.
        await raw.publish(topics.device_topic(B, topics.ENROLMENTS), b_sealed, qos=1)
        # ... and into A's own: central sees the header names B, not the sender A.
        await raw.publish(topics.device_topic(A, topics.ENROLMENTS), b_sealed, qos=1)
        message = await _next(raw)
        assert str(message.topic) == topics.device_topic(A, topics.ACKS)
        body = open_message(
            message.payload, keys=lambda s: world.service.signing_public_key, sender=CENTRAL
        ).body
        assert isinstance(body, EnrolmentAck)
        assert body.rejection is not None
        assert body.rejection.code is RejectionCode.DEVICE_MISMATCH
        # Central handled exactly one enrolment message: the one on A's topic.
        await central.wait_processed(1)
        assert central.processed == 1
    assert list(world.service.iter_request_numbers()) == []


async def test_central_keeps_serving_after_bad_payloads(
    world: LinkWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    device = world.device(A)
    pre = world.service.create_prerequest(sample_form())
    central = world.central_link(workers=1)
    marker = b"PAYLOAD-MARKER-0123456789"
    forger = SigningKey.generate()
    rpc_topic = topics.device_topic(A, topics.RPC)
    stale = _rpc(device.signing, at_ms=_now_ms() - 3_600_000)
    replayed = _rpc(device.signing, number=pre.number)
    bad = [
        (rpc_topic, marker, None),  # not CBOR
        (rpc_topic, marker * (MAX_MESSAGE_BYTES // len(marker) + 1), None),  # oversized
        (rpc_topic, _rpc(forger), None),  # forged: not signed by A's registered key
        (rpc_topic, _rpc(device.signing, sender=B), None),  # claims to be another device
        (rpc_topic, stale, None),  # outside the time window
        (rpc_topic, replayed, None),  # valid once...
        (rpc_topic, replayed, None),  # ... replayed
        (rpc_topic, _rpc(device.signing), _response_to(topics.device_topic(B, "rpc/reply"))),
        (topics.device_topic(A, topics.TELEMETRY), marker, None),
        (topics.device_topic(A, topics.ENROLMENTS), marker, None),  # not an envelope
    ]
    async with running(central), world.broker.client(A) as raw:
        await raw.subscribe(topics.device_topic(A, topics.RPC_REPLY), qos=1)
        for topic, payload, properties in bad:
            await raw.publish(topic, payload, qos=1, properties=properties)
        await central.wait_processed(len(bad))
        # Central still answers a good request, in order after all of the above.
        good = _rpc(device.signing, number=pre.number)
        await raw.publish(
            rpc_topic,
            good,
            qos=1,
            properties=_response_to(topics.device_topic(A, topics.RPC_REPLY)),
        )
        replies: list[RpcReply] = []
        while len(replies) < 2:  # the first "replayed" copy, then the good one
            message = await _next(raw)
            body = open_message(
                message.payload, keys=lambda s: world.service.signing_public_key, recipient=A
            ).body
            assert isinstance(body, RpcReply)
            replies.append(body)
        assert all(reply.result is not None for reply in replies)
        assert replies[-1].result is not None
        assert replies[-1].result["number"] == pre.number
    dropped = central.dropped
    for reason in ("malformed", "oversized", "bad_signature", "wrong_party", "stale", "replayed"):
        assert dropped[reason] >= 1, (reason, dropped)
    assert marker.decode() not in caplog.text  # logged, but never the payload bytes


async def test_revoked_device_is_refused_by_central_and_by_the_broker(world: LinkWorld) -> None:
    device = world.device(A)
    central = world.central_link()
    async with running(central, device.link):
        lease = await device.link.lease_numbers(2)
        assert lease.lease.count == 2
        world.service.revoke_device(A)  # the listener drops central's cached key at once
        with pytest.raises(RpcRejectedError) as info:
            await device.link.lease_numbers(2)
        assert info.value.rejection.code is RejectionCode.REVOKED_DEVICE
        world.enqueue(device, 1)
        await device.wait_rejected(1)
        assert next(iter(device.rejected.values())).code is RejectionCode.REVOKED_DEVICE
    # Broker side: certificate revoked, CRL and ACL regenerated, broker restarted.
    world.broker.pki.ca.revoke(A)
    world.broker.process.set_revoked({A})
    world.broker.restart()
    with pytest.raises(aiomqtt.MqttError):
        async with world.broker.client(A, timeout=3):
            pass


async def test_telemetry_and_state_reach_the_fleet_summary(world: LinkWorld) -> None:
    device = world.device(A, telemetry_interval_s=0.1)
    central = world.central_link()
    async with running(central, device.link), world.broker.client("operator") as operator:
        await operator.subscribe(topics.FLEET, qos=1)
        async with asyncio.timeout(WAIT_S):
            async for message in operator.messages:
                body = open_message(
                    message.payload, keys=lambda s: world.service.signing_public_key
                ).body
                entry = getattr(body, "devices", {}).get(A, {})
                if entry.get("status") == "online" and "queue_depth" in entry:
                    break
    assert central.handled["telemetry"] >= 1


async def test_lost_acks_do_not_block_the_window(world: LinkWorld) -> None:
    """Acks lost (central down after the broker took the enrolments) free their slots later."""
    device = world.device(A, inflight_window=2, ack_timeout_s=1.0)
    async with world.broker.client("central") as black_hole:
        await black_hole.subscribe(topics.device_topic(A, topics.ENROLMENTS), qos=1)
        async with running(device.link):
            world.enqueue(device, 4)
            for _ in range(2):  # the window's worth, swallowed without an answer
                await _next(black_hole)
            async with running(world.central_link()):
                await device.wait_acked(4)
    assert len(set(device.acked.values())) == 4
