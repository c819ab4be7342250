"""The dashboard's MQTT feed: authenticated device state, telemetry and central's acks.

Subscribes (plain subscriptions, with central's certificate and its own client id, so every
central instance has the whole picture) to::

    dr/+/state       retained; ``offline`` is the device's last will -> online/offline
    dr/+/telemetry   queue depth, oldest pending age, sensor, version, free disk
    dr/+/acks        central's signed answers to enrolments -> enrolments per hour and
                     department, rejections by code

Each message is checked exactly as central checks it (:func:`dr_contracts.messages.open_message`
with the device's registered key, or central's for acks); a message that fails is counted
against the device it claims to come from (``message_<reason>``), never displayed.
Registry states and request stage counts are polled from the service.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central.dashboard.hub import FleetHub
from dr_contracts import topics
from dr_contracts.acks import AckError, verify_ack
from dr_contracts.messages import (
    BROADCAST,
    CENTRAL,
    DeviceState,
    EnrolmentAck,
    MessageError,
    MessageKind,
    Telemetry,
    open_message,
)
from edge.link.transport import NODELAY, client_tls_context
from edge.queue.backoff import Backoff

__all__ = ["DashboardFeed", "FeedSettings", "FleetDevice", "FleetSource"]

logger = logging.getLogger(__name__)

_LEAF_KINDS: dict[str, MessageKind] = {
    topics.STATE: MessageKind.STATE,
    topics.TELEMETRY: MessageKind.TELEMETRY,
    topics.ACKS: MessageKind.ACK,
}


class FleetDevice(Protocol):
    @property
    def device_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def signing_key(self) -> Ed25519PublicKey: ...


class FleetSource(Protocol):
    """What the feed needs from central's service (``CentralService`` has it all)."""

    @property
    def signing_public_key(self) -> Ed25519PublicKey: ...
    def device(self, device_id: str) -> FleetDevice | None: ...
    def devices(self) -> Sequence[FleetDevice]: ...
    def requests_by_stage(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSettings:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_id: str
    registry_interval_s: float = 5.0  # registry and request stages refreshed this often
    key_cache_s: float = 5.0  # a revoked device's key stops verifying within this delay
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0


class DashboardFeed:
    """``await run()`` in a TaskGroup; cancel to stop."""

    def __init__(self, settings: FeedSettings, *, hub: FleetHub, source: FleetSource) -> None:
        self.settings = settings
        self.hub = hub
        self._source = source
        self._keys: dict[str, tuple[float, Ed25519PublicKey | None]] = {}
        self._connected = asyncio.Event()
        self._rng = random.Random()  # reconnect jitter only

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._poll_registry())
            await self._connect_loop()

    # -- MQTT -----------------------------------------------------------------------------
    def _client(self) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=client_tls_context(
                ca_file=s.ca_file, cert_file=s.cert_file, key_file=s.key_file
            ),
            socket_options=NODELAY,
            keepalive=s.keepalive_s,
            timeout=s.connect_timeout_s,
            logger=logging.getLogger(f"{__name__}.mqtt"),
        )

    async def _connect_loop(self) -> None:
        backoff = Backoff(initial_s=0.2, maximum_s=10.0)
        failures = 0
        while True:
            try:
                async with self._client() as client:
                    for leaf in _LEAF_KINDS:
                        await client.subscribe(f"{topics.DEVICE_ROOT}/+/{leaf}", qos=1)
                    self._connected.set()
                    self.hub.model.set_feed_connected(True)
                    await self.hub.notify()
                    failures = 0
                    logger.info("dashboard feed connected")
                    async for message in client.messages:
                        await self.handle(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError as exc:
                logger.warning("dashboard feed: connection lost or refused: %s", exc)
            finally:
                self._connected.clear()
                self.hub.model.set_feed_connected(False)
                await self.hub.notify()
            failures += 1
            await asyncio.sleep(backoff.delay(failures, self._rng))  # backoff, not sync

    async def _device_key(self, device_id: str) -> Ed25519PublicKey | None:
        now = time.monotonic()
        cached = self._keys.get(device_id)
        if cached is None or now - cached[0] >= self.settings.key_cache_s:
            device = await asyncio.to_thread(self._source.device, device_id)
            key = device.signing_key if device is not None and device.state == "active" else None
            cached = self._keys[device_id] = (now, key)
        return cached[1]

    async def handle(self, topic: str, payload: bytes) -> None:
        """Authenticate one message and apply it to the model (public for tests)."""
        try:
            parsed = topics.parse_device_topic(topic)
        except ValueError:
            return
        kind = _LEAF_KINDS.get(parsed.leaf)
        if kind is None:
            return
        device_id = parsed.device_id
        model = self.hub.model
        try:
            if kind is MessageKind.ACK:
                central_key = self._source.signing_public_key
                message = open_message(
                    payload,
                    keys=lambda sender: central_key if sender == CENTRAL else None,
                    sender=CENTRAL,
                    recipient=device_id,
                    kinds=frozenset({kind}),
                )
            else:
                key = await self._device_key(device_id)
                message = open_message(
                    payload,
                    keys=lambda sender: key if sender == device_id else None,
                    sender=device_id,
                    recipient=BROADCAST if kind is MessageKind.STATE else CENTRAL,
                    kinds=frozenset({kind}),
                )
        except MessageError as exc:
            if not payload and kind is MessageKind.STATE:
                return  # a retained state being cleared (device decommissioned)
            logger.warning("dashboard: dropped %s from %s: %s", parsed.leaf, device_id, exc.reason)
            if kind is not MessageKind.ACK:
                model.on_rejection(device_id, f"message_{exc.reason}")
                await self.hub.notify()
            return
        body = message.body
        if isinstance(body, DeviceState):
            model.on_state(device_id, body, sent_at_ms=message.sent_at_ms)
        elif isinstance(body, Telemetry):
            model.on_telemetry(device_id, body, sent_at_ms=message.sent_at_ms)
        elif isinstance(body, EnrolmentAck):
            if body.rejection is not None:
                model.on_rejection(device_id, body.rejection.code.value)
            elif body.ack is not None:
                try:
                    ack = verify_ack(
                        body.ack,
                        central_keys=[self._source.signing_public_key],
                        device_id=device_id,
                    )
                except AckError as exc:
                    logger.warning("dashboard: bad ack for %s: %s", device_id, type(exc).__name__)
                    return
                model.on_enrolment_acked(device_id, ack.enrolment_id, at=ack.received_at)
        await self.hub.notify()

    # -- registry -------------------------------------------------------------------------
    async def _poll_registry(self) -> None:
        while True:
            await self.refresh_registry()
            await asyncio.sleep(self.settings.registry_interval_s)  # the period, by design

    async def refresh_registry(self) -> None:
        """Registry states and request stage counts from the service, into the model."""
        try:
            devices = await asyncio.to_thread(self._source.devices)
            stages = await asyncio.to_thread(self._source.requests_by_stage)
        except Exception:
            # A database hiccup must not stop the live view; the next period retries.
            logger.exception("dashboard: reading the registry failed")
            return
        states: Mapping[str, str] = {d.device_id: d.state for d in devices}
        self.hub.model.set_registry(states)
        self.hub.model.set_request_stages(stages)
        await self.hub.notify()
