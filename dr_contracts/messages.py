"""Signed messages of the MQTT link between DR devices and central (sans-IO codecs).

Every message on the link is authenticated at the application level, independently of TLS
and of the broker: a device signs its state, telemetry and RPC requests with its Ed25519 key;
central signs its RPC replies, acknowledgements and fleet summary with its own. Sealed
enrolments (``dr/<id>/enrolments``) are not wrapped: the envelope is signed already
(:mod:`dr_contracts.envelope`).

Wire layout (CBOR)::

    message   = [signed: bstr, signature: bstr(64)]
    signed    = CBOR map {
        "v":    1,                    format version
        "k":    kind (text)           "state" | "telemetry" | "rpc" | "rpc_reply" | "ack" | "fleet"
        "from": sender (text)         a device id, or "central"
        "to":   recipient (text)      "central", a device id, or "*" (broadcast: state, fleet)
        "id":   bstr(16)              random message id (replay detection, RPC correlation)
        "at":   uint                  sending time, milliseconds since the Unix epoch (UTC)
        "b":    map                   the kind's body (below)
    }
    signature = Ed25519(sender's key, SIGNATURE_CONTEXT || signed)

Sender and recipient are inside the signature, so a message cannot be replayed to another
device or re-attributed; the receiver also checks them against the MQTT topic it came on.
Replays are caught with the message id and the time (:class:`ReplayGuard`); RPC replies are
matched to the request id, so an old reply has nothing to match.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal, Self

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dr_contracts import ed25519_sodium
from dr_contracts.keys import SigningKey
from dr_contracts.rejections import Rejection, RejectionCode

__all__ = [
    "BROADCAST",
    "CENTRAL",
    "MAX_MESSAGE_BYTES",
    "SIGNATURE_CONTEXT",
    "BadMessageSignatureError",
    "Body",
    "DeviceState",
    "EnrolmentAck",
    "FleetSummary",
    "LinkMessage",
    "MalformedMessageError",
    "MessageError",
    "MessageKind",
    "OversizedMessageError",
    "ReplayGuard",
    "ReplayedMessageError",
    "RpcOp",
    "RpcReply",
    "RpcRequest",
    "StaleMessageError",
    "Telemetry",
    "UnknownSenderError",
    "WrongPartyError",
    "decode_unverified",
    "encode_message",
    "new_message_id",
    "open_message",
]

FORMAT_VERSION: Final = 1
SIGNATURE_CONTEXT: Final = b"dr-link-message-v1\x00"
CENTRAL: Final = "central"
BROADCAST: Final = "*"
MESSAGE_ID_BYTES: Final = 16
SIGNATURE_BYTES: Final = 64
# Control messages are small (the biggest is a fleet summary of a few hundred devices, or a
# lease of numbers); anything larger is refused before it is decoded.
MAX_MESSAGE_BYTES: Final = 256 * 1024
_MAX_TEXT: Final = 4096


# --- errors --------------------------------------------------------------------------------


class MessageError(ValueError):
    """A link message that must be dropped. ``reason`` is a stable code for logs and counters.

    Messages never include payload bytes: only sizes, kinds, ids.
    """

    reason: ClassVar[str] = "invalid"


class MalformedMessageError(MessageError):
    reason = "malformed"


class OversizedMessageError(MalformedMessageError):
    reason = "oversized"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


class UnknownSenderError(MessageError):
    reason = "unknown_sender"

    def __init__(self, sender: str) -> None:
        super().__init__(f"no trusted key for sender {sender!r}")
        self.sender = sender


class BadMessageSignatureError(MessageError):
    reason = "bad_signature"


class WrongPartyError(MessageError):
    """Sender, recipient or kind differs from what the topic the message came on implies."""

    reason = "wrong_party"


class StaleMessageError(MessageError):
    reason = "stale"

    def __init__(self, sent_at_ms: int, now_ms: int) -> None:
        super().__init__(f"message sent at {sent_at_ms} ms is outside the window at {now_ms} ms")
        self.sent_at_ms = sent_at_ms
        self.now_ms = now_ms


class ReplayedMessageError(MessageError):
    reason = "replayed"

    def __init__(self, sender: str, message_id: bytes) -> None:
        super().__init__(f"message {message_id.hex()} from {sender} was already received")
        self.sender = sender
        self.message_id = message_id


# --- field checks --------------------------------------------------------------------------


def _text(data: Mapping[str, Any], key: str, *, optional: bool = False) -> str:
    value = data.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise MalformedMessageError(f"field {key!r}: expected text")
    return value


def _int(data: Mapping[str, Any], key: str, *, minimum: int = 0) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise MalformedMessageError(f"field {key!r}: expected an integer >= {minimum}")
    return value


def _bytes(data: Mapping[str, Any], key: str, *, size: int | None = None) -> bytes:
    value = data.get(key)
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise MalformedMessageError(f"field {key!r}: expected {size or 'some'} bytes")
    return value


def _map(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise MalformedMessageError(f"field {key!r}: expected a map with text keys")
    return value


def _rejection(data: Mapping[str, Any], key: str) -> Rejection | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedMessageError(f"field {key!r}: expected a rejection map")
    try:
        return Rejection(code=RejectionCode(value["code"]), detail=str(value.get("detail", "")))
    except (KeyError, ValueError) as exc:
        raise MalformedMessageError(f"field {key!r}: bad rejection ({exc})") from None


def _rejection_wire(rejection: Rejection | None) -> dict[str, Any] | None:
    if rejection is None:
        return None
    return {"code": rejection.code.value, "detail": rejection.detail}


# --- bodies --------------------------------------------------------------------------------


class MessageKind(StrEnum):
    STATE = "state"
    TELEMETRY = "telemetry"
    RPC = "rpc"
    RPC_REPLY = "rpc_reply"
    ACK = "ack"
    FLEET = "fleet"


@dataclass(frozen=True, slots=True)
class DeviceState:
    """``dr/<id>/state`` (retained). The offline variant is the connection's last will."""

    KIND: ClassVar[MessageKind] = MessageKind.STATE
    status: Literal["online", "offline"]
    session: bytes  # random per connection: tells a stale will from the current state
    version: str

    def __post_init__(self) -> None:
        if self.status not in ("online", "offline"):
            raise ValueError(f"status must be online or offline, got {self.status!r}")

    def to_wire(self) -> dict[str, Any]:
        return {"status": self.status, "session": self.session, "version": self.version}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        status = _text(data, "status")
        if status not in ("online", "offline"):
            raise MalformedMessageError(f"field 'status': unknown value {status!r}")
        return cls(
            status="online" if status == "online" else "offline",
            session=_bytes(data, "session", size=MESSAGE_ID_BYTES),
            version=_text(data, "version"),
        )


@dataclass(frozen=True, slots=True)
class Telemetry:
    """``dr/<id>/telemetry``: the device's health, every N seconds."""

    KIND: ClassVar[MessageKind] = MessageKind.TELEMETRY
    queue_depth: int
    queue_bytes: int
    oldest_pending_age_s: int | None
    sensor: str
    version: str
    disk_free_bytes: int
    alerts: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {
            "queue_depth": self.queue_depth,
            "queue_bytes": self.queue_bytes,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "sensor": self.sensor,
            "version": self.version,
            "disk_free_bytes": self.disk_free_bytes,
            "alerts": list(self.alerts),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        age = data.get("oldest_pending_age_s")
        alerts = data.get("alerts", [])
        if not isinstance(alerts, list) or not all(isinstance(a, str) for a in alerts):
            raise MalformedMessageError("field 'alerts': expected a list of text")
        return cls(
            queue_depth=_int(data, "queue_depth"),
            queue_bytes=_int(data, "queue_bytes"),
            oldest_pending_age_s=None if age is None else _int(data, "oldest_pending_age_s"),
            sensor=_text(data, "sensor"),
            version=_text(data, "version"),
            disk_free_bytes=_int(data, "disk_free_bytes"),
            alerts=tuple(alerts),
        )


class RpcOp(StrEnum):
    """The request/response operations a device may ask central (declared once, here)."""

    LOOKUP_PREREQUEST = "lookup_prerequest"
    CHECK_STAMP = "check_stamp"
    LEASE_NUMBERS = "lease_numbers"
    HANDOVER_TEMPLATES = "handover_templates"
    RECORD_HANDOVER = "record_handover"


MAX_LEASE_COUNT: Final = 1000
# The operations whose only argument is one identifier (pre-request, stamp or request number).
_NUMBER_OPS: Final = frozenset(
    {
        RpcOp.LOOKUP_PREREQUEST,
        RpcOp.CHECK_STAMP,
        RpcOp.HANDOVER_TEMPLATES,
        RpcOp.RECORD_HANDOVER,
    }
)


def _check_rpc_args(op: RpcOp, args: Mapping[str, Any]) -> None:
    """Arguments per operation: the one place their schema is written down."""
    if op in _NUMBER_OPS:
        if set(args) != {"number"}:
            raise MalformedMessageError(f"{op}: expected exactly the argument 'number'")
        number = _text(args, "number")
        if not 1 <= len(number) <= 64:
            raise MalformedMessageError(f"{op}: 'number' must be 1-64 characters")
    elif op is RpcOp.LEASE_NUMBERS:
        if set(args) != {"count"}:
            raise MalformedMessageError(f"{op}: expected exactly the argument 'count'")
        if not 1 <= _int(args, "count", minimum=1) <= MAX_LEASE_COUNT:
            raise MalformedMessageError(f"{op}: 'count' must be 1-{MAX_LEASE_COUNT}")


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """``dr/<id>/rpc``; the reply goes to the MQTT 5 response topic, correlated by message id."""

    KIND: ClassVar[MessageKind] = MessageKind.RPC
    op: RpcOp
    args: Mapping[str, Any]

    def __post_init__(self) -> None:
        try:
            _check_rpc_args(self.op, self.args)
        except MalformedMessageError as exc:
            raise ValueError(str(exc)) from None

    def to_wire(self) -> dict[str, Any]:
        return {"op": self.op.value, "args": dict(self.args)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        try:
            op = RpcOp(_text(data, "op"))
        except ValueError:
            raise MalformedMessageError("field 'op': unknown operation") from None
        args = _map(data, "args")
        _check_rpc_args(op, args)
        return cls(op=op, args=args)


@dataclass(frozen=True, slots=True)
class RpcReply:
    """``dr/<id>/rpc/reply``: a result map, or central's rejection."""

    KIND: ClassVar[MessageKind] = MessageKind.RPC_REPLY
    request_id: bytes
    result: Mapping[str, Any] | None = None
    rejection: Rejection | None = None

    def __post_init__(self) -> None:
        if (self.result is None) == (self.rejection is None):
            raise ValueError("an RPC reply carries either a result or a rejection")

    def to_wire(self) -> dict[str, Any]:
        return {
            "request": self.request_id,
            "result": None if self.result is None else dict(self.result),
            "rejection": _rejection_wire(self.rejection),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        rejection = _rejection(data, "rejection")
        result = None if data.get("result") is None else _map(data, "result")
        if (result is None) == (rejection is None):
            raise MalformedMessageError("an RPC reply carries either a result or a rejection")
        return cls(
            request_id=_bytes(data, "request", size=MESSAGE_ID_BYTES),
            result=result,
            rejection=rejection,
        )


@dataclass(frozen=True, slots=True)
class EnrolmentAck:
    """``dr/<id>/acks``: central's signed acknowledgement bytes, or a rejection.

    ``ack`` is :class:`dr_contracts.acks.Ack` in its own signed wire form: the device verifies
    it with :func:`dr_contracts.acks.verify_ack` before marking the outbox row acked.
    """

    KIND: ClassVar[MessageKind] = MessageKind.ACK
    enrolment_id: str
    ack: bytes | None = None
    rejection: Rejection | None = None

    def __post_init__(self) -> None:
        if (self.ack is None) == (self.rejection is None):
            raise ValueError("an enrolment ack carries either an ack or a rejection")

    def to_wire(self) -> dict[str, Any]:
        return {
            "enrolment": self.enrolment_id,
            "ack": self.ack,
            "rejection": _rejection_wire(self.rejection),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        rejection = _rejection(data, "rejection")
        ack = None if data.get("ack") is None else _bytes(data, "ack")
        if (ack is None) == (rejection is None):
            raise MalformedMessageError("an enrolment ack carries either an ack or a rejection")
        return cls(enrolment_id=_text(data, "enrolment"), ack=ack, rejection=rejection)


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """``central/fleet`` (retained): per-device status for dashboards."""

    KIND: ClassVar[MessageKind] = MessageKind.FLEET
    devices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"devices": {k: dict(v) for k, v in self.devices.items()}}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        devices = _map(data, "devices")
        if not all(isinstance(v, dict) for v in devices.values()):
            raise MalformedMessageError("field 'devices': expected a map of maps")
        return cls(devices=devices)


Body = DeviceState | Telemetry | RpcRequest | RpcReply | EnrolmentAck | FleetSummary
_BODY_TYPES: Final[dict[MessageKind, type[Body]]] = {
    cls.KIND: cls
    for cls in (DeviceState, Telemetry, RpcRequest, RpcReply, EnrolmentAck, FleetSummary)
}


# --- the signed message --------------------------------------------------------------------


def new_message_id() -> bytes:
    return secrets.token_bytes(MESSAGE_ID_BYTES)


@dataclass(frozen=True, slots=True)
class LinkMessage:
    """A decoded link message (authenticated if it came from :func:`open_message`)."""

    sender: str
    recipient: str
    message_id: bytes
    sent_at_ms: int
    body: Body

    @property
    def kind(self) -> MessageKind:
        return self.body.KIND


def encode_message(
    body: Body,
    *,
    sender: str,
    recipient: str,
    key: SigningKey,
    now_ms: int,
    message_id: bytes | None = None,
) -> bytes:
    """Sign ``body`` as ``sender`` for ``recipient``; return the wire bytes."""
    message_id = new_message_id() if message_id is None else message_id
    if len(message_id) != MESSAGE_ID_BYTES:
        raise ValueError(f"message_id must be {MESSAGE_ID_BYTES} bytes")
    signed = cbor2.dumps(
        {
            "v": FORMAT_VERSION,
            "k": body.KIND.value,
            "from": sender,
            "to": recipient,
            "id": message_id,
            "at": now_ms,
            "b": body.to_wire(),
        },
        canonical=True,
    )
    data = cbor2.dumps([signed, key.sign(SIGNATURE_CONTEXT + signed)])
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return data


def _reject_tag(_decoder: object, tag: object) -> object:
    raise MalformedMessageError("CBOR tags are not allowed in link messages")


def _loads(data: bytes) -> object:
    try:
        return cbor2.loads(data, tag_hook=_reject_tag)
    except MalformedMessageError:
        raise
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedMessageError(f"not CBOR: {type(exc).__name__}") from None


def _split(data: bytes, *, max_bytes: int) -> tuple[bytes, bytes, LinkMessage]:
    if not isinstance(data, bytes | bytearray):
        raise MalformedMessageError("payload must be bytes")
    if len(data) > max_bytes:
        raise OversizedMessageError(len(data), max_bytes)
    outer = _loads(bytes(data))
    if not (
        isinstance(outer, list)
        and len(outer) == 2
        and isinstance(outer[0], bytes)
        and isinstance(outer[1], bytes)
        and len(outer[1]) == SIGNATURE_BYTES
    ):
        raise MalformedMessageError("a link message is [signed bytes, 64-byte signature]")
    signed, signature = outer
    fields = _loads(signed)
    if not isinstance(fields, dict):
        raise MalformedMessageError("signed part must be a map")
    if fields.get("v") != FORMAT_VERSION:
        raise MalformedMessageError(f"unsupported link message version {fields.get('v')!r}")
    try:
        kind = MessageKind(_text(fields, "k"))
    except ValueError:
        raise MalformedMessageError("unknown message kind") from None
    body = _BODY_TYPES[kind].from_wire(_map(fields, "b"))
    message = LinkMessage(
        sender=_text(fields, "from"),
        recipient=_text(fields, "to"),
        message_id=_bytes(fields, "id", size=MESSAGE_ID_BYTES),
        sent_at_ms=_int(fields, "at"),
        body=body,
    )
    return signed, signature, message


def decode_unverified(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> LinkMessage:
    """Decode WITHOUT checking the signature (dashboards that only display; tests)."""
    return _split(data, max_bytes=max_bytes)[2]


def open_message(
    data: bytes,
    *,
    keys: Callable[[str], Ed25519PublicKey | None],
    sender: str | None = None,
    recipient: str | None = None,
    kinds: frozenset[MessageKind] | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> LinkMessage:
    """Decode and authenticate a link message.

    Parameters
    ----------
    keys : sender id -> its trusted Ed25519 public key, or None (unknown or revoked).
    sender, recipient : what the MQTT topic implies; a message claiming otherwise is refused.
    kinds : the kinds allowed on that topic.

    Raises
    ------
    MalformedMessageError, OversizedMessageError, UnknownSenderError,
    BadMessageSignatureError, WrongPartyError (all :class:`MessageError`).
    Freshness and replays are :class:`ReplayGuard`'s job.
    """
    signed, signature, message = _split(data, max_bytes=max_bytes)
    if sender is not None and message.sender != sender:
        raise WrongPartyError(f"message claims sender {message.sender!r}, topic says {sender!r}")
    if recipient is not None and message.recipient != recipient:
        raise WrongPartyError(f"message for {message.recipient!r} received as {recipient!r}")
    if kinds is not None and message.kind not in kinds:
        raise WrongPartyError(f"message kind {message.kind} not expected here")
    public_key = keys(message.sender)
    if public_key is None:
        raise UnknownSenderError(message.sender)
    try:
        ed25519_sodium.verify(public_key, signature, SIGNATURE_CONTEXT + signed)
    except InvalidSignature:
        raise BadMessageSignatureError(
            f"signature of {message.kind} {message.message_id.hex()} from {message.sender} "
            "does not verify"
        ) from None
    return message


class ReplayGuard:
    """Refuses messages outside a time window around now, and any message id seen before.

    Ids are remembered for as long as the window lets them in (bounded by ``max_entries``;
    when full, the oldest ids are forgotten and the window shrinks to the oldest kept).
    Sans-IO: the caller passes the time.
    """

    def __init__(self, *, window_ms: int = 5 * 60_000, max_entries: int = 100_000) -> None:
        if window_ms <= 0 or max_entries <= 0:
            raise ValueError("window_ms and max_entries must be positive")
        self.window_ms = window_ms
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, bytes], int] = OrderedDict()
        self._floor_ms = 0  # messages older than this may have been forgotten: refuse them

    def check(self, message: LinkMessage, *, now_ms: int) -> None:
        """Accept ``message`` once (remembering it) or raise Stale/ReplayedMessageError."""
        self._expire(now_ms)
        at = message.sent_at_ms
        if abs(now_ms - at) > self.window_ms or at <= self._floor_ms:
            raise StaleMessageError(at, now_ms)
        key = (message.sender, message.message_id)
        if key in self._seen:
            raise ReplayedMessageError(message.sender, message.message_id)
        self._seen[key] = max(at, now_ms)
        while len(self._seen) > self.max_entries:
            _, forgotten_at = self._seen.popitem(last=False)
            self._floor_ms = max(self._floor_ms, forgotten_at)

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.window_ms
        while self._seen:
            key, seen_at = next(iter(self._seen.items()))
            if seen_at >= horizon:
                break
            del self._seen[key]
