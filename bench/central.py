"""Central: ingest rate and request-number issuance latency, SQLite and PostgreSQL.

``python -m bench central [--n=N] [--batch=B] [--processes=P] [--no-postgres]``

- Ingest of realistic two-finger enrolments (two ISO templates of ~40 minutiae, two 288x256
  PNGs, ~130 KB sealed), each from a registered device for its own pre-request, timed from
  the sealed bytes to the committed acknowledgement (signature check, HPKE open, record
  decode, ISO parse, rules, AES-GCM storage, one transaction). Three modes: one enrolment
  per call (one commit each); ``ingest_batch`` (one commit per batch); several central
  processes on one database, in batches. The machine is shared, so the batched mode is also
  given per CPU-second (this process, plus the PostgreSQL backends' CPU from /proc), which
  does not depend on what else runs.
  Baseline in the same run: signature check + HPKE open + record decode alone, no database,
  per CPU-second of one process.
- Issuance: latency of one fresh request number (one transaction on the counter row),
  p50/p99; baseline: an empty transaction (``SELECT 1``) on the same store.

Both stores are durable as in production: SQLite WAL with synchronous=FULL on disk, and a
throwaway PostgreSQL cluster on disk with default settings (fsync on).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from central.keyring import CentralKeyring
from central.service import CentralService
from dr_contracts.acks import Ack
from dr_contracts.envelope import open_enrolment, seal_record
from dr_contracts.keys import SigningKey
from tests.fixtures.central import PostgresUnavailableError, running_postgres, sample_form
from tests.fixtures.keys import sample_record

DEVICES = ("dr-91228-01", "dr-91228-02", "dr-75056-01", "dr-69123-01")


def _prepare(service: CentralService, n: int, rng: random.Random) -> list[tuple[str, bytes]]:
    keys = {}
    for device in DEVICES:
        keys[device] = SigningKey.generate()
        service.register_device(device, commune_name="Bench", signing_key=keys[device].public_key)
    envelopes = []
    for i in range(n):
        device = DEVICES[i % len(DEVICES)]
        pre = service.create_prerequest(sample_form())
        record = sample_record(
            rng, device_id=device, prerequest_number=pre.number, reason=pre.form.reason
        )
        envelope = seal_record(record, recipient=service.recipient_public_key, signer=keys[device])
        envelopes.append((device, envelope))
    return envelopes


def _ingest_rate(service: CentralService, work: list[tuple[str, bytes]]) -> float:
    """One enrolment per call (and per transaction), one thread."""
    start = time.perf_counter()
    for device, envelope in work:
        _check(service.ingest(envelope, device_id=device))
    return len(work) / (time.perf_counter() - start)


def _check(*answers: object) -> None:
    for answer in answers:
        if not isinstance(answer, Ack):
            raise TypeError(f"enrolment refused: {answer!r}")


def _ingest_batches(service: CentralService, work: list[tuple[str, bytes]], batch: int) -> int:
    for i in range(0, len(work), batch):
        _check(*service.ingest_batch([(e, d) for d, e in work[i : i + batch]]))
    return len(work)


def _worker(
    database: str,
    key_dir: str,
    work: list[tuple[str, bytes]],
    batch: int,
    ready: Any,
    go: Any,
    done: Any,
) -> None:
    with _service(database, Path(key_dir)) as service:
        ready.put(True)
        go.wait()
        try:
            done.put(_ingest_batches(service, work, batch))
        except Exception as exc:  # noqa: BLE001  (reported to the parent, which fails the run)
            done.put(repr(exc))


def _parallel_rate(
    database: str, key_dir: Path, work: list[tuple[str, bytes]], *, processes: int, batch: int
) -> float:
    """``processes`` central instances on one database, each ingesting in batches."""
    context = multiprocessing.get_context("spawn")
    ready, done, go = context.Queue(), context.Queue(), context.Event()
    workers = [
        context.Process(
            target=_worker,
            args=(database, str(key_dir), work[i::processes], batch, ready, go, done),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=120)
        start = time.perf_counter()
        go.set()
        results = [done.get(timeout=600) for _ in workers]
        elapsed = time.perf_counter() - start
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
                worker.join()
    if not all(isinstance(r, int) for r in results):
        raise RuntimeError(f"a worker failed: {results}")
    return len(work) / elapsed


def _open_rate(service: CentralService, work: list[tuple[str, bytes]]) -> float:
    devices = {d.device_id: d.signing_key for d in service.devices()}
    start = time.process_time()  # CPU time: the machine is shared
    for device, envelope in work:
        open_enrolment(
            envelope,
            recipient_keys=service.keys.decryption_keys,
            device_public_key=devices[device],
            expected_device_id=device,
        )
    return len(work) / (time.process_time() - start)


def _latencies(call: object, count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    quantiles = statistics.quantiles(samples, n=100)
    return quantiles[49], quantiles[98]


def _cpu_seconds(service: CentralService) -> float:
    """CPU time of this process plus that of the database's server backends (PostgreSQL)."""
    total = time.process_time()
    if service.store.dialect.name != "postgresql":
        return total
    with service.store.transaction(write=False) as tx:
        pids = [row[0] for row in tx.all("SELECT pid FROM pg_stat_activity")]
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


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


def _run_store(name: str, database: str, key_dir: Path, args: argparse.Namespace) -> list[str]:
    rng = random.Random(7)
    with _service(database, key_dir) as service:
        work = _prepare(service, 3 * args.n, rng)
        single, batched, parallel = work[: args.n], work[args.n : 2 * args.n], work[2 * args.n :]
        baseline = _open_rate(service, single)
        rate_single = _ingest_rate(service, single)
        start, cpu = time.perf_counter(), _cpu_seconds(service)
        _ingest_batches(service, batched, args.batch)
        rate_batched = len(batched) / (time.perf_counter() - start)
        per_cpu = len(batched) / (_cpu_seconds(service) - cpu)
        p50, p99 = _latencies(service.issue_number, args.issues)
        b50, b99 = _latencies(lambda: _empty_transaction(service), args.issues)
    rate_parallel = _parallel_rate(
        database, key_dir, parallel, processes=args.processes, batch=args.batch
    )
    base = f"open+verify+decode only, per CPU-second: {baseline:,.0f}"
    return [
        f"| {name} | ingest, 1 per transaction (enrolments/s) | {rate_single:,.0f} | {base} "
        f"| {rate_single / baseline:.2f} |",
        f"| {name} | ingest, batches of {args.batch} (enrolments/s) | {rate_batched:,.0f} "
        f"| {base} | {rate_batched / baseline:.2f} |",
        f"| {name} | ingest, batches of {args.batch}, per CPU-second (enrolments) "
        f"| {per_cpu:,.0f} | {base} | {per_cpu / baseline:.2f} |",
        f"| {name} | ingest, {args.processes} processes, batches of {args.batch} "
        f"(enrolments/s) | {rate_parallel:,.0f} | {base} | {rate_parallel / baseline:.2f} |",
        f"| {name} | number issuance p50 / p99 (ms) | {p50:.2f} / {p99:.2f} "
        f"| empty transaction: {b50:.2f} / {b99:.2f} | {p50 / b50:.1f} (p50) |",
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench central")
    parser.add_argument("--n", type=int, default=300, help="enrolments per mode and store")
    parser.add_argument("--batch", type=int, default=32, help="enrolments per transaction")
    parser.add_argument("--processes", type=int, default=2, help="central instances")
    parser.add_argument("--issues", type=int, default=500, help="numbers issued per store")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    rows = ["| store | figure | value | baseline (same run) | ratio |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="bench-central-") as tmp:
        key_dir = Path(tmp) / "keys"
        CentralKeyring.create(key_dir)
        rows += _run_store(
            "SQLite (WAL, FULL)", f"sqlite://{Path(tmp) / 'central.db'}", key_dir, args
        )
        if not args.no_postgres:
            try:
                with running_postgres(durable=True) as server:
                    name = server.create_database()
                    rows += _run_store("PostgreSQL 15", server.url(name), key_dir, args)
            except PostgresUnavailableError as exc:
                rows.append(f"| PostgreSQL | skipped: {exc} | | | |")
    load = os.getloadavg()[0]
    print(
        f"{args.n} enrolments per mode and store, ~130 KB each; goal >= 500 enrolments/s. "
        f"Load average at the end: {load:.1f} on {os.cpu_count()} CPUs.\n"
    )
    print("\n".join(rows))
