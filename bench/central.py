"""Central: ingest rate and request-number issuance latency, SQLite and PostgreSQL.

``python -m bench central [--n N] [--threads T] [--no-postgres]``

- Ingest: realistic two-finger enrolments (two ISO templates of ~40 minutiae, two 288x256
  PNGs), sealed by registered devices, each for its own pre-request; timed from the sealed
  bytes to the committed acknowledgement (signature check, HPKE open, record decode, ISO
  parse, rules, one transaction with AES-GCM storage). Baseline in the same run: signature
  check + HPKE open + record decode alone (no database), single thread.
- Issuance: latency of one fresh request number (one transaction on the counter row),
  p50/p99; baseline: an empty transaction (``SELECT 1``) on the same store.

Both stores are durable as in production: SQLite WAL with synchronous=FULL on disk, and a
throwaway PostgreSQL cluster on disk with default settings (fsync on).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def _ingest_rate(service: CentralService, work: list[tuple[str, bytes]], threads: int) -> float:
    chunks = [work[i::threads] for i in range(threads)]
    failures: list[object] = []

    def run(chunk: list[tuple[str, bytes]]) -> None:
        for device, envelope in chunk:
            answer = service.ingest(envelope, device_id=device)
            if not isinstance(answer, Ack):
                failures.append(answer)

    workers = [threading.Thread(target=run, args=(c,)) for c in chunks]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} enrolments refused, first: {failures[0]!r}")
    return len(work) / elapsed


def _open_rate(service: CentralService, work: list[tuple[str, bytes]]) -> float:
    devices = {d.device_id: d.signing_key for d in service.devices()}
    start = time.perf_counter()
    for device, envelope in work:
        open_enrolment(
            envelope,
            recipient_keys=service.keys.decryption_keys,
            device_public_key=devices[device],
            expected_device_id=device,
        )
    return len(work) / (time.perf_counter() - start)


def _latencies(call: object, count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()  # type: ignore[operator]
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


def _run_store(name: str, database: str, key_dir: Path, args: argparse.Namespace) -> list[str]:
    rng = random.Random(7)
    with _service(database, key_dir) as service:
        work = _prepare(service, args.n, rng)
        baseline = _open_rate(service, work)
        rate = _ingest_rate(service, work, args.threads)
        p50, p99 = _latencies(service.issue_number, args.issues)
        b50, b99 = _latencies(lambda: _empty_transaction(service), args.issues)
    return [
        f"| {name} | ingest, {args.threads} threads (enrolments/s) | {rate:,.0f} "
        f"| open+verify+decode only: {baseline:,.0f} | {rate / baseline:.2f} |",
        f"| {name} | number issuance p50 / p99 (ms) | {p50:.2f} / {p99:.2f} "
        f"| empty transaction: {b50:.2f} / {b99:.2f} | {p50 / b50:.2f} (p50) |",
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench central")
    parser.add_argument("--n", type=int, default=600, help="enrolments per store")
    parser.add_argument("--threads", type=int, default=2)
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
    print(f"{args.n} enrolments per store, goal >= 500 enrolments/s on this machine.\n")
    print("\n".join(rows))
