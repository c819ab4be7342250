"""Races for one pre-request, one stamp, one envelope: exactly one wins, on both stores.

Real concurrency: threads each on their own database connection, and separate processes
each with their own service, released together (a barrier, or a "go" line on stdin).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from central.service import CentralService
from dr_contracts.acks import Ack
from dr_contracts.enrolment import RequestReason
from dr_contracts.rejections import Rejection, RejectionCode
from tests.fixtures.central import CentralKit

DEVICES = ("dr-91228-01", "dr-91228-02", "dr-75056-01", "dr-69123-04")
WAIT_S = 60.0


def _run_together(calls: list[Callable[[], Ack | Rejection]]) -> list[Ack | Rejection]:
    barrier = threading.Barrier(len(calls))
    results: list[Ack | Rejection | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=WAIT_S)
            results[i] = calls[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_S)
    assert not errors, errors
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def _outcomes(results: list[Ack | Rejection]) -> Counter[str]:
    return Counter("ack" if isinstance(r, Ack) else r.code.value for r in results)


def _ingest(
    service: CentralService, envelope: bytes, device_id: str
) -> Callable[[], Ack | Rejection]:
    return lambda: service.ingest(envelope, device_id=device_id)


def test_two_devices_race_for_one_prerequest(central_kit: CentralKit) -> None:
    kit = central_kit
    for device in DEVICES:
        kit.add_device(device)
    for _ in range(3):
        pre = kit.prerequest()
        envelopes = [kit.enrolment(pre, device_id=d) for d in DEVICES]
        results = _run_together(
            [_ingest(kit.service, e, d) for e, d in zip(envelopes, DEVICES, strict=True)]
        )
        assert _outcomes(results) == {
            "ack": 1,
            RejectionCode.PREREQUEST_CONSUMED.value: len(DEVICES) - 1,
        }
    assert len(list(kit.service.iter_request_numbers())) == 3


def test_race_for_one_stamp(central_kit: CentralKit) -> None:
    kit = central_kit
    for device in DEVICES:
        kit.add_device(device)
    stamp = kit.service.create_stamp()
    envelopes = [
        kit.enrolment(
            kit.prerequest(reason=RequestReason.LOSS), device_id=d, tax_stamp_number=stamp.number
        )
        for d in DEVICES
    ]
    results = _run_together(
        [_ingest(kit.service, e, d) for e, d in zip(envelopes, DEVICES, strict=True)]
    )
    assert _outcomes(results) == {"ack": 1, RejectionCode.STAMP_USED.value: len(DEVICES) - 1}
    # The losers' pre-requests were not consumed: their transactions rolled back whole.
    unused = [
        kit.service.lookup_prerequest(r_pre, device_id=DEVICES[0])
        for r_pre in [kit.service.get_prerequest(p).number for p in _prerequests(envelopes, kit)]  # type: ignore[union-attr]
    ]
    assert sum(isinstance(u, Rejection) for u in unused) == 1


def _prerequests(envelopes: list[bytes], kit: CentralKit) -> list[str]:
    from dr_contracts.envelope import open_enrolment

    numbers = []
    for envelope, device in zip(envelopes, DEVICES, strict=True):
        opened = open_enrolment(
            envelope,
            recipient_keys=kit.service.keys.decryption_keys,
            device_public_key=kit.devices[device].signing.public_key,
        )
        numbers.append(opened.record.prerequest_number)
    return numbers


def test_duplicate_deliveries_at_once_get_one_number(central_kit: CentralKit) -> None:
    kit = central_kit
    kit.add_device(DEVICES[0])
    envelope = kit.enrolment()
    results = _run_together([_ingest(kit.service, envelope, DEVICES[0]) for _ in range(6)])
    assert all(isinstance(r, Ack) for r in results), results
    assert len({r.to_bytes() for r in results if isinstance(r, Ack)}) == 1
    assert len(list(kit.service.iter_request_numbers())) == 1


def test_processes_race_for_one_prerequest(central_kit: CentralKit, tmp_path: Path) -> None:
    kit = central_kit
    devices = DEVICES[:3]
    for device in devices:
        kit.add_device(device)
    pre = kit.prerequest()
    children = []
    try:
        for i, device in enumerate(devices):
            envelope_file = tmp_path / f"envelope-{i}"
            envelope_file.write_bytes(kit.enrolment(pre, device_id=device))
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.central.race_worker",
                        kit.database,
                        str(kit.key_dir),
                        device,
                        str(envelope_file),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=Path(__file__).resolve().parents[2],
                )
            )
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        answers = []
        for child in children:
            out, _ = child.communicate(timeout=WAIT_S)
            answers.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    outcome = Counter("ack" if "ack" in a else a["rejection"] for a in answers)
    assert outcome == {"ack": 1, RejectionCode.PREREQUEST_CONSUMED.value: 2}
    assert list(kit.service.iter_request_numbers()) == [a["ack"] for a in answers if "ack" in a]
