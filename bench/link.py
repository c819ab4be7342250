"""MQTT link: end-to-end acknowledged enrolments per second, and RPC round trips.

    python -m bench link [--n=300] [--rpcs=1000] [--window=16]

Everything real, on loopback, in this run: mosquitto from central.broker's generated
configuration (TLS with client certificates, ACL, persistence, TCP_NODELAY), central's service
on SQLite with its MQTT side, one device (EdgeLink + SQLite outbox, synchronous=FULL).

- **End to end**: seal (HPKE + Ed25519), enqueue (fsync), publish (QoS 1), ingest at central
  (signature, HPKE open, validation, transaction), signed acknowledgement back, mark acked and
  purge the payload (fsync): enrolments per second, from the first seal to the last ack.
- **Baseline**: raw QoS 1 publishes of payloads of the same size, with the same window of
  messages in flight, from one TLS client to a subscriber, until the subscriber has them all.
- **RPC**: ``lookup_prerequest`` round trips through central's service (signed both ways),
  p50/p99; baseline: a bare MQTT 5 request/response (response topic + correlation data) to
  an echoing client over the same broker, no signatures, no database.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.queue import realistic_record
from central.broker import MosquittoBroker
from central.keyring import CentralKeyring
from central.mqtt.server import CentralLink
from central.mqtt.settings import CentralLinkSettings
from central.pki import CertFiles, CertificateAuthority
from central.service import CentralService
from dr_contracts.envelope import seal_record
from dr_contracts.keys import SigningKey
from dr_contracts.rejections import Rejection
from edge.link.client import EdgeLink
from edge.link.settings import LinkSettings
from edge.link.transport import NODELAY, client_tls_context
from edge.queue import AsyncOutbox, Outbox, OutboxMeta
from tests.fixtures.central import sample_form

DEVICE = "dr-91228-01"


def _client(broker: MosquittoBroker, files: CertFiles, name: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=name,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=client_tls_context(
            ca_file=broker.ca_file, cert_file=files.cert, key_file=files.key
        ),
        socket_options=NODELAY,
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _raw_publish_rate(
    broker: MosquittoBroker, files: dict[str, CertFiles], *, size: int, n: int, window: int
) -> float:
    payload = random.randbytes(size)
    topic = f"dr/{DEVICE}/enrolments"
    received = 0
    all_in = asyncio.Event()
    async with (
        _client(broker, files["central"], "bench-sub") as sub,
        _client(broker, files[DEVICE], "bench-pub") as pub,
    ):
        await sub.subscribe(topic, qos=1)

        async def consume() -> None:
            nonlocal received
            async for _ in sub.messages:
                received += 1
                if received == n:
                    all_in.set()
                    return

        slots = asyncio.Semaphore(window)

        async def one() -> None:
            async with slots:
                await pub.publish(topic, payload, qos=1)

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(consume())
            for _ in range(n):
                tg.create_task(one())
            await all_in.wait()
        return n / (time.perf_counter() - start)


async def _raw_rpc(broker: MosquittoBroker, files: dict[str, CertFiles], *, n: int) -> list[float]:
    request_topic, reply_topic = f"dr/{DEVICE}/rpc", f"dr/{DEVICE}/rpc/reply"
    async with (
        _client(broker, files["central"], "bench-echo") as echo,
        _client(broker, files[DEVICE], "bench-ask") as ask,
    ):
        await echo.subscribe(request_topic, qos=1)
        await ask.subscribe(reply_topic, qos=1)

        async def serve() -> None:
            answered = 0
            async for message in echo.messages:
                answered += 1
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.CorrelationData = message.properties.CorrelationData  # type: ignore[union-attr]
                await echo.publish(reply_topic, message.payload, qos=1, properties=props)
                if answered == n:
                    return

        times: list[float] = []
        async with asyncio.TaskGroup() as tg:
            tg.create_task(serve())
            replies = aiter(ask.messages)
            for i in range(n):
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.ResponseTopic = reply_topic
                props.CorrelationData = i.to_bytes(4, "big")
                start = time.perf_counter()
                await ask.publish(request_topic, b"ABCDEFGHIJ", qos=1, properties=props)
                await anext(replies)
                times.append(time.perf_counter() - start)
        return times


async def _run(directory: Path, *, n: int, rpcs: int, window: int) -> dict[str, float]:
    ca = CertificateAuthority.load_or_create(directory / "ca")
    files = {
        cn: ca.issue_client(cn).write(directory / "certs", name=cn) for cn in ("central", DEVICE)
    }
    key_dir = directory / "central-keys"
    CentralKeyring.create(key_dir)
    service = CentralService.open(database=f"sqlite://{directory / 'central.db'}", key_dir=key_dir)
    device_key = SigningKey.generate()
    service.register_device(DEVICE, commune_name="Évry", signing_key=device_key.public_key)
    rng = random.Random(7)
    records = []
    for _ in range(n):
        pre = service.create_prerequest(sample_form())
        record, _ = realistic_record(rng)
        records.append(dataclasses.replace(record, prerequest_number=pre.number, device_id=DEVICE))
    rpc_number = service.create_prerequest(sample_form()).number
    outbox = Outbox(directory / "outbox.db")
    results: dict[str, float] = {}
    acked = 0
    all_acked = asyncio.Event()

    def on_acked(enrolment_id: str, number: str) -> None:
        nonlocal acked
        acked += 1
        if acked == n:
            all_acked.set()

    def on_rejection(enrolment_id: str, rejection: Rejection) -> None:
        raise SystemExit(f"central rejected an enrolment: {rejection.code} {rejection.detail}")

    try:
        with MosquittoBroker(directory / "broker", ca=ca) as broker:
            central = CentralLink(
                CentralLinkSettings(
                    host=broker.host,
                    port=broker.port,
                    ca_file=broker.ca_file,
                    cert_file=files["central"].cert,
                    key_file=files["central"].key,
                ),
                backend=service,
                signing_key=service.keys.signing,
            )
            link = EdgeLink(
                LinkSettings(
                    device_id=DEVICE,
                    host=broker.host,
                    port=broker.port,
                    ca_file=broker.ca_file,
                    cert_file=files[DEVICE].cert,
                    key_file=files[DEVICE].key,
                    inflight_window=window,
                ),
                signing_key=device_key,
                central_key=service.signing_public_key,
                outbox=AsyncOutbox(outbox),
                on_acked=on_acked,
                on_rejection=on_rejection,
            )
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(central.run()), tg.create_task(link.run())]
                await central.wait_connected()
                await link.wait_connected()
                # RPC round trips through the real service.
                for _ in range(20):
                    await link.lookup_prerequest(rpc_number)  # warm-up
                times = []
                for _ in range(rpcs):
                    start = time.perf_counter()
                    await link.lookup_prerequest(rpc_number)
                    times.append(time.perf_counter() - start)
                results["rpc_p50_ms"] = statistics.median(times) * 1000
                results["rpc_p99_ms"] = _percentile(times, 0.99) * 1000
                # End to end: seal, enqueue, publish, ingest, ack, purge.
                size = 0
                start = time.perf_counter()
                for record in records:
                    sealed = seal_record(
                        record, recipient=service.recipient_public_key, signer=device_key
                    )
                    size += len(sealed)
                    await asyncio.to_thread(
                        outbox.enqueue,
                        record.enrolment_id,
                        sealed,
                        meta=OutboxMeta(prerequest_number=record.prerequest_number),
                    )
                    link.notify_enqueued()
                await all_acked.wait()
                results["e2e_per_s"] = n / (time.perf_counter() - start)
                results["payload_bytes"] = size / n
                for task in tasks:
                    task.cancel()
            results["raw_per_s"] = await _raw_publish_rate(
                broker, files, size=int(results["payload_bytes"]), n=n, window=window
            )
            raw_times = await _raw_rpc(broker, files, n=rpcs)
            results["raw_rpc_p50_ms"] = statistics.median(raw_times) * 1000
            results["raw_rpc_p99_ms"] = _percentile(raw_times, 0.99) * 1000
    finally:
        outbox.close()
        service.close()
    return results


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench link")
    parser.add_argument("--n", type=int, default=300, help="enrolments end to end")
    parser.add_argument("--rpcs", type=int, default=1000, help="RPC round trips")
    parser.add_argument("--window", type=int, default=16, help="enrolments in flight")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        r = asyncio.run(_run(Path(tmp), n=args.n, rpcs=args.rpcs, window=args.window))
    ratio = r["e2e_per_s"] / r["raw_per_s"]
    print(
        f"{args.n} enrolments of {r['payload_bytes'] / 1024:.0f} KiB sealed, window {args.window}; "
        f"{args.rpcs} RPCs. Loopback, TLS, this machine, one run.\n"
    )
    print("| figure | link | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| acked enrolments/s (seal, queue, publish, ingest, ack, purge) | {r['e2e_per_s']:.0f} "
        f"| raw QoS 1 publishes/s, same size: {r['raw_per_s']:.0f} | {ratio:.0%} (goal >= 50 %) |"
    )
    print(
        f"| RPC round trip p50 (lookup_prerequest, signed, service) | {r['rpc_p50_ms']:.2f} ms "
        f"| bare MQTT 5 request/response: {r['raw_rpc_p50_ms']:.2f} ms "
        f"| {r['rpc_p50_ms'] / r['raw_rpc_p50_ms']:.1f}x (goal p50 < 2 ms) |"
    )
    print(
        f"| RPC round trip p99 | {r['rpc_p99_ms']:.2f} ms | {r['raw_rpc_p99_ms']:.2f} ms "
        f"| {r['rpc_p99_ms'] / r['raw_rpc_p99_ms']:.1f}x |"
    )
