"""The DR device's MQTT link: one reusable client, a reconnect loop, RPCs, outbox draining.

Run it inside the station's TaskGroup::

    link = EdgeLink(settings, signing_key=device_key, central_key=central_public, outbox=outbox)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(link.run())
        lease = await link.lease_numbers(20)      # LinkUnavailableError / RpcTimeoutError offline

What it guarantees:

- an outbox row becomes ``acked`` only on central's signed application acknowledgement (which
  carries the request number), never on a PUBACK; every retry belongs to the outbox, which
  central deduplicates;
- at most ``inflight_window`` enrolments published and not yet acknowledged;
- ``dr/<id>/state`` retained ``online`` while connected; the broker publishes the retained
  ``offline`` last will if the connection dies; a graceful stop publishes ``offline`` itself;
- a persistent session (``clean_start`` off, session expiry) so that acknowledgements sent
  while the device was away are delivered when it returns;
- TCP_NODELAY on the socket (request/response in ~1 ms instead of ~90 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dr_contracts import topics
from dr_contracts.acks import Ack, AckError, verify_ack
from dr_contracts.identifiers import LeaseError, NumberLease, verify_lease
from dr_contracts.keys import SigningKey
from dr_contracts.messages import (
    BROADCAST,
    CENTRAL,
    DeviceState,
    EnrolmentAck,
    MessageError,
    MessageKind,
    RpcOp,
    RpcReply,
    RpcRequest,
    Telemetry,
    encode_message,
    new_message_id,
    open_message,
)
from dr_contracts.rejections import Rejection
from edge.link.errors import (
    LinkUnavailableError,
    RpcProtocolError,
    RpcRejectedError,
    RpcTimeoutError,
)
from edge.link.settings import LinkSettings
from edge.link.transport import NODELAY, client_tls_context
from edge.queue import AsyncOutbox, OutboxRow

__all__ = ["EdgeLink", "LinkCounters", "VerifiedLease"]

MAX_ACK_BATCH = 64

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
SensorState = Callable[[], str]
RejectionHandler = Callable[[str, Rejection], None]
AckHandler = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class VerifiedLease:
    """A block of request numbers leased by central, signature checked on the device."""

    lease: NumberLease
    signed: bytes  # keep it: central checks numbers against its own record of the lease


@dataclass(slots=True)
class LinkCounters:
    """What the link did (for telemetry, the console and tests)."""

    connects: int = 0
    connection_failures: int = 0
    published: int = 0
    acked: int = 0
    duplicate_acks: int = 0
    rejected: int = 0
    dropped_messages: int = 0


def _properties(packet: int, **values: Any) -> Properties:
    properties = Properties(packet)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


def _reraise_swallowed_cancel() -> None:
    """Re-raises a cancellation that an aiomqtt call dropped.

    aiomqtt awaits with :func:`asyncio.wait_for`, which on Python 3.11 returns the result and
    loses the cancellation when both happen at once (CPython gh-86296). The task would then
    run on, its TaskGroup would wait for it for ever, and the daemon would hang on SIGTERM.

    Only for leaf tasks (telemetry, one send): a task that runs a TaskGroup can keep a stale
    cancellation count on 3.11 (the group cancels it when a child fails and never uncancels
    it while waiting in ``__aexit__``), so there the count means nothing.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class EdgeLink:
    """The device side of the MQTT link. Create once; ``await run()`` in a TaskGroup."""

    def __init__(
        self,
        settings: LinkSettings,
        *,
        signing_key: SigningKey,
        central_key: Ed25519PublicKey,
        outbox: AsyncOutbox | None = None,
        sensor_state: SensorState = lambda: "unknown",
        on_rejection: RejectionHandler | None = None,
        on_acked: AckHandler | None = None,
        clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.device_id = settings.device_id
        self._key = signing_key
        self._central_key = central_key
        self._outbox = outbox
        self._sensor_state = sensor_state
        self._on_rejection = on_rejection
        self._on_acked = on_acked
        self._clock = clock
        self._rng = rng or random.Random()  # jitter only
        self.counters = LinkCounters()
        self._session = new_message_id()  # tells this run's state/will from older ones
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._pending: dict[bytes, asyncio.Future[RpcReply]] = {}
        self._inflight: dict[str, float] = {}
        # Verified acknowledgements waiting to be written to the outbox, in batches.
        self._acks: asyncio.Queue[Ack] = asyncio.Queue()
        self._topic = {
            leaf: topics.device_topic(self.device_id, leaf) for leaf in topics.DEVICE_LEAVES
        }
        # Loaded once: a new client after a failure must not depend on the files again.
        self._tls = client_tls_context(
            ca_file=settings.ca_file, cert_file=settings.cert_file, key_file=settings.key_file
        )
        self._client = self._fresh_client()

    # -- construction -------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _sign(self, body: Any, *, recipient: str, message_id: bytes | None = None) -> bytes:
        return encode_message(
            body,
            sender=self.device_id,
            recipient=recipient,
            key=self._key,
            now_ms=self._now_ms(),
            message_id=message_id,
        )

    def _state(self, status: str) -> bytes:
        body = DeviceState(
            status="online" if status == "online" else "offline",
            session=self._session,
            version=self.settings.version,
        )
        return self._sign(body, recipient=BROADCAST)

    def _fresh_client(self) -> aiomqtt.Client:
        client = self._make_client()
        # aiomqtt warns beyond 10 concurrent publishes; our window allows more, by design.
        client.pending_calls_threshold = self.settings.inflight_window + 10
        return client

    def _make_client(self) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(
            s.host,
            s.port,
            identifier=self.device_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=self._tls,
            socket_options=NODELAY,
            keepalive=s.keepalive_s,
            timeout=s.connect_timeout_s,
            clean_start=False,
            properties=_properties(PacketTypes.CONNECT, SessionExpiryInterval=s.session_expiry_s),
            will=aiomqtt.Will(
                self._topic[topics.STATE], self._state("offline"), qos=1, retain=True
            ),
            logger=logging.getLogger(f"{__name__}.mqtt"),
        )

    # -- public API ---------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Wait until the link is up (wrap in ``asyncio.timeout`` as needed)."""
        await self._connected.wait()

    def notify_enqueued(self) -> None:
        """Tell the drain loop that the outbox has a new row (publish it now, not at the poll)."""
        self._wake.set()

    async def lookup_prerequest(self, number: str) -> Mapping[str, Any]:
        """Central's view of a pre-request (status and the fields the agent must see)."""
        return await self._call(RpcOp.LOOKUP_PREREQUEST, {"number": number})

    async def check_stamp(self, number: str) -> Mapping[str, Any]:
        """Central's view of a tax stamp (state, amount)."""
        return await self._call(RpcOp.CHECK_STAMP, {"number": number})

    async def lease_numbers(self, count: int) -> VerifiedLease:
        """Lease ``count`` request numbers for offline receipts (signature checked here)."""
        result = await self._call(RpcOp.LEASE_NUMBERS, {"count": count})
        signed = result.get("lease")
        if not isinstance(signed, bytes):
            raise RpcProtocolError("lease reply without signed lease bytes")
        try:
            lease = verify_lease(
                signed, central_public_key=self._central_key, device_id=self.device_id
            )
        except LeaseError as exc:
            raise RpcProtocolError(f"lease refused: {exc}") from exc
        return VerifiedLease(lease=lease, signed=signed)

    async def handover_templates(self, number: str) -> bytes:
        """The request's templates, sealed by central to this device's handover key.

        Open them with :func:`dr_contracts.handover.open_handover`. Central refuses
        (``RpcRejectedError``) a card not available, at another mairie, or a device without a
        handover key.
        """
        result = await self._call(RpcOp.HANDOVER_TEMPLATES, {"number": number})
        sealed = result.get("sealed")
        if not isinstance(sealed, bytes):
            raise RpcProtocolError("handover reply without sealed templates")
        return sealed

    async def record_handover(self, number: str) -> Mapping[str, Any]:
        """Record that the card was handed over; central's new status of the request."""
        return await self._call(RpcOp.RECORD_HANDOVER, {"number": number})

    # -- the reconnect loop -------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, serve, reconnect with jittered backoff; forever (cancel to stop)."""
        async with asyncio.TaskGroup() as tg:
            if self._outbox is not None:
                # Outlives connections: an ack received just before a disconnection is
                # still written.
                tg.create_task(self._write_acks(self._outbox))
            await self._connect_loop()

    async def _connect_loop(self) -> None:
        failures = 0
        while True:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    # Bounded: a reused aiomqtt client can be left unable to connect by a
                    # connection that died badly (seen under SIGKILL chaos); then rebuild it.
                    async with asyncio.timeout(self.settings.connect_timeout_s + 5):
                        await stack.enter_async_context(self._client)
                    failures = 0
                    self.counters.connects += 1
                    try:
                        await self._serve()
                    except asyncio.CancelledError:
                        await self._say_offline()
                        raise
            except* TimeoutError:
                self.counters.connection_failures += 1
                logger.warning("link %s: connection attempt hung; new client", self.device_id)
                self._client = self._fresh_client()
            except* aiomqtt.MqttError as group:
                self.counters.connection_failures += 1
                logger.warning(
                    "link %s: connection lost or refused: %s", self.device_id, group.exceptions[0]
                )
            except* Exception:
                # Keep the device's link alive through anything else (a full disk under the
                # outbox...): log it and go round the loop again.
                self.counters.connection_failures += 1
                logger.exception("link %s: unexpected failure; reconnecting", self.device_id)
            finally:
                self._connected.clear()
                self._fail_pending()
            # A fresh aiomqtt client per connection: reusing one after its connection died
            # can leave paho registering a closed socket with the loop (EBADF) and the next
            # connection stuck until its timeout (seen with broker restarts).
            self._client = self._fresh_client()
            failures += 1
            delay = self.settings.reconnect.delay(failures, self._rng)
            logger.info("link %s: reconnecting in %.2f s", self.device_id, delay)
            await asyncio.sleep(delay)  # backoff between attempts, not synchronisation

    async def _serve(self) -> None:
        client = self._client
        await client.subscribe(self._topic[topics.RPC_REPLY], qos=1)
        await client.subscribe(self._topic[topics.ACKS], qos=1)
        await client.publish(self._topic[topics.STATE], self._state("online"), qos=1, retain=True)
        self._inflight.clear()  # unacked rows come back from the outbox when due
        self._connected.set()
        self._wake.set()
        logger.info(
            "link %s: connected to %s:%d", self.device_id, self.settings.host, self.settings.port
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._receive())
            if self._outbox is not None:
                tg.create_task(self._drain(self._outbox))
                tg.create_task(self._telemetry(self._outbox))

    async def _say_offline(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._client.publish(
                    self._topic[topics.STATE], self._state("offline"), qos=1, retain=True
                )

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkUnavailableError("connection lost"))

    # -- RPC ----------------------------------------------------------------------------------
    async def _call(self, op: RpcOp, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if not self._connected.is_set():
            raise LinkUnavailableError(f"{op}: not connected to the broker")
        request = RpcRequest(op=op, args=args)  # ValueError on bad arguments
        request_id = new_message_id()
        future: asyncio.Future[RpcReply] = asyncio.get_running_loop().create_future()
        # Registered before publishing: a fast reply must find its waiter.
        self._pending[request_id] = future
        timeout = self.settings.rpc_timeout_s
        try:
            async with asyncio.timeout(timeout):
                publish = asyncio.ensure_future(
                    self._client.publish(
                        self._topic[topics.RPC],
                        self._sign(request, recipient=CENTRAL, message_id=request_id),
                        qos=1,
                        properties=_properties(
                            PacketTypes.PUBLISH,
                            ResponseTopic=self._topic[topics.RPC_REPLY],
                            CorrelationData=request_id,
                        ),
                    )
                )
                try:
                    # A publish in flight when the link dies only fails at its own timeout
                    # (aiomqtt): the reply future fails at once on disconnection, so wait
                    # for whichever settles first.
                    waiters: set[asyncio.Future[Any]] = {publish, future}
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    if not future.done():
                        await publish
                    reply = await future
                finally:
                    if not publish.done():
                        publish.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await publish
        except TimeoutError:
            raise RpcTimeoutError(op, timeout) from None
        except aiomqtt.MqttError as exc:
            raise LinkUnavailableError(f"{op}: {exc}") from exc
        finally:
            self._pending.pop(request_id, None)
        if reply.rejection is not None:
            raise RpcRejectedError(op, reply.rejection)
        assert reply.result is not None
        return reply.result

    # -- incoming -----------------------------------------------------------------------------
    async def _receive(self) -> None:
        async for message in self._client.messages:
            topic = str(message.topic)
            payload = bytes(message.payload)  # paho hands us bytes; be explicit for safety
            try:
                if topic == self._topic[topics.RPC_REPLY]:
                    self._on_reply(payload)
                elif topic == self._topic[topics.ACKS]:
                    await self._on_ack(payload)
                else:
                    self._drop(topic, "unexpected topic")
            except (MessageError, AckError) as exc:
                self._drop(topic, f"{type(exc).__name__}: {exc}")

    def _drop(self, topic: str, why: str) -> None:
        self.counters.dropped_messages += 1
        logger.warning("link %s: dropped message on %s: %s", self.device_id, topic, why)

    def _open(self, payload: bytes, kind: MessageKind) -> Any:
        message = open_message(
            payload,
            keys=lambda sender: self._central_key if sender == CENTRAL else None,
            sender=CENTRAL,
            recipient=self.device_id,
            kinds=frozenset({kind}),
        )
        return message.body

    def _on_reply(self, payload: bytes) -> None:
        reply: RpcReply = self._open(payload, MessageKind.RPC_REPLY)
        future = self._pending.get(reply.request_id)
        if future is None or future.done():
            logger.info("link %s: reply to no pending request (late or duplicate)", self.device_id)
            return
        future.set_result(reply)

    async def _on_ack(self, payload: bytes) -> None:
        body: EnrolmentAck = self._open(payload, MessageKind.ACK)
        self._inflight.pop(body.enrolment_id, None)
        self._wake.set()  # a slot of the window is free
        outbox = self._outbox
        if outbox is None:
            return
        if body.rejection is not None:
            self.counters.rejected += 1
            logger.warning(
                "link %s: central rejected enrolment %s: %s",
                self.device_id,
                body.enrolment_id,
                body.rejection.code,
            )
            if body.rejection.retryable:
                await outbox.mark_failed(body.enrolment_id, f"rejected: {body.rejection.code}")
            else:
                # A definitive refusal: retrying it for ever would trip the outbox's max-age
                # limit and stop the station taking enrolments.
                await outbox.mark_rejected(body.enrolment_id, code=str(body.rejection.code))
            if self._on_rejection is not None:
                self._on_rejection(body.enrolment_id, body.rejection)
            return
        assert body.ack is not None
        ack = verify_ack(body.ack, central_keys=[self._central_key], device_id=self.device_id)
        if ack.enrolment_id != body.enrolment_id:
            raise AckError("acknowledgement names another enrolment than its message")
        self._acks.put_nowait(ack)

    async def _write_acks(self, outbox: AsyncOutbox) -> None:
        """Mark acknowledged rows in batches (one commit for all the acks that arrived)."""
        while True:
            batch = [await self._acks.get()]
            while len(batch) < MAX_ACK_BATCH and not self._acks.empty():
                batch.append(self._acks.get_nowait())
            try:
                firsts = await self._mark_acked(outbox, batch)
            except Exception:
                # E.g. a full disk: the rows stay "sent", are resent after the ack timeout
                # and central answers with the same acknowledgement then.
                logger.exception("link %s: could not record %d acks", self.device_id, len(batch))
                continue
            for ack, first in zip(batch, firsts, strict=True):
                if not first:
                    self.counters.duplicate_acks += 1
                    continue
                self.counters.acked += 1
                if self._on_acked is not None:
                    self._on_acked(ack.enrolment_id, ack.request_number)

    # -- outgoing: outbox and telemetry -------------------------------------------------------
    async def _drain(self, outbox: AsyncOutbox) -> None:
        """Keep up to ``inflight_window`` enrolments published and not yet acknowledged.

        Publishes run as tasks of this loop's group, which goes on as soon as they are
        started: waiting for a batch's PUBACKs before the next batch left slots freed by
        acks unused for a broker round trip. A slot is taken before its task is created.
        """
        window = self.settings.inflight_window
        async with asyncio.TaskGroup() as tg:
            while True:
                self._wake.clear()
                self._expire_inflight(outbox)
                free = window - len(self._inflight)
                due = await outbox.next_due(limit=free) if free > 0 else []
                # A row whose ack is overdue is due again in the outbox a moment before its
                # slot here expires: it is not published twice at once, and the loop waits
                # for that slot (as for a full window) instead of spinning.
                rows = [row for row in due if row.enrolment_id not in self._inflight]
                if rows:
                    sent = await self._mark_sent(outbox, rows)
                    for row, first in zip(rows, sent, strict=True):
                        if first:  # False: acknowledged meanwhile
                            self._inflight[row.enrolment_id] = self._clock()
                            tg.create_task(self._send(outbox, row))
                    continue
                await self._idle(outbox, window_full=free <= 0 or bool(due))

    def _expire_inflight(self, outbox: AsyncOutbox) -> None:
        """Free the slots of rows whose ack is overdue: the outbox makes them due again.

        Without this, acks lost with a crashed central or broker would hold the window
        full forever and nothing would be sent again.
        """
        horizon = self._clock() - outbox.sync.limits.ack_timeout_s
        for enrolment_id, sent_at in list(self._inflight.items()):
            if sent_at <= horizon:
                del self._inflight[enrolment_id]

    async def _idle(self, outbox: AsyncOutbox, *, window_full: bool) -> None:
        timeout = self.settings.idle_poll_s
        if window_full and self._inflight:
            overdue_at = min(self._inflight.values()) + outbox.sync.limits.ack_timeout_s
            timeout = min(timeout, max(0.0, overdue_at - self._clock()))
        if not window_full:
            due_at = await outbox.next_due_at()
            if due_at is not None:
                timeout = min(timeout, max(0.0, due_at.timestamp() - self._clock()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _mark_acked(self, outbox: AsyncOutbox, batch: list[Ack]) -> list[bool]:
        """One outbox commit for the whole batch; True where this ack was the first."""
        return await outbox.mark_acked_many(
            [(a.enrolment_id, a.request_number, a.recorded_at) for a in batch]
        )

    async def _mark_sent(self, outbox: AsyncOutbox, rows: list[OutboxRow]) -> list[bool]:
        """One outbox commit for the batch; False where the row was acknowledged meanwhile."""
        return await outbox.mark_sent_many([row.enrolment_id for row in rows])

    async def _send(self, outbox: AsyncOutbox, row: OutboxRow) -> None:
        """Publish one row; its window slot was taken by the drain loop."""
        try:
            await self._client.publish(self._topic[topics.ENROLMENTS], row.envelope, qos=1)
            _reraise_swallowed_cancel()
        except aiomqtt.MqttError as exc:
            self._inflight.pop(row.enrolment_id, None)
            await outbox.mark_failed(row.enrolment_id, f"publish failed: {exc}")
            raise
        self.counters.published += 1

    async def _telemetry(self, outbox: AsyncOutbox) -> None:
        while True:
            stats = await outbox.stats()
            body = Telemetry(
                queue_depth=stats.depth,
                queue_bytes=stats.pending_bytes,
                oldest_pending_age_s=(
                    None if stats.oldest_pending_age_s is None else int(stats.oldest_pending_age_s)
                ),
                sensor=self._sensor_state(),
                version=self.settings.version,
                disk_free_bytes=stats.free_disk_bytes,
                alerts=(("backlog",) if stats.alert else ()),
            )
            await self._client.publish(
                self._topic[topics.TELEMETRY], self._sign(body, recipient=CENTRAL), qos=1
            )
            _reraise_swallowed_cancel()
            await asyncio.sleep(self.settings.telemetry_interval_s)  # the period, by design
