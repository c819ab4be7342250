"""Child process of the disk-full tests: queue enrolments until the storage refuses a write.

``python -m tests.queue.fill_writer DB CENTRAL_PUB FINGERPRINT DEVICE_KEY [FSIZE_LIMIT]``

With ``FSIZE_LIMIT`` the process may not grow any file beyond that many bytes
(``RLIMIT_FSIZE``; writes past it fail with EFBIG, as a full disk fails them with ENOSPC).
Prints ``committed <id> <sha256>`` after each enqueue returned, then
``refused <disk_full> <message_fr>`` when :class:`OutboxStorageError` is raised, and exits 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import resource
import signal
import sys
from pathlib import Path

from dr_contracts.enrolment import new_enrolment_id
from dr_contracts.envelope import seal_record
from dr_contracts.keys import CentralRecipientKey, SigningKey
from edge.queue import Outbox, OutboxLimits, OutboxMeta, OutboxStorageError
from tests.queue.samples import sample_record


def main(argv: list[str]) -> int:
    db_path, central_pub, fingerprint, device_key_path, *rest = argv
    recipient = CentralRecipientKey.load(Path(central_pub), pinned_fingerprint=fingerprint)
    signer = SigningKey.load(Path(device_key_path))
    rng = random.Random(7)
    bases = [sample_record(rng) for _ in range(2)]
    outbox = Outbox(
        db_path,
        limits=OutboxLimits(
            max_pending_count=10**6, max_pending_bytes=2**40, min_free_disk_bytes=0
        ),
    )
    if rest:
        # Past the limit, write() fails with EFBIG instead of killing us with SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(rest[0])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    for n in range(10_000):
        record = dataclasses.replace(bases[n % 2], enrolment_id=new_enrolment_id())
        envelope = seal_record(record, recipient=recipient, signer=signer)
        try:
            outbox.enqueue(
                record.enrolment_id,
                envelope,
                meta=OutboxMeta(prerequest_number=record.prerequest_number),
            )
        except OutboxStorageError as exc:
            print(f"refused {exc.disk_full} {exc.message_fr}", flush=True)
            # The database still answers reads after the failed write.
            print(f"due {len(outbox.next_due(limit=10**6))}", flush=True)
            outbox.close()
            return 0
        print(f"committed {record.enrolment_id} {hashlib.sha256(envelope).hexdigest()}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
