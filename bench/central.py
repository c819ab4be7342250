"""Central: ingest rate and request-number issuance latency, SQLite and PostgreSQL.

``python -m bench central [--n=N] [--batch=B] [--processes=P] [--issues=K] [--no-postgres]``

- Ingest of realistic two-finger enrolments (two ISO templates of ~40 minutiae, two 288x256
  PNGs, ~130 KB sealed), each from a registered device for its own pre-request, timed from
  the sealed bytes to the committed acknowledgement (signature check, HPKE open, strict
  record decode, ISO parse, rules, AES-GCM storage, the transaction, the signed ack).
  Modes: one enrolment per call (one commit each); ``ingest_batch`` in one process (one
  commit per batch); ``P`` central processes on one database, in batches, as central is
  deployed (shared subscriptions split the devices' messages between instances). The machine
  is shared, so the batched modes are also given per CPU-second: the CPU of the ingesting
  process(es), plus that of the PostgreSQL server processes, which does not depend on what
  else runs.
  Baseline in the same run: signature check + HPKE open + record decode alone, no database,
  per CPU-second of one process.
- Issuance: latency of one fresh request number (one transaction), p50/p99; baseline: an
  empty transaction (``SELECT 1``) on the same store.

Both stores are durable as in production: SQLite WAL with synchronous=FULL on disk, and a
throwaway PostgreSQL cluster on disk with default settings (fsync on, synchronous_commit on).

The fingers (templates, PNG images) come from a small pool made once per run: making PNGs
costs more than ingesting them, and ingest cost does not depend on which fingers they are.
Every enrolment still has its own id, pre-request, device signature and HPKE sealing.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from central.keyring import CentralKeyring
from central.service import CentralService
from dr_contracts.acks import Ack
from dr_contracts.enrolment import EnrolmentRecord, new_enrolment_id
from dr_contracts.envelope import open_enrolment, seal_record
from dr_contracts.keys import SigningKey
from tests.fixtures.central import PostgresUnavailableError, running_postgres, sample_form
from tests.queue.samples import sample_record

DEVICES = ("dr-91228-01", "dr-91228-02", "dr-75056-01", "dr-69123-01")
FINGER_POOL = 12  # distinct finger pairs (templates + images) per run

Work = list[tuple[bytes, str]]  # (envelope, device id), as ingest_batch takes them


def _finger_pool(rng: random.Random) -> list[EnrolmentRecord]:
    return [sample_record(rng) for _ in range(FINGER_POOL)]


def _prepare(
    service: CentralService, n: int, pool: Sequence[EnrolmentRecord], rng: random.Random
) -> Work:
    keys = {}
    for device in DEVICES:
        keys[device] = SigningKey.generate()
        service.register_device(device, commune_name="Bench", signing_key=keys[device].public_key)
    work = []
    for i in range(n):
        device = DEVICES[i % len(DEVICES)]
        pre = service.create_prerequest(sample_form())
        record = dataclasses.replace(
            rng.choice(pool),
            enrolment_id=new_enrolment_id(),
            device_id=device,
            prerequest_number=pre.number,
            reason=pre.form.reason,
        )
        envelope = seal_record(record, recipient=service.recipient_public_key, signer=keys[device])
        work.append((envelope, device))
    return work


def _check(answers: Sequence[object]) -> None:
    for answer in answers:
        if not isinstance(answer, Ack):
            raise TypeError(f"enrolment refused: {answer!r}")


def _ingest_one_by_one(service: CentralService, work: Work) -> float:
    """One enrolment per call (and per transaction); enrolments per second."""
    start = time.perf_counter()
    for envelope, device in work:
        _check([service.ingest(envelope, device_id=device)])
    return len(work) / (time.perf_counter() - start)


def _ingest_batches(service: CentralService, work: Work, batch: int) -> None:
    for i in range(0, len(work), batch):
        _check(service.ingest_batch(work[i : i + batch]))


def _backend_cpu(service: CentralService) -> float:
    """CPU seconds used so far by the database's server processes (PostgreSQL; 0 for
    SQLite, which runs inside the ingesting process)."""
    if service.store.dialect.name != "postgresql":
        return 0.0
    with service.store.transaction(write=False) as tx:
        pids = [row[0] for row in tx.all("SELECT pid FROM pg_stat_activity")]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def _worker(
    database: str,
    key_dir: str,
    work: Work,
    batch: int,
    queues: tuple[Any, Any],
    events: tuple[Any, Any],
) -> None:
    ready, done = queues
    go, release = events
    with _service(database, Path(key_dir)) as service:
        ready.put(True)
        go.wait()
        cpu = time.process_time()
        try:
            _ingest_batches(service, work, batch)
            done.put(time.process_time() - cpu)
        except Exception as exc:  # noqa: BLE001  (reported to the parent, which fails the run)
            done.put(repr(exc))
        # Kept open until the parent has read the server processes' CPU time.
        release.wait(timeout=120)


def _parallel(
    service: CentralService,
    key_dir: Path,
    work: Work,
    *,
    processes: int,
    batch: int,
) -> tuple[float, float]:
    """``processes`` central instances on one database, each ingesting its share in
    batches; (enrolments per second, enrolments per CPU-second)."""
    context = multiprocessing.get_context("spawn")
    ready, done = context.Queue(), context.Queue()
    go, release = context.Event(), context.Event()
    workers = [
        context.Process(
            target=_worker,
            args=(
                service.store.url,
                str(key_dir),
                work[i::processes],
                batch,
                (ready, done),
                (go, release),
            ),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=120)
        backend = _backend_cpu(service)
        start = time.perf_counter()
        go.set()
        results = [done.get(timeout=600) for _ in workers]
        elapsed = time.perf_counter() - start
        backend = _backend_cpu(service) - backend
        release.set()
    finally:
        release.set()
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
                worker.join()
    cpu = [r for r in results if isinstance(r, float)]
    if len(cpu) != len(results):
        raise RuntimeError(f"a worker failed: {results}")
    return len(work) / elapsed, len(work) / (sum(cpu) + backend)


def _open_rate(service: CentralService, work: Work) -> float:
    devices = {d.device_id: d.signing_key for d in service.devices()}
    start = time.process_time()  # CPU time: the machine is shared
    for envelope, device in work:
        open_enrolment(
            envelope,
            recipient_keys=service.keys.decryption_keys,
            device_public_key=devices[device],
            expected_device_id=device,
        )
    return len(work) / (time.process_time() - start)


def _latencies(call: Callable[[], object], count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    quantiles = statistics.quantiles(samples, n=100)
    return quantiles[49], quantiles[98]


def _empty_transaction(service: CentralService) -> None:
    with service.store.transaction() as tx:
        tx.one("SELECT 1")


@contextmanager
def _service(database: str, key_dir: Path) -> Iterator[CentralService]:
    service = CentralService.open(database=database, key_dir=key_dir)
    try:
        yield service
    finally:
        service.close()


def _run_store(
    name: str,
    database: str,
    key_dir: Path,
    pool: Sequence[EnrolmentRecord],
    args: argparse.Namespace,
) -> list[str]:
    rng = random.Random(7)
    n, processes, batch = args.n, args.processes, args.batch
    with _service(database, key_dir) as service:
        work = _prepare(service, args.single + n + processes * n, pool, rng)
        single = work[: args.single]
        batched = work[args.single : args.single + n]
        parallel = work[args.single + n :]
        baseline = _open_rate(service, batched)
        rate_single = _ingest_one_by_one(service, single)
        start, cpu, backend = time.perf_counter(), time.process_time(), _backend_cpu(service)
        _ingest_batches(service, batched, batch)
        rate_batched = n / (time.perf_counter() - start)
        cpu = time.process_time() - cpu + _backend_cpu(service) - backend
        per_cpu = n / cpu
        rate_parallel, per_cpu_parallel = _parallel(
            service, key_dir, parallel, processes=processes, batch=batch
        )
        p50, p99 = _latencies(service.issue_number, args.issues)
        b50, b99 = _latencies(lambda: _empty_transaction(service), args.issues)
    base = f"open+verify+decode only, per CPU-second: {baseline:,.0f}"

    def row(figure: str, value: float) -> str:
        return f"| {name} | {figure} | {value:,.0f} | {base} | {value / baseline:.2f} |"

    return [
        row("ingest, 1 per transaction, 1 process (enrolments/s)", rate_single),
        row(f"ingest, batches of {batch}, 1 process (enrolments/s)", rate_batched),
        row(f"ingest, batches of {batch}, 1 process, per CPU-second", per_cpu),
        row(f"ingest, batches of {batch}, {processes} processes (enrolments/s)", rate_parallel),
        row(f"ingest, batches of {batch}, {processes} processes, per CPU-second", per_cpu_parallel),
        f"| {name} | number issuance p50 / p99 (ms) | {p50:.2f} / {p99:.2f} "
        f"| empty transaction: {b50:.2f} / {b99:.2f} | {p50 / b50:.1f} (p50) |",
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench central")
    parser.add_argument("--n", type=int, default=256, help="enrolments per batched mode")
    parser.add_argument("--single", type=int, default=96, help="enrolments, one per call")
    parser.add_argument("--batch", type=int, default=32, help="enrolments per transaction")
    parser.add_argument("--processes", type=int, default=2, help="central instances")
    parser.add_argument("--issues", type=int, default=300, help="numbers issued per store")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows = ["| store | figure | value | baseline (same run) | ratio |", "|---|---|---|---|---|"]
    pool = _finger_pool(random.Random(1))
    with tempfile.TemporaryDirectory(prefix="bench-central-") as tmp:
        key_dir = Path(tmp) / "keys"
        CentralKeyring.create(key_dir)
        database = f"sqlite://{Path(tmp) / 'central.db'}"
        rows += _run_store("SQLite (WAL, FULL)", database, key_dir, pool, args)
        if not args.no_postgres:
            try:
                with running_postgres(durable=True) as server:
                    url = server.url(server.create_database())
                    rows += _run_store("PostgreSQL 15", url, key_dir, pool, args)
            except PostgresUnavailableError as exc:
                rows.append(f"| PostgreSQL | skipped: {exc} | | | |")
    print(
        f"{args.single} enrolments one by one, {args.n} batched in 1 process and "
        f"{args.processes * args.n} in {args.processes}, per store; ~130 KB each; "
        f"goal >= 500 enrolments/s. Load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs; "
        f"run took {time.perf_counter() - started:.0f} s.\n"
    )
    print("\n".join(rows))
