"""The feed's message handling alone (no broker): bad input is counted, never shown, never fatal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central.dashboard import DashboardFeed, FeedSettings, FleetHub, FleetModel
from dr_contracts import topics
from dr_contracts.acks import Ack
from dr_contracts.keys import SigningKey
from dr_contracts.messages import (
    BROADCAST,
    CENTRAL,
    MAX_MESSAGE_BYTES,
    DeviceState,
    EnrolmentAck,
    Telemetry,
    encode_message,
)
from dr_contracts.rejections import Rejection, RejectionCode

DEVICE = "dr-91228-01"


@dataclass
class _Device:
    device_id: str
    state: str
    signing_key: Ed25519PublicKey


class _Source:
    def __init__(self, device_key: SigningKey, central_key: SigningKey) -> None:
        self.registry = {DEVICE: _Device(DEVICE, "active", device_key.public_key)}
        self.signing_public_key = central_key.public_key

    def device(self, device_id: str) -> _Device | None:
        return self.registry.get(device_id)

    def devices(self) -> Sequence[_Device]:
        return list(self.registry.values())

    def requests_by_stage(self) -> dict[str, int]:
        return {"received": 7}


@pytest.fixture
def keys() -> tuple[SigningKey, SigningKey]:
    return SigningKey.generate(), SigningKey.generate()


@pytest.fixture
def feed(keys: tuple[SigningKey, SigningKey]) -> DashboardFeed:
    settings = FeedSettings(
        host="127.0.0.1",
        port=1,
        ca_file=Path("ca.crt"),
        cert_file=Path("c.crt"),
        key_file=Path("c.key"),
        client_id="t",
    )
    return DashboardFeed(settings, hub=FleetHub(FleetModel()), source=_Source(*keys))


TELEMETRY = Telemetry(
    queue_depth=4,
    queue_bytes=1,
    oldest_pending_age_s=10,
    sensor="ready",
    version="1",
    disk_free_bytes=1 << 34,
)


async def test_valid_messages_update_the_model(
    feed: DashboardFeed, keys: tuple[SigningKey, SigningKey]
) -> None:
    device_key, central_key = keys
    topic = topics.device_topic(DEVICE, topics.TELEMETRY)
    await feed.handle(
        topic, encode_message(TELEMETRY, sender=DEVICE, recipient=CENTRAL, key=device_key, now_ms=5)
    )
    assert feed.hub.model.devices[DEVICE].queue_depth == 4
    now = datetime.now(UTC)
    acks_topic = topics.device_topic(DEVICE, topics.ACKS)
    for i, ack_key in enumerate((central_key, SigningKey.generate())):  # the second is forged
        ack = Ack.signed(
            enrolment_id=f"e-{i}",
            device_id=DEVICE,
            request_number="REQ",
            prerequest_number="PRE",
            received_at=now,
            recorded_at=now,
            key=ack_key,
        )
        body = EnrolmentAck(enrolment_id=f"e-{i}", ack=ack.to_bytes())
        await feed.handle(
            acks_topic,
            encode_message(body, sender=CENTRAL, recipient=DEVICE, key=central_key, now_ms=5),
        )
    assert feed.hub.model.enrolments_total == 1
    assert feed.hub.model.by_department() == {"91": 1}
    await feed.refresh_registry()
    assert feed.hub.model.request_stages == {"received": 7}
    assert feed.hub.model.devices[DEVICE].registry == "active"


@pytest.mark.parametrize(
    ("leaf", "payload", "reason"),
    [
        (topics.TELEMETRY, b"\xff\x00garbage", "message_malformed"),
        (topics.STATE, b"x" * (MAX_MESSAGE_BYTES + 1), "message_oversized"),
    ],
)
async def test_garbage_is_counted_against_the_device(
    feed: DashboardFeed, leaf: str, payload: bytes, reason: str
) -> None:
    await feed.handle(topics.device_topic(DEVICE, leaf), payload)
    assert feed.hub.model.rejections == {reason: 1}
    assert feed.hub.model.devices[DEVICE].status == "unknown"


async def test_forged_misaddressed_and_unknown_messages_are_dropped(
    feed: DashboardFeed, keys: tuple[SigningKey, SigningKey]
) -> None:
    device_key, central_key = keys
    state = DeviceState(status="online", session=b"s" * 16, version="1")
    state_topic = topics.device_topic(DEVICE, topics.STATE)
    other = SigningKey.generate()
    # Signed by another key; claiming another sender; telemetry on the state topic.
    await feed.handle(
        state_topic, encode_message(state, sender=DEVICE, recipient=BROADCAST, key=other, now_ms=1)
    )
    await feed.handle(
        state_topic,
        encode_message(state, sender="dr-75056-01", recipient=BROADCAST, key=other, now_ms=1),
    )
    await feed.handle(
        state_topic,
        encode_message(TELEMETRY, sender=DEVICE, recipient=CENTRAL, key=device_key, now_ms=1),
    )
    # An unregistered device.
    await feed.handle(
        topics.device_topic("dr-13055-01", topics.STATE),
        encode_message(state, sender="dr-13055-01", recipient=BROADCAST, key=other, now_ms=1),
    )
    # Not a device topic at all, and an ack that central did not sign.
    await feed.handle("central/fleet", b"whatever")
    forged_ack = EnrolmentAck(enrolment_id="e-1", rejection=Rejection(RejectionCode.BAD_SIGNATURE))
    await feed.handle(
        topics.device_topic(DEVICE, topics.ACKS),
        encode_message(forged_ack, sender=CENTRAL, recipient=DEVICE, key=other, now_ms=1),
    )
    model = feed.hub.model
    assert model.rejections == {
        "message_bad_signature": 1,
        "message_wrong_party": 2,
        "message_unknown_sender": 1,
    }
    assert model.devices[DEVICE].status == "unknown"
    real_rejection = encode_message(
        forged_ack, sender=CENTRAL, recipient=DEVICE, key=central_key, now_ms=1
    )
    await feed.handle(topics.device_topic(DEVICE, topics.ACKS), real_rejection)
    assert model.rejections["bad_signature"] == 1
