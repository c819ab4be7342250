"""Sealed queue: seal + enqueue, and open + verify, for a realistic two-finger enrolment.

    python -m bench queue [--n=200]

The enrolment: two ISO/IEC 19794-2 templates of 40 minutiae and two lossless PNG images of
256x288 pixels cut from real FVC2002 fingerprints (../shared/data; a synthetic ridge image if
the data is absent). Figures, all measured in this run:

- seal only (HPKE ML-KEM-768+X25519 + Ed25519), the baseline of the two below;
- seal + enqueue with ``synchronous=FULL`` (the durability contract), and with ``NORMAL``
  (a power cut may lose the last commits): the ratio is the price of FULL;
- open + verify at central (signature, HPKE open, strict record decoding).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from dr_contracts.enrolment import EnrolmentRecord, FingerRecord, new_enrolment_id
from dr_contracts.envelope import open_enrolment, seal_record
from dr_contracts.keys import CentralDecryptionKey, SigningKey
from edge.queue import Outbox, OutboxLimits, OutboxMeta
from tests.queue.samples import fingerprint_png, iso_template, sample_record

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FVC_IMAGES = (
    PROJECT_ROOT.parent / "shared" / "data" / "fvc2002" / "db1_b" / "101_1.tif",
    PROJECT_ROOT.parent / "shared" / "data" / "fvc2002" / "db1_b" / "102_1.tif",
)


def _real_png(path: Path) -> bytes:
    """The central 288x256 (rows, cols) window of a real fingerprint, as an 8-bit PNG."""
    image = np.asarray(Image.open(path).convert("L"), dtype=np.uint8)
    top, left = (image.shape[0] - 288) // 2, (image.shape[1] - 256) // 2
    out = io.BytesIO()
    Image.fromarray(image[top : top + 288, left : left + 256], mode="L").save(
        out, format="PNG", optimize=True
    )
    return out.getvalue()


def realistic_record(rng: random.Random) -> tuple[EnrolmentRecord, str]:
    base = sample_record(rng)
    real = all(p.is_file() for p in FVC_IMAGES)
    fingers = []
    for finger, image_path in zip(base.fingers, FVC_IMAGES, strict=True):
        png = _real_png(image_path) if real else fingerprint_png(rng)
        fingers.append(
            dataclasses.replace(
                finger,
                template=iso_template(rng, minutiae=40, position=finger.position),
                image_png=png,
            )
        )
    source = "FVC2002 db1_b 101_1/102_1" if real else "synthetic ridges (FVC data not found)"
    return dataclasses.replace(base, fingers=tuple(fingers)), source


def _rate(action: Callable[[int], object], n: int) -> float:
    """Operations per second over ``n`` calls (median of 3 runs)."""
    rates = []
    for run in range(3):
        start = time.perf_counter()
        for i in range(n):
            action(run * n + i)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench queue")
    parser.add_argument("--n", type=int, default=200, help="operations per timed run")
    args = parser.parse_args(argv)
    n: int = args.n

    rng = random.Random(2026)
    record, source = realistic_record(rng)
    central, device = CentralDecryptionKey.generate(), SigningKey.generate()
    recipient = central.public_key()
    ids = [new_enrolment_id() for _ in range(3 * n)]
    records = [dataclasses.replace(record, enrolment_id=i) for i in ids]

    seal_rate = _rate(lambda i: seal_record(records[i], recipient=recipient, signer=device), n)

    enqueue_rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-queue-", dir=PROJECT_ROOT) as tmp:
        for mode in ("FULL", "NORMAL"):
            box = Outbox(
                Path(tmp) / f"{mode}.db",
                limits=OutboxLimits(
                    max_pending_count=10**6, max_pending_bytes=2**40, min_free_disk_bytes=0
                ),
                synchronous=mode,
            )
            meta = OutboxMeta(prerequest_number=record.prerequest_number)

            def seal_and_enqueue(i: int, box: Outbox = box, meta: OutboxMeta = meta) -> None:
                envelope = seal_record(records[i], recipient=recipient, signer=device)
                box.enqueue(records[i].enrolment_id, envelope, meta=meta)

            enqueue_rates[mode] = _rate(seal_and_enqueue, n)
            box.close()

    envelope = seal_record(record, recipient=recipient, signer=device)
    keyring = {central.key_id: central}
    open_rate = _rate(
        lambda _i: open_enrolment(
            envelope, recipient_keys=keyring, device_public_key=device.public_key
        ),
        n,
    )

    record_bytes = len(record.to_bytes())
    fingers: tuple[FingerRecord, ...] = record.fingers
    print(
        f"Enrolment: 2 fingers, ISO templates of {len(fingers[0].template or b'')} and "
        f"{len(fingers[1].template or b'')} bytes (40 minutiae), PNG 256x288 of "
        f"{len(fingers[0].image_png or b'')} and {len(fingers[1].image_png or b'')} bytes "
        f"({source}); record {record_bytes} bytes, envelope {len(envelope)} bytes "
        f"(+{len(envelope) - record_bytes}). {n} operations per run, median of 3 runs; "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.\n"
    )
    print("| operation | per second | vs baseline |")
    print("|---|---:|---:|")
    print(f"| seal only (baseline) | {seal_rate:,.0f} | 1.00 |")
    print(
        f"| seal + enqueue, synchronous=FULL | {enqueue_rates['FULL']:,.0f} | "
        f"{enqueue_rates['FULL'] / seal_rate:.2f} |"
    )
    print(
        f"| seal + enqueue, synchronous=NORMAL | {enqueue_rates['NORMAL']:,.0f} | "
        f"{enqueue_rates['NORMAL'] / seal_rate:.2f} |"
    )
    print(f"| open + verify + decode (central) | {open_rate:,.0f} | {open_rate / seal_rate:.2f} |")
    print(
        f"\nCost of synchronous=FULL: {enqueue_rates['NORMAL'] / enqueue_rates['FULL']:.2f}x "
        "slower than NORMAL (FULL/NORMAL throughput ratio "
        f"{enqueue_rates['FULL'] / enqueue_rates['NORMAL']:.2f})."
    )
