"""Child process of the crash test: seal and queue enrolments until killed.

``python -m tests.queue.crash_writer DB CENTRAL_PUB FINGERPRINT DEVICE_KEY SEED``

Prints ``ready`` once set up, then for every enrolment, *after* ``enqueue`` returned (so after
the commit): ``committed <enrolment id> <sha256 of the envelope>``; every third one is then
acknowledged and reported as ``acked <enrolment id>`` after ``mark_acked`` returned. The
parent kills it with SIGKILL at random moments and checks what the database holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import sys
from pathlib import Path

from dr_contracts.enrolment import new_enrolment_id
from dr_contracts.envelope import seal_record
from dr_contracts.identifiers import request_number_for
from dr_contracts.keys import CentralRecipientKey, SigningKey
from edge.queue import Outbox, OutboxLimits, OutboxMeta
from tests.queue.samples import sample_record


def main(argv: list[str]) -> int:
    db_path, central_pub, fingerprint, device_key_path, seed = argv
    rng = random.Random(int(seed))
    recipient = CentralRecipientKey.load(Path(central_pub), pinned_fingerprint=fingerprint)
    signer = SigningKey.load(Path(device_key_path))
    outbox = Outbox(
        db_path,
        limits=OutboxLimits(
            max_pending_count=10**6, max_pending_bytes=2**40, min_free_disk_bytes=0
        ),
    )
    # A few realistic records to vary; each enrolment gets a fresh id (and fresh HPKE seal).
    templates = [sample_record(rng) for _ in range(2)]
    print("ready", flush=True)
    for n in range(10**9):
        record = dataclasses.replace(templates[n % len(templates)], enrolment_id=new_enrolment_id())
        envelope = seal_record(record, recipient=recipient, signer=signer)
        outbox.enqueue(
            record.enrolment_id,
            envelope,
            meta=OutboxMeta(prerequest_number=record.prerequest_number),
        )
        print(f"committed {record.enrolment_id} {hashlib.sha256(envelope).hexdigest()}", flush=True)
        if n % 3 == 2:
            outbox.mark_sent(record.enrolment_id)
            outbox.mark_acked(record.enrolment_id, request_number=request_number_for(n))
            print(f"acked {record.enrolment_id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
