"""Privacy: what the audit trail costs at ingest, and how fast the retention job deletes.

``python -m bench privacy [--n=N] [--batch=B]``

On SQLite (WAL, synchronous=FULL, on disk, as in production), with realistic two-finger
enrolments (see bench/central.py):

- ingest in batches, with the audit trail (one durable audit append per enrolment) against
  the same ingest without it (the baseline, same run): the ratio is the audit's overhead;
- the retention job: N refused requests purged whole (five DELETEs and a commit each), then
  N image erasures (decrypt, re-encrypt the templates, UPDATE); the rate is set against the
  baseline ingest rate.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from central.audit_hooks import CentralAudit
from central.keyring import CentralKeyring
from central.models import Stage
from central.retention import RetentionPolicy, run_retention
from central.service import CentralService
from dr_contracts.acks import Ack
from dr_contracts.envelope import seal_record
from dr_contracts.keys import SigningKey
from tests.fixtures.central import sample_form
from tests.fixtures.keys import sample_record

DEVICE = "dr-91228-01"


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def _service(directory: Path, clock: _Clock, *, audited: bool) -> tuple[CentralService, SigningKey]:
    keys = CentralKeyring.create(directory / "keys")
    service = CentralService.open(
        database=f"sqlite://{directory / 'central.db'}", key_dir=directory / "keys", clock=clock
    )
    if audited:
        service.audit = CentralAudit.open(
            directory / "audit.sqlite3", signer=keys.signing.private_key
        )
    device = SigningKey.generate()
    service.register_device(DEVICE, commune_name="Bench", signing_key=device.public_key)
    return service, device


def _envelopes(
    service: CentralService, device: SigningKey, n: int, rng: random.Random, *, erase: bool
) -> list[tuple[bytes, str]]:
    items = []
    for _ in range(n):
        pre = service.create_prerequest(sample_form())
        record = sample_record(
            rng,
            device_id=DEVICE,
            prerequest_number=pre.number,
            reason=pre.form.reason,
            completed_at=service.now(),
            started_at=service.now() - timedelta(minutes=5),
            erase_images_after_decision=erase,
        )
        envelope = seal_record(record, recipient=service.recipient_public_key, signer=device)
        items.append((envelope, DEVICE))
    return items


def _ingest(
    service: CentralService, items: list[tuple[bytes, str]], batch: int
) -> tuple[float, list[str]]:
    numbers: list[str] = []
    start = time.perf_counter()
    for i in range(0, len(items), batch):
        for answer in service.ingest_batch(items[i : i + batch]):
            assert isinstance(answer, Ack), answer
            numbers.append(answer.request_number)
    return len(items) / (time.perf_counter() - start), numbers


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench privacy")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    rng = random.Random(10)
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-privacy-", dir=Path.cwd()) as tmp:
        for audited in (False, True):
            clock = _Clock()
            directory = Path(tmp) / ("audited" if audited else "plain")
            service, device = _service(directory, clock, audited=audited)
            try:
                items = _envelopes(service, device, args.n, rng, erase=audited)
                rate, numbers = _ingest(service, items, args.batch)
                rates["ingest+audit" if audited else "ingest"] = rate
                if not audited:
                    continue
                half = len(numbers) // 2
                for number in numbers[:half]:
                    service.advance_status(number, Stage.UNDER_REVIEW)
                    service.advance_status(number, Stage.REJECTED)
                for number in numbers[half:]:
                    for stage in (
                        Stage.UNDER_REVIEW,
                        Stage.IN_PRODUCTION,
                        Stage.AVAILABLE,
                        Stage.HANDED_OVER,
                    ):
                        service.advance_status(number, stage)
                clock.now += timedelta(days=91)
                policy = RetentionPolicy(rejected_after_days=90)
                start = time.perf_counter()
                run = run_retention(service, policy)
                elapsed = time.perf_counter() - start
                assert run.done == len(numbers), run.counts()
                rates["retention"] = run.done / elapsed
            finally:
                service.close()
    base = rates["ingest"]
    print(f"SQLite WAL synchronous=FULL, n={args.n}, ingest batches of {args.batch}.\n")
    print("| measure | per second | vs baseline ingest |")
    print("|---|---|---|")
    print(f"| ingest, no audit (baseline) | {base:.0f} | 1.00 |")
    with_audit = rates["ingest+audit"]
    print(f"| ingest with audit trail | {with_audit:.0f} | {with_audit / base:.2f} |")
    print(
        f"| retention job: purges (half whole requests, half image erasures) "
        f"| {rates['retention']:.0f} | {rates['retention'] / base:.2f} |"
    )
