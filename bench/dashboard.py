"""Dashboard at national scale: feed throughput and snapshot cost for a fleet of 4,000 DRs.

``python -m bench dashboard [--devices=N] [--messages=M]``

- Feed: signed telemetry messages handled per second by :meth:`DashboardFeed.handle`
  (CBOR decode, Ed25519 verification with the device's registered key, model update, change
  notification). Baseline in the same run: Ed25519 verification alone of the same messages.
  The fleet's load is one telemetry message per device per minute (4,000 / 60 = 67 per s).
- Snapshot: building and JSON-encoding what one SSE event carries for N devices (every device
  row, alerts, 24 hourly buckets), and its size. Baseline in the same run: JSON-encoding the
  link's retained fleet summary (``central.mqtt.fleet.FleetView``) for the same devices.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central.dashboard.app import Dashboard, labelled_snapshot
from central.dashboard.feed import DashboardFeed, FeedSettings
from central.dashboard.hub import FleetHub
from central.dashboard.model import FleetModel
from central.dashboard.settings import DashboardSettings
from central.mqtt.fleet import FleetView
from dr_contracts import topics
from dr_contracts.keys import SigningKey
from dr_contracts.messages import (
    BROADCAST,
    CENTRAL,
    SIGNATURE_CONTEXT,
    DeviceState,
    Telemetry,
    decode_unverified,
    encode_message,
)


@dataclass
class _Device:
    device_id: str
    state: str
    signing_key: Ed25519PublicKey


class _Source:
    def __init__(self, keys: dict[str, Ed25519PublicKey], central: SigningKey) -> None:
        self._devices = {d: _Device(d, "active", k) for d, k in keys.items()}
        self.signing_public_key = central.public_key

    def device(self, device_id: str) -> _Device | None:
        return self._devices.get(device_id)

    def devices(self) -> Sequence[_Device]:
        return list(self._devices.values())

    def requests_by_stage(self) -> dict[str, int]:
        return {"received": 0}


def _fleet(n: int, rng: random.Random) -> list[str]:
    return [
        f"dr-{rng.randrange(1, 96):02d}{rng.randrange(1000):03d}-{i % 100:02d}" for i in range(n)
    ]


def _telemetry(rng: random.Random) -> Telemetry:
    return Telemetry(
        queue_depth=rng.randrange(30),
        queue_bytes=rng.randrange(10**6),
        oldest_pending_age_s=rng.randrange(7200),
        sensor=rng.choice(["ready", "ready", "ready", "error"]),
        version="1.4.2",
        disk_free_bytes=rng.randrange(1 << 36),
    )


async def _feed(n_devices: int, n_messages: int) -> None:
    rng = random.Random(8)
    devices = _fleet(n_devices, rng)
    keys = {d: SigningKey.generate() for d in devices}
    central = SigningKey.generate()
    hub = FleetHub(FleetModel())
    feed = DashboardFeed(
        FeedSettings(
            host="127.0.0.1",
            port=1,
            ca_file=Path("-"),
            cert_file=Path("-"),
            key_file=Path("-"),
            client_id="bench",
            key_cache_s=3600.0,
        ),
        hub=hub,
        source=_Source({d: k.public_key for d, k in keys.items()}, central),
    )
    now_ms = int(time.time() * 1000)
    messages = []
    for i in range(n_messages):
        device = devices[i % n_devices]
        body = _telemetry(rng)
        data = encode_message(
            body, sender=device, recipient=CENTRAL, key=keys[device], now_ms=now_ms + i
        )
        messages.append((topics.device_topic(device, topics.TELEMETRY), data, device))
    for device in devices:  # warm the key cache, as a running feed has
        await feed.handle(
            topics.device_topic(device, topics.STATE),
            encode_message(
                DeviceState(status="online", session=b"s" * 16, version="1.4.2"),
                sender=device,
                recipient=BROADCAST,
                key=keys[device],
                now_ms=now_ms,
            ),
        )
    start = time.perf_counter()
    for topic, data, _ in messages:
        await feed.handle(topic, data)
    feed_s = time.perf_counter() - start
    assert hub.model.rejections == {}, hub.model.rejections

    import cbor2

    verify_items = []
    for _, data, device in messages:
        signed, signature = cbor2.loads(data)
        verify_items.append((keys[device].public_key, signature, SIGNATURE_CONTEXT + signed))
    start = time.perf_counter()
    for public, signature, payload in verify_items:
        public.verify(signature, payload)
    verify_s = time.perf_counter() - start

    rate, base = n_messages / feed_s, n_messages / verify_s
    fleet_load = n_devices / 60
    print(f"### Feed ({n_devices} devices, {n_messages} signed telemetry messages)\n")
    print("| measure | messages/s |")
    print("|---|---|")
    print(f"| `DashboardFeed.handle` (decode + verify + model + notify) | {rate:,.0f} |")
    print(f"| baseline: Ed25519 verify alone | {base:,.0f} |")
    print(f"| fleet load (1 telemetry/device/min) | {fleet_load:,.0f} |")
    print(
        f"\nRatio feed / verify alone: {rate / base:.2f}; headroom over the fleet's load: "
        f"{rate / fleet_load:,.0f}x.\n"
    )

    # Snapshot: one SSE event for the whole fleet, vs the link's retained fleet summary.
    model = hub.model
    for i in range(2000):  # a day's worth of acknowledgements spread over the hours
        model.on_enrolment_acked(
            devices[i % n_devices],
            f"e{i}",
            at=datetime.fromtimestamp(time.time() - rng.randrange(86_000), UTC),
        )
    dashboard = Dashboard(
        hub=hub,
        settings=DashboardSettings(accounts_file=Path("-")),
        accounts=None,  # type: ignore[arg-type]  # not used by the snapshot
        sessions=None,  # type: ignore[arg-type]
        guard=None,  # type: ignore[arg-type]
        closing=asyncio.Event(),
    )
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        event = json.dumps(
            labelled_snapshot(dashboard), ensure_ascii=False, separators=(",", ":")
        ).encode()
    snap_s = (time.perf_counter() - start) / rounds
    view = FleetView()
    for _, data, device in messages[:n_devices]:
        message = decode_unverified(data)
        assert isinstance(message.body, Telemetry)
        view.on_telemetry(device, message.body, at_ms=message.sent_at_ms)
    start = time.perf_counter()
    for _ in range(rounds):
        baseline = json.dumps(view.summary(), separators=(",", ":")).encode()
    base_s = (time.perf_counter() - start) / rounds
    print(f"### Snapshot ({n_devices} devices, {len(model.alerts())} alerts)\n")
    print("| measure | time per event | size |")
    print("|---|---|---|")
    print(
        f"| dashboard snapshot (model + labels + JSON) | {snap_s * 1000:.1f} ms | "
        f"{len(event) / 1024:,.0f} KiB |"
    )
    print(
        f"| baseline: `FleetView.summary()` JSON | {base_s * 1000:.1f} ms | "
        f"{len(baseline) / 1024:,.0f} KiB |"
    )
    size_ratio = len(event) / len(baseline)
    print(f"\nRatio snapshot / baseline: {snap_s / base_s:.1f}x time, {size_ratio:.2f}x size.")
    print(
        "One encoding per ``min_push_s`` (1 s by default) is shared by every open page "
        f"(``Dashboard.event``): at most {snap_s * 100:.1f} % of one core for the fleet."
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dashboard")
    parser.add_argument("--devices", type=int, default=4000)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args(argv)
    asyncio.run(_feed(args.devices, args.messages))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
