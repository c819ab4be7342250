"""Child process of the race tests: open the service, wait for "go", ingest, print the answer.

``python -m tests.central.race_worker DATABASE KEY_DIR DEVICE_ID ENVELOPE_FILE``
Prints ``ready`` once the service is open, waits for one line on stdin, ingests, then prints
one JSON line: ``{"ack": request_number}`` or ``{"rejection": code}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from central.service import CentralService
from dr_contracts.acks import Ack


def main(argv: list[str]) -> None:
    database, key_dir, device_id, envelope_file = argv
    envelope = Path(envelope_file).read_bytes()
    with CentralService.open(database=database, key_dir=Path(key_dir)) as service:
        print("ready", flush=True)
        sys.stdin.readline()
        answer = service.ingest(envelope, device_id=device_id)
    if isinstance(answer, Ack):
        print(json.dumps({"ack": answer.request_number}), flush=True)
    else:
        print(json.dumps({"rejection": answer.code.value}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
