"""Central's MQTT side: consumes device topics, answers RPCs, acknowledges enrolments.

Several instances can run against one broker: requests and enrolments arrive through shared
subscriptions (``$share/central/dr/+/rpc``, ``.../enrolments``), so each is handled by one
instance; if two instances ever see the same enrolment (a resend after a lost ack), central's
database deduplicates it and both answer with the same stored acknowledgement. State and
telemetry are read by every instance (plain subscriptions) for the fleet summary.

Nothing a device sends can stop the loop: malformed, oversized, forged, replayed or
misaddressed messages are counted and logged (reason, topic, size; never payload bytes) and
dropped, or answered with a rejection when the device can be told.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.mqtt.backend import LinkBackend
from central.mqtt.fleet import FleetView
from central.mqtt.settings import CentralLinkSettings
from dr_contracts import topics
from dr_contracts.acks import Ack
from dr_contracts.envelope import EnvelopeError, peek_header
from dr_contracts.keys import SigningKey
from dr_contracts.messages import (
    BROADCAST,
    CENTRAL,
    DeviceState,
    EnrolmentAck,
    FleetSummary,
    LinkMessage,
    MessageError,
    MessageKind,
    ReplayGuard,
    RpcOp,
    RpcReply,
    RpcRequest,
    Telemetry,
    UnknownSenderError,
    decode_unverified,
    encode_message,
    open_message,
)
from dr_contracts.rejections import Rejection, RejectionCode
from edge.link.transport import NODELAY, client_tls_context
from edge.queue.backoff import Backoff

__all__ = ["CentralLink"]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

# Batches of enrolment answers being published while the next batch is ingested.
_ACK_BATCHES = 2

# What a ValueError raised by the service on an argument means, per operation.
_MALFORMED_ARGUMENT: dict[RpcOp, RejectionCode] = {
    RpcOp.LOOKUP_PREREQUEST: RejectionCode.PREREQUEST_MALFORMED,
    RpcOp.CHECK_STAMP: RejectionCode.PREREQUEST_MALFORMED,
    RpcOp.LEASE_NUMBERS: RejectionCode.LEASE_LIMIT,
    RpcOp.HANDOVER_TEMPLATES: RejectionCode.NUMBER_MALFORMED,
    RpcOp.RECORD_HANDOVER: RejectionCode.NUMBER_MALFORMED,
}


async def _to_the_end(run: asyncio.Future[None]) -> None:
    """Wait for a worker thread's ``run``; if cancelled meanwhile, wait for it to end first
    (a thread cannot be cancelled, and shutdown must not close the service under it)."""
    try:
        await asyncio.shield(run)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await run
        raise


class CentralLink:
    """Central's MQTT client. ``await run()`` (in a TaskGroup); cancel to stop."""

    def __init__(
        self,
        settings: CentralLinkSettings,
        *,
        backend: LinkBackend,
        signing_key: SigningKey,
        clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._backend = backend
        self._key = signing_key
        self._clock = clock
        self._rng = rng or random.Random()  # jitter only
        self._guard = ReplayGuard(window_ms=int(settings.replay_window_s * 1000))
        # device id -> (when looked up, its key if active, why not otherwise)
        self._keys: dict[str, tuple[float, Ed25519PublicKey | None, RejectionCode | None]] = {}
        self.processed = 0
        self._progress = asyncio.Condition()
        self.fleet = FleetView()
        self.dropped: collections.Counter[str] = collections.Counter()
        self.handled: collections.Counter[str] = collections.Counter()
        self._connected = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.workers)
        # Enrolments wait here to be ingested in batches: one database commit (one fsync)
        # for all those that arrived together. Bounded: a full queue holds the workers back.
        self._enrolments: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(
            maxsize=settings.max_batch * 2
        )
        # Loaded once: a new client after a failure must not depend on the files again.
        self._tls = client_tls_context(
            ca_file=settings.ca_file, cert_file=settings.cert_file, key_file=settings.key_file
        )
        self._client = self._make_client()

    def _make_client(self) -> aiomqtt.Client:
        settings = self.settings
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            identifier=settings.instance,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=self._tls,
            socket_options=NODELAY,
            keepalive=settings.keepalive_s,
            timeout=settings.connect_timeout_s,
            logger=logging.getLogger(f"{__name__}.mqtt"),
        )
        # Up to `workers` handlers and `_ACK_BATCHES` batches of acks publish at once, by design.
        client.pending_calls_threshold = settings.workers + _ACK_BATCHES * settings.max_batch + 10
        return client

    # -- public -------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def wait_processed(self, count: int) -> None:
        """Wait until ``count`` messages have been handled (or dropped) since the start."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.processed >= count)

    def forget_device(self, device_id: str) -> None:
        """Revocation hook (``CentralService.add_revocation_listener``): drop the cached key."""
        self._keys.pop(device_id, None)
        self.fleet.on_revoked(device_id)

    # -- the reconnect loop -------------------------------------------------------------------
    async def run(self) -> None:
        backoff = Backoff(
            initial_s=self.settings.reconnect_initial_s,
            maximum_s=self.settings.reconnect_max_s,
            factor=2.0,
            jitter=0.5,
        )
        failures = 0
        while True:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    # Bounded: a reused aiomqtt client can be left unable to connect by a
                    # connection that died badly (seen under SIGKILL chaos); then rebuild it.
                    async with asyncio.timeout(self.settings.connect_timeout_s + 5):
                        await stack.enter_async_context(self._client)
                    failures = 0
                    await self._serve()
            except* TimeoutError:
                logger.warning("central link: connection attempt hung; new client")
                self._client = self._make_client()
            except* aiomqtt.MqttError as group:
                logger.warning("central link: connection lost or refused: %s", group.exceptions[0])
            finally:
                self._connected.clear()
            self._client = self._make_client()  # see EdgeLink: no reuse after a failure
            failures += 1
            await asyncio.sleep(backoff.delay(failures, self._rng))  # backoff, not sync

    async def _serve(self) -> None:
        client = self._client
        group = self.settings.share_group
        for leaf in (topics.RPC, topics.ENROLMENTS):
            await client.subscribe(topics.shared(leaf, group=group), qos=1)
        for leaf in (topics.STATE, topics.TELEMETRY):
            await client.subscribe(f"{topics.DEVICE_ROOT}/+/{leaf}", qos=1)
        self._connected.set()
        logger.info("central link %s: connected", self.settings.instance)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._publish_fleet())
            tg.create_task(self._ingest_loop())
            async for message in client.messages:
                await self._slots.acquire()  # backpressure: at most `workers` at once
                tg.create_task(self._handle_slot(message))

    async def _handle_slot(self, message: aiomqtt.Message) -> None:
        try:
            await self._handle(message)
        except aiomqtt.MqttError:
            raise  # the connection is gone: let the loop reconnect
        except Exception:
            # A bug must not stop central from serving every other device.
            self.dropped["internal_error"] += 1
            logger.exception("central link: failed handling a message on %s", message.topic)
        finally:
            self._slots.release()
            async with self._progress:
                self.processed += 1
                self._progress.notify_all()

    # -- dispatch -----------------------------------------------------------------------------
    async def _handle(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        payload = message.payload
        try:
            parsed = topics.parse_device_topic(topic)
        except ValueError:
            self._drop(topic, "unexpected_topic", 0)
            return
        device_id, leaf = parsed.device_id, parsed.leaf
        if leaf == topics.ENROLMENTS:
            await self._enrolments.put((device_id, payload))
            return
        kinds = {
            topics.RPC: MessageKind.RPC,
            topics.TELEMETRY: MessageKind.TELEMETRY,
            topics.STATE: MessageKind.STATE,
        }
        kind = kinds.get(leaf)
        if kind is None:
            self._drop(topic, "unexpected_topic", len(payload))
            return
        recipient = BROADCAST if kind is MessageKind.STATE else CENTRAL
        try:
            key, refusal = await self._device_key(device_id)
            link_message = open_message(
                payload,
                keys=lambda sender: key if sender == device_id else None,
                sender=device_id,
                recipient=recipient,
                kinds=frozenset({kind}),
            )
            if kind is not MessageKind.STATE:
                # Retained state is legitimately old; everything else must be fresh and new.
                self._guard.check(link_message, now_ms=self._now_ms())
        except UnknownSenderError as exc:
            self._drop(topic, exc.reason, len(payload))
            if kind is MessageKind.RPC:
                await self._refuse_rpc(device_id, payload, message.properties, refusal)
            return
        except MessageError as exc:
            self._drop(topic, exc.reason, len(payload))
            return
        self.handled[kind.value] += 1
        if kind is MessageKind.RPC:
            await self._on_rpc(device_id, link_message, message.properties)
        elif isinstance(link_message.body, Telemetry):
            self.fleet.on_telemetry(device_id, link_message.body, at_ms=link_message.sent_at_ms)
        elif isinstance(link_message.body, DeviceState):
            self.fleet.on_state(device_id, link_message.body, at_ms=link_message.sent_at_ms)

    def _drop(self, topic: str, reason: str, size: int) -> None:
        self.dropped[reason] += 1
        logger.warning("central link: dropped message on %s: %s (%d bytes)", topic, reason, size)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _device_key(self, device_id: str) -> tuple[Ed25519PublicKey | None, RejectionCode]:
        """The device's registered key if it is active (else None), and the refusal code."""
        now = time.monotonic()
        cached = self._keys.get(device_id)
        if cached is None or now - cached[0] >= self.settings.device_cache_s:
            device = await asyncio.to_thread(self._backend.device, device_id)
            if device is None:
                cached = (now, None, RejectionCode.UNKNOWN_DEVICE)
            elif device.state != "active":
                cached = (now, None, RejectionCode.REVOKED_DEVICE)
            else:
                cached = (now, device.signing_key, None)
            self._keys[device_id] = cached
        return cached[1], cached[2] or RejectionCode.UNKNOWN_DEVICE

    def _sign(self, body: Any, *, recipient: str) -> bytes:
        return encode_message(
            body, sender=CENTRAL, recipient=recipient, key=self._key, now_ms=self._now_ms()
        )

    # -- RPC ----------------------------------------------------------------------------------
    async def _refuse_rpc(
        self,
        device_id: str,
        payload: bytes,
        properties: Properties | None,
        code: RejectionCode,
    ) -> None:
        """Tell an unknown or revoked device why it gets no answer (signed by central).

        The request is unauthenticated here: only its id is used, to address the refusal, on
        the device's own reply topic (the broker authenticated the topic by certificate).
        """
        try:
            request_id = decode_unverified(payload).message_id
        except MessageError:
            return
        reply = RpcReply(request_id=request_id, rejection=Rejection(code, device_id))
        correlation = getattr(properties, "CorrelationData", None) if properties else None
        await self._client.publish(
            topics.device_topic(device_id, topics.RPC_REPLY),
            self._sign(reply, recipient=device_id),
            qos=1,
            properties=_publish_properties(correlation),
        )

    async def _on_rpc(
        self, device_id: str, message: LinkMessage, properties: Properties | None
    ) -> None:
        request = message.body
        assert isinstance(request, RpcRequest)
        reply_topic = topics.device_topic(device_id, topics.RPC_REPLY)
        asked = getattr(properties, "ResponseTopic", None) if properties is not None else None
        if asked is not None and asked != reply_topic:
            # Central may publish anywhere under dr/: never let a device choose where.
            self._drop(topics.device_topic(device_id, topics.RPC), "wrong_party", 0)
            return
        correlation = getattr(properties, "CorrelationData", None) if properties else None
        result, rejection = await asyncio.to_thread(self._call, device_id, request)
        reply = RpcReply(request_id=message.message_id, result=result, rejection=rejection)
        signed = self._sign(reply, recipient=device_id)
        audit = None
        if request.op is RpcOp.LOOKUP_PREREQUEST and result is not None:
            # Audited while the reply goes out: the append's fsync (0.2-4 ms on the disks
            # measured) stays out of the device's round trip. The handler still waits for
            # it, even when cancelled, so a clean shutdown loses no entry.
            audit = asyncio.ensure_future(
                asyncio.to_thread(
                    self._backend.audit_lookup, str(result["number"]), device_id=device_id
                )
            )
        try:
            await self._client.publish(
                reply_topic, signed, qos=1, properties=_publish_properties(correlation)
            )
        finally:
            if audit is not None:
                await _to_the_end(audit)

    def _call(
        self, device_id: str, request: RpcRequest
    ) -> tuple[dict[str, Any] | None, Rejection | None]:
        """Run one RPC against the service (in a worker thread)."""
        backend = self._backend
        op = request.op
        try:
            if op is RpcOp.LOOKUP_PREREQUEST:
                answer: Any = backend.lookup_prerequest(
                    str(request.args["number"]), device_id=device_id, audit=False
                )
            elif op is RpcOp.CHECK_STAMP:
                answer = backend.check_stamp(str(request.args["number"]), device_id=device_id)
            elif op is RpcOp.HANDOVER_TEMPLATES:
                answer = backend.handover_templates(
                    str(request.args["number"]), device_id=device_id
                )
            elif op is RpcOp.RECORD_HANDOVER:
                answer = backend.record_handover(str(request.args["number"]), device_id=device_id)
            else:
                answer = backend.lease_numbers(device_id, count=int(request.args["count"]))
        except ValueError as exc:
            return None, Rejection(_MALFORMED_ARGUMENT[op], str(exc)[:200])
        except Exception:
            logger.exception("central link: %s failed for %s", op, device_id)
            return None, Rejection(RejectionCode.INTERNAL_ERROR)
        if isinstance(answer, Rejection):
            return None, answer
        if op is RpcOp.LEASE_NUMBERS:
            return {"lease": answer.signed}, None
        if op is RpcOp.HANDOVER_TEMPLATES:
            # Already sealed to the device's handover key (dr_contracts.handover): the reply's
            # signature authenticates it, only the device can open it.
            return {"sealed": answer}, None
        result: dict[str, Any] = answer.to_dict()
        return result, None

    # -- enrolments ---------------------------------------------------------------------------
    async def _ingest_loop(self) -> None:
        """Take every enrolment waiting (up to ``max_batch``), ingest them together.

        The answers of a committed batch are published while the next batch is ingested, all
        at once: publishing them one by one, each waiting for its PUBACK, held the next
        transaction back by a broker round trip per enrolment. At most ``_ACK_BATCHES``
        batches of answers are in flight.
        """
        slots = asyncio.Semaphore(_ACK_BATCHES)
        async with asyncio.TaskGroup() as tg:
            while True:
                batch = [await self._enrolments.get()]
                while len(batch) < self.settings.max_batch and not self._enrolments.empty():
                    batch.append(self._enrolments.get_nowait())
                # Answers come back only once the batch's transaction is committed.
                answers = await asyncio.to_thread(self._ingest, batch)
                await slots.acquire()
                tg.create_task(self._answer_batch(batch, answers, slots))

    async def _answer_batch(
        self,
        batch: list[tuple[str, bytes]],
        answers: list[Ack | Rejection],
        slots: asyncio.Semaphore,
    ) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for (device_id, payload), answer in zip(batch, answers, strict=True):
                    tg.create_task(self._answer_enrolment(device_id, payload, answer))
        finally:
            slots.release()

    def _ingest(self, batch: list[tuple[str, bytes]]) -> list[Ack | Rejection]:
        """Central's service, in a worker thread: a group commit when it offers one."""
        ingest_batch = getattr(self._backend, "ingest_batch", None)
        if ingest_batch is not None:
            answers: list[Ack | Rejection] = ingest_batch(
                [(payload, device_id) for device_id, payload in batch]
            )
            return answers
        return [self._backend.ingest(payload, device_id=device_id) for device_id, payload in batch]

    async def _answer_enrolment(
        self, device_id: str, payload: bytes, answer: Ack | Rejection
    ) -> None:
        topic = topics.device_topic(device_id, topics.ENROLMENTS)
        if isinstance(answer, Ack):
            self.handled["enrolment"] += 1
            body = EnrolmentAck(enrolment_id=answer.enrolment_id, ack=answer.to_bytes())
        else:
            try:
                # Unauthenticated, only to address the rejection; it goes to the device's own
                # topic (the one the broker let this payload in from), nowhere else.
                enrolment_id = peek_header(payload).enrolment_id
            except EnvelopeError:
                self._drop(topic, f"rejected_{answer.code.value}", len(payload))
                return
            self.dropped[f"rejected_{answer.code.value}"] += 1
            logger.warning(
                "central link: enrolment %s from %s rejected: %s",
                enrolment_id,
                device_id,
                answer.code.value,
            )
            body = EnrolmentAck(enrolment_id=enrolment_id, rejection=answer)
        await self._client.publish(
            topics.device_topic(device_id, topics.ACKS),
            self._sign(body, recipient=device_id),
            qos=1,
        )

    # -- fleet summary ------------------------------------------------------------------------
    async def _publish_fleet(self) -> None:
        published = -1
        while True:
            if self.fleet.version != published:
                published = self.fleet.version
                body = FleetSummary(devices=self.fleet.summary())
                with contextlib.suppress(ValueError):  # too big to sign: skip, keep serving
                    await self._client.publish(
                        topics.FLEET, self._sign(body, recipient=BROADCAST), qos=1, retain=True
                    )
            await asyncio.sleep(self.settings.fleet_interval_s)  # the period, by design


def _publish_properties(correlation: object) -> Properties | None:
    if not isinstance(correlation, bytes):
        return None
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.CorrelationData = correlation
    return properties
