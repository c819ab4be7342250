"""MQTT link: end-to-end acknowledged enrolments per second, and RPC round trips.

    python -m bench link [--n=300] [--rpcs=1000] [--window=16] [--centrals=1] [--profile=DIR]
                         [--no-audit]

Everything real, on loopback, in this run, laid out as the system runs: mosquitto from
central.broker's generated configuration (TLS with client certificates, ACL, persistence,
TCP_NODELAY); central's service on SQLite, with its audit trail as ``dr-central serve`` runs
it (``--no-audit``: without), and its MQTT side in ``--centrals`` processes of their own
(shared subscriptions split the enrolments between them); the device (EdgeLink +
SQLite outbox, synchronous=FULL) in this process.

- **End to end**: seal (HPKE + Ed25519), enqueue (fsync), publish (QoS 1), ingest at central
  (signature, HPKE open, validation, transaction), signed acknowledgement back, mark acked and
  purge the payload (fsync): enrolments per second, from the first seal to the last ack.
- **Baseline**: raw QoS 1 publishes of payloads of the same size, with the same window of
  messages in flight, from one TLS client (this process) to a subscriber in another process
  (as central is), until the subscriber has them all. Same client library, same broker.
- **RPC**: ``lookup_prerequest`` round trips through central's service (signed both ways),
  p50/p99; baseline: a bare MQTT 5 request/response (response topic + correlation data) to
  an echoing client in another process, over the same broker, no signatures, no database.

CPU seconds of every process (device, central instances, broker) are read for each phase
(``/proc/<pid>/stat``), so that a figure can be told apart from the machine's load. With
``--profile=DIR`` every Python process writes a cProfile file per phase into DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import logging
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.queue import realistic_record
from central.audit_hooks import CentralAudit
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
_TICK = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class _Endpoint:
    """What a child process needs to reach the broker as ``files`` (picklable)."""

    host: str
    port: int
    ca_file: Path
    files: CertFiles


@dataclasses.dataclass(frozen=True)
class _CentralSpec:
    endpoint: _Endpoint
    database: str
    key_dir: Path
    instance: str
    profile: Path | None
    audit: bool


def _client(endpoint: _Endpoint, name: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        identifier=name,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=client_tls_context(
            ca_file=endpoint.ca_file, cert_file=endpoint.files.cert, key_file=endpoint.files.key
        ),
        socket_options=NODELAY,
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@contextlib.contextmanager
def _profiled(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)


# -- child processes (spawned: each has its own interpreter, as in production) ----------------


def _central_child(spec: _CentralSpec, conn: Connection) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"{spec.instance}: %(message)s")
    asyncio.run(_central_main(spec, conn))


async def _central_main(spec: _CentralSpec, conn: Connection) -> None:
    service = CentralService.open(database=spec.database, key_dir=spec.key_dir)
    if spec.audit:  # as `dr-central serve` runs: ingests and lookups are audited
        service.audit = CentralAudit.open(
            spec.key_dir.parent / "audit" / f"{spec.instance}.db",
            signer=service.keys.signing.private_key,
        )
    try:
        link = CentralLink(
            CentralLinkSettings(
                host=spec.endpoint.host,
                port=spec.endpoint.port,
                ca_file=spec.endpoint.ca_file,
                cert_file=spec.endpoint.files.cert,
                key_file=spec.endpoint.files.key,
                instance=spec.instance,
            ),
            backend=service,
            signing_key=service.keys.signing,
        )
        with _profiled(spec.profile):
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(link.run())
                await link.wait_connected()
                conn.send("ready")
                await asyncio.to_thread(conn.recv)  # "stop"
                task.cancel()
        conn.send(dict(link.handled))
    finally:
        service.close()


def _subscriber_child(endpoint: _Endpoint, topic: str, n: int, conn: Connection) -> None:
    async def main() -> None:
        async with _client(endpoint, "bench-sub") as sub:
            await sub.subscribe(topic, qos=1)
            conn.send("ready")
            received = 0
            async for _ in sub.messages:
                received += 1
                if received == n:
                    conn.send("done")
                    return

    asyncio.run(main())


def _echo_child(endpoint: _Endpoint, n: int, conn: Connection) -> None:
    request_topic, reply_topic = f"dr/{DEVICE}/rpc", f"dr/{DEVICE}/rpc/reply"

    async def main() -> None:
        async with _client(endpoint, "bench-echo") as echo:
            await echo.subscribe(request_topic, qos=1)
            conn.send("ready")
            answered = 0
            async for message in echo.messages:
                answered += 1
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.CorrelationData = message.properties.CorrelationData  # type: ignore[union-attr]
                await echo.publish(reply_topic, message.payload, qos=1, properties=props)
                if answered == n:
                    return

    asyncio.run(main())


def _receive(conn: Connection, process: multiprocessing.process.BaseProcess) -> object:
    """The child's next message; fails (instead of hanging) if the child died."""
    while not conn.poll(0.5):
        if not process.is_alive():
            raise RuntimeError(f"bench child {process.name} exited with {process.exitcode}")
    return conn.recv()


class _Children:
    """Spawned child processes, each with a pipe; all terminated on exit."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        self.procs: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []

    async def start(self, target: Callable[..., None], *args: object) -> Connection:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=target, args=(*args, child), daemon=True)
        process.start()
        self.procs.append((process, parent))
        message = await asyncio.to_thread(_receive, parent, process)
        if message != "ready":
            raise RuntimeError(f"child said {message!r}")
        return parent

    def pids(self) -> list[int]:
        return [p.pid for p, _ in self.procs if p.pid is not None]

    async def stop(self) -> list[object]:
        """Ask every child to stop, collect what each sends back, and reap them."""
        answers = []
        for process, conn in self.procs:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send("stop")
            try:
                answers.append(await asyncio.to_thread(_receive, conn, process))
            except RuntimeError:
                answers.append(None)
            await asyncio.to_thread(process.join, 10)
        self.close()
        return answers

    def close(self) -> None:
        for process, conn in self.procs:
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()
        self.procs.clear()


class _Cpu:
    """CPU seconds spent by this process, the children and the broker during a phase."""

    def __init__(self, *, broker: int, children: list[int]) -> None:
        self._pids = {"broker": broker} | {f"central{i + 1}": p for i, p in enumerate(children)}
        self._start = {k: _cpu_s(p) for k, p in self._pids.items()}
        self._own = time.process_time()

    def stop(self) -> dict[str, float]:
        used = {k: _cpu_s(p) - self._start[k] for k, p in self._pids.items()}
        return {"device": time.process_time() - self._own} | used


# -- phases -----------------------------------------------------------------------------------


async def _raw_publish_rate(
    device: _Endpoint, central: _Endpoint, *, size: int, n: int, window: int, broker_pid: int
) -> tuple[float, dict[str, float]]:
    payload = random.randbytes(size)
    topic = f"dr/{DEVICE}/enrolments"
    children = _Children()
    try:
        conn = await children.start(_subscriber_child, central, topic, n)
        async with _client(device, "bench-pub") as pub:
            pub.pending_calls_threshold = window + 10  # as EdgeLink: `window` in flight by design
            slots = asyncio.Semaphore(window)

            async def one() -> None:
                async with slots:
                    await pub.publish(topic, payload, qos=1)

            cpu = _Cpu(broker=broker_pid, children=children.pids())
            start = time.perf_counter()
            async with asyncio.TaskGroup() as tg:
                for _ in range(n):
                    tg.create_task(one())
            if await asyncio.to_thread(_receive, conn, children.procs[0][0]) != "done":
                raise RuntimeError("subscriber failed")
            rate = n / (time.perf_counter() - start)
            return rate, cpu.stop()
    finally:
        children.close()


async def _raw_rpc(device: _Endpoint, central: _Endpoint, *, n: int) -> list[float]:
    request_topic, reply_topic = f"dr/{DEVICE}/rpc", f"dr/{DEVICE}/rpc/reply"
    children = _Children()
    try:
        await children.start(_echo_child, central, n)
        async with _client(device, "bench-ask") as ask:
            await ask.subscribe(reply_topic, qos=1)
            times: list[float] = []
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
    finally:
        children.close()


@dataclasses.dataclass
class _World:
    directory: Path
    broker: MosquittoBroker
    device: _Endpoint
    central: _Endpoint
    database: str
    key_dir: Path
    device_key: SigningKey
    service: CentralService
    profile: Path | None
    audit: bool

    def central_spec(self, i: int, phase: str) -> _CentralSpec:
        profile = None if self.profile is None else self.profile / f"central{i + 1}-{phase}.prof"
        return _CentralSpec(
            self.central, self.database, self.key_dir, f"central-{i + 1}", profile, self.audit
        )

    def link(self, outbox: Outbox | None, *, window: int, **handlers: object) -> EdgeLink:
        return EdgeLink(
            LinkSettings(
                device_id=DEVICE,
                host=self.device.host,
                port=self.device.port,
                ca_file=self.device.ca_file,
                cert_file=self.device.files.cert,
                key_file=self.device.files.key,
                inflight_window=window,
            ),
            signing_key=self.device_key,
            central_key=self.service.signing_public_key,
            outbox=None if outbox is None else AsyncOutbox(outbox),
            **handlers,  # type: ignore[arg-type]
        )


async def _rpc_phase(world: _World, *, rpcs: int) -> tuple[list[float], dict[str, float]]:
    number = world.service.create_prerequest(sample_form()).number
    children = _Children()
    try:
        await children.start(_central_child, world.central_spec(0, "rpc"))
        link = world.link(None, window=16)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(link.run())
            await link.wait_connected()
            for _ in range(20):
                await link.lookup_prerequest(number)  # warm-up
            times = []
            cpu = _Cpu(broker=world.broker.pid or 0, children=children.pids())
            with _profiled(world.profile and world.profile / "device-rpc.prof"):
                for _ in range(rpcs):
                    start = time.perf_counter()
                    await link.lookup_prerequest(number)
                    times.append(time.perf_counter() - start)
            used = cpu.stop()
            task.cancel()
        await children.stop()
        return times, used
    finally:
        children.close()


async def _e2e_phase(
    world: _World, *, n: int, window: int, centrals: int
) -> tuple[float, float, dict[str, float]]:
    service = world.service
    rng = random.Random(7)
    records = []
    for _ in range(n):
        pre = service.create_prerequest(sample_form())
        record, _ = realistic_record(rng)
        records.append(dataclasses.replace(record, prerequest_number=pre.number, device_id=DEVICE))
    outbox = Outbox(world.directory / "outbox.db")
    acked = 0
    all_acked = asyncio.Event()

    def on_acked(enrolment_id: str, number: str) -> None:
        nonlocal acked
        acked += 1
        if acked == n:
            all_acked.set()

    def on_rejection(enrolment_id: str, rejection: Rejection) -> None:
        raise SystemExit(f"central rejected an enrolment: {rejection.code} {rejection.detail}")

    children = _Children()
    try:
        for i in range(centrals):
            await children.start(_central_child, world.central_spec(i, "e2e"))
        link = world.link(outbox, window=window, on_acked=on_acked, on_rejection=on_rejection)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(link.run())
            await link.wait_connected()
            size = 0
            cpu = _Cpu(broker=world.broker.pid or 0, children=children.pids())
            with _profiled(world.profile and world.profile / "device-e2e.prof"):
                start = time.perf_counter()
                for record in records:
                    sealed = seal_record(
                        record, recipient=service.recipient_public_key, signer=world.device_key
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
                rate = n / (time.perf_counter() - start)
            used = cpu.stop()
            task.cancel()
        await children.stop()
        return rate, size / n, used
    finally:
        children.close()
        outbox.close()


async def _run(
    directory: Path,
    *,
    n: int,
    rpcs: int,
    window: int,
    centrals: int,
    profile: Path | None,
    audit: bool,
) -> dict[str, object]:
    ca = CertificateAuthority.load_or_create(directory / "ca")
    files = {
        cn: ca.issue_client(cn).write(directory / "certs", name=cn) for cn in ("central", DEVICE)
    }
    key_dir = directory / "central-keys"
    CentralKeyring.create(key_dir)
    database = f"sqlite://{directory / 'central.db'}"
    service = CentralService.open(database=database, key_dir=key_dir)
    device_key = SigningKey.generate()
    service.register_device(DEVICE, commune_name="Évry", signing_key=device_key.public_key)
    results: dict[str, object] = {}
    try:
        with MosquittoBroker(directory / "broker", ca=ca) as broker:
            world = _World(
                directory=directory,
                broker=broker,
                device=_Endpoint(broker.host, broker.port, broker.ca_file, files[DEVICE]),
                central=_Endpoint(broker.host, broker.port, broker.ca_file, files["central"]),
                database=database,
                key_dir=key_dir,
                device_key=device_key,
                service=service,
                profile=profile,
                audit=audit,
            )
            times, results["rpc_cpu"] = await _rpc_phase(world, rpcs=rpcs)
            results["rpc_p50_ms"] = statistics.median(times) * 1000
            results["rpc_p99_ms"] = _percentile(times, 0.99) * 1000
            rate, size, results["e2e_cpu"] = await _e2e_phase(
                world, n=n, window=window, centrals=centrals
            )
            results["e2e_per_s"], results["payload_bytes"] = rate, size
            # After the device's own phases: the echoed replies would otherwise wait for it in
            # its persistent session.
            raw_times = await _raw_rpc(world.device, world.central, n=rpcs)
            results["raw_rpc_p50_ms"] = statistics.median(raw_times) * 1000
            results["raw_rpc_p99_ms"] = _percentile(raw_times, 0.99) * 1000
            results["raw_per_s"], results["raw_cpu"] = await _raw_publish_rate(
                world.device,
                world.central,
                size=int(size),
                n=n,
                window=window,
                broker_pid=broker.pid or 0,
            )
    finally:
        service.close()
    return results


def _cpu_text(used: object, n: int) -> str:
    assert isinstance(used, dict)
    parts = [f"{name} {seconds / n * 1000:.2f}" for name, seconds in used.items()]
    return f"{sum(used.values()) / n * 1000:.2f} ms ({', '.join(parts)})"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench link")
    parser.add_argument("--n", type=int, default=300, help="enrolments end to end")
    parser.add_argument("--rpcs", type=int, default=1000, help="RPC round trips")
    parser.add_argument("--window", type=int, default=16, help="enrolments in flight")
    parser.add_argument("--centrals", type=int, default=1, help="central processes")
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile files here")
    parser.add_argument(
        "--no-audit", dest="audit", action="store_false", help="central without its audit trail"
    )
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        r = asyncio.run(
            _run(
                Path(tmp),
                n=args.n,
                rpcs=args.rpcs,
                window=args.window,
                centrals=args.centrals,
                profile=args.profile,
                audit=args.audit,
            )
        )
    e2e, raw = float(r["e2e_per_s"]), float(r["raw_per_s"])  # type: ignore[arg-type]
    p50, p99 = float(r["rpc_p50_ms"]), float(r["rpc_p99_ms"])  # type: ignore[arg-type]
    raw50, raw99 = float(r["raw_rpc_p50_ms"]), float(r["raw_rpc_p99_ms"])  # type: ignore[arg-type]
    size = float(r["payload_bytes"])  # type: ignore[arg-type]
    print(
        f"{args.n} enrolments of {size / 1024:.0f} KiB sealed, window {args.window}, "
        f"{args.centrals} central process(es), "
        f"{'with' if args.audit else 'without'} central's audit trail; {args.rpcs} RPCs. "
        "Loopback, TLS, one run; "
        f"load average {os.getloadavg()[0]:.1f}.\n"
    )
    print("| figure | link | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| acked enrolments/s (seal, queue, publish, ingest, ack, purge) | {e2e:.0f} "
        f"| raw QoS 1 publishes/s, same size, to a subscriber process: {raw:.0f} "
        f"| {e2e / raw:.0%} (goal >= 50 %) |"
    )
    print(
        f"| RPC round trip p50 (lookup_prerequest, signed, service) | {p50:.2f} ms "
        f"| bare MQTT 5 request/response: {raw50:.2f} ms | {p50 / raw50:.1f}x (goal < 2 ms) |"
    )
    print(f"| RPC round trip p99 | {p99:.2f} ms | {raw99:.2f} ms | {p99 / raw99:.1f}x |")
    print(
        f"\nCPU per enrolment: {_cpu_text(r['e2e_cpu'], args.n)}; "
        f"per raw publish: {_cpu_text(r['raw_cpu'], args.n)}; "
        f"per RPC: {_cpu_text(r['rpc_cpu'], args.rpcs)}."
    )
