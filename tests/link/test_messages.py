"""dr_contracts.messages: the signed link messages, sans-IO."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from dr_contracts.keys import SigningKey
from dr_contracts.messages import (
    CENTRAL,
    MAX_MESSAGE_BYTES,
    BadMessageSignatureError,
    Body,
    DeviceState,
    EnrolmentAck,
    FleetSummary,
    MalformedMessageError,
    MessageError,
    MessageKind,
    OversizedMessageError,
    ReplayedMessageError,
    ReplayGuard,
    RpcOp,
    RpcReply,
    RpcRequest,
    StaleMessageError,
    Telemetry,
    UnknownSenderError,
    WrongPartyError,
    decode_unverified,
    encode_message,
    new_message_id,
    open_message,
)
from dr_contracts.rejections import Rejection, RejectionCode

DEVICE = "dr-91228-01"
NOW = 1_790_000_000_000
KEY = SigningKey.generate()
OTHER = SigningKey.generate()

BODIES: list[Body] = [
    DeviceState(status="online", session=new_message_id(), version="1.2.3"),
    Telemetry(
        queue_depth=3,
        queue_bytes=123_456,
        oldest_pending_age_s=42,
        sensor="ready",
        version="1.2.3",
        disk_free_bytes=10**9,
        alerts=("backlog",),
    ),
    RpcRequest(op=RpcOp.LOOKUP_PREREQUEST, args={"number": "ABCDEFGHIJ"}),
    RpcRequest(op=RpcOp.LEASE_NUMBERS, args={"count": 20}),
    RpcReply(request_id=new_message_id(), result={"status": "validated", "n": [1, 2]}),
    RpcReply(request_id=new_message_id(), rejection=Rejection(RejectionCode.STAMP_USED, "x")),
    EnrolmentAck(enrolment_id="0f8a", ack=b"signed-ack"),
    EnrolmentAck(enrolment_id="0f8a", rejection=Rejection(RejectionCode.PREREQUEST_CONSUMED)),
    FleetSummary(devices={DEVICE: {"status": "online", "queue_depth": 0}}),
]


def keys(sender: str) -> Ed25519PublicKey | None:
    return KEY.public_key if sender == DEVICE else None


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_round_trip(body: Body) -> None:
    data = encode_message(body, sender=DEVICE, recipient=CENTRAL, key=KEY, now_ms=NOW)
    message = open_message(data, keys=keys, sender=DEVICE, recipient=CENTRAL)
    assert message.body == body
    assert message.sender == DEVICE
    assert message.recipient == CENTRAL
    assert message.sent_at_ms == NOW
    assert len(message.message_id) == 16


def _encode(
    body: Body = BODIES[2],
    *,
    sender: str = DEVICE,
    key: SigningKey = KEY,
    now_ms: int = NOW,
) -> bytes:
    return encode_message(body, sender=sender, recipient=CENTRAL, key=key, now_ms=now_ms)


def test_every_flipped_byte_is_refused() -> None:
    data = _encode()
    for index in range(len(data)):
        altered = bytearray(data)
        altered[index] ^= 0x01
        with pytest.raises(MessageError):
            open_message(bytes(altered), keys=keys)


def test_signed_by_another_key_is_refused() -> None:
    with pytest.raises(BadMessageSignatureError):
        open_message(_encode(key=OTHER), keys=keys)


def test_unknown_sender_is_refused() -> None:
    data = _encode(sender="dr-91228-02", key=OTHER)
    with pytest.raises(UnknownSenderError):
        open_message(data, keys=keys)


def test_sender_recipient_and_kind_must_match_the_topic() -> None:
    data = _encode()
    with pytest.raises(WrongPartyError):
        open_message(data, keys=keys, sender="dr-91228-02")
    with pytest.raises(WrongPartyError):
        open_message(data, keys=keys, recipient="dr-91228-02")
    with pytest.raises(WrongPartyError):
        open_message(data, keys=keys, kinds=frozenset({MessageKind.TELEMETRY}))


def test_oversized_is_refused_before_decoding() -> None:
    with pytest.raises(OversizedMessageError):
        open_message(b"\x00" * (MAX_MESSAGE_BYTES + 1), keys=keys)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"garbage",
        cbor2.dumps([b"x", b"y"]),
        cbor2.dumps([cbor2.dumps({"v": 2}), b"s" * 64]),
        cbor2.dumps([cbor2.dumps({"v": 1, "k": "nope"}), b"s" * 64]),
        cbor2.dumps([cbor2.dumps([1, 2]), b"s" * 64]),
        cbor2.dumps(cbor2.CBORTag(55799, [b"x", b"s" * 64])),
    ],
)
def test_malformed_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        open_message(payload, keys=keys)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_message_errors(payload: bytes) -> None:
    with pytest.raises(MessageError):
        open_message(payload, keys=keys)


def test_bad_rpc_arguments_are_refused_on_both_sides() -> None:
    with pytest.raises(ValueError, match="count"):
        RpcRequest(op=RpcOp.LEASE_NUMBERS, args={"count": 0})
    signed = cbor2.dumps(
        {
            "v": 1,
            "k": "rpc",
            "from": DEVICE,
            "to": CENTRAL,
            "id": new_message_id(),
            "at": NOW,
            "b": {"op": "lookup_prerequest", "args": {"number": "X", "extra": 1}},
        }
    )
    data = cbor2.dumps([signed, KEY.sign(b"dr-link-message-v1\x00" + signed)])
    with pytest.raises(MalformedMessageError, match="number"):
        open_message(data, keys=keys)


def test_replay_guard_refuses_replays_and_stale_messages() -> None:
    guard = ReplayGuard(window_ms=60_000)
    message = decode_unverified(_encode())
    guard.check(message, now_ms=NOW)
    with pytest.raises(ReplayedMessageError):
        guard.check(message, now_ms=NOW + 1)
    with pytest.raises(StaleMessageError):
        guard.check(decode_unverified(_encode(now_ms=NOW - 61_000)), now_ms=NOW)
    with pytest.raises(StaleMessageError):
        guard.check(decode_unverified(_encode(now_ms=NOW + 61_000)), now_ms=NOW)
    # Once forgotten (window passed), the same message is stale, never accepted again.
    with pytest.raises(StaleMessageError):
        guard.check(message, now_ms=NOW + 120_000)


def test_replay_guard_capacity_never_reopens_a_replay() -> None:
    guard = ReplayGuard(window_ms=60_000, max_entries=10)
    first = decode_unverified(_encode(now_ms=NOW))
    guard.check(first, now_ms=NOW)
    for i in range(20):
        guard.check(decode_unverified(_encode(now_ms=NOW + 1 + i)), now_ms=NOW + 1 + i)
    with pytest.raises((ReplayedMessageError, StaleMessageError)):
        guard.check(first, now_ms=NOW + 30)
