"""SIGKILL a process that is sealing and queueing enrolments, many times, at random moments.

After each kill: the database passes ``PRAGMA integrity_check``; every enrolment the child
reported committed is there, byte-identical, and opens with central's key; every ack it
reported is applied (payload gone); no row is half-written (each pending row's envelope
matches its stored digest and opens); the counters agree with the rows.
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dr_contracts.envelope import open_enrolment
from dr_contracts.keys import CentralDecryptionKey, SigningKey
from edge.queue import Outbox, OutboxLimits, RowState
from tests.fixtures.keys import KeyFiles

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class LineReader:
    """Lines from a child's stdout pipe, with deadlines (select, no blocking reads)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.eof = False

    def _fill(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
        if not ready:
            return False
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
        self.buffer += chunk
        return True

    def line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if self.eof or not self._fill(deadline - time.monotonic()):
                return None
        raw, self.buffer = self.buffer.split(b"\n", 1)
        return raw.decode()

    def wait_for_output(self, timeout: float) -> None:
        """Return when the child writes something, or after ``timeout``: a random kill point."""
        self._fill(timeout)

    def drain(self) -> list[str]:
        while not self.eof:
            self._fill(5.0)
        lines = self.buffer.decode().splitlines()
        self.buffer = b""
        return lines


@dataclass
class Reported:
    committed: dict[str, str] = field(default_factory=dict)  # enrolment id -> envelope sha256
    acked: set[str] = field(default_factory=set)

    def take(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        if kind == "committed":
            enrolment_id, digest = rest.split()
            self.committed[enrolment_id] = digest
        elif kind == "acked":
            self.acked.add(rest)


def _run_round(db: Path, keys: KeyFiles, seed: int, rng: random.Random, reported: Reported) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.queue.crash_writer",
            str(db),
            str(keys.central_public),
            keys.central_fingerprint,
            str(keys.device_private),
            str(seed),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        reader = LineReader(proc.stdout.fileno())
        assert reader.line(timeout=60) == "ready", "crash writer did not start"
        for _ in range(rng.randrange(0, 6)):
            line = reader.line(timeout=60)
            assert line is not None, "crash writer stopped writing"
            reported.take(line)
        reader.wait_for_output(rng.uniform(0.0, 0.04))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        for line in reader.drain():  # printed before the kill: committed too
            reported.take(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _verify(
    db: Path, central: CentralDecryptionKey, device: SigningKey, reported: Reported
) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT enrolment_id, state, envelope, envelope_sha256, envelope_size FROM outbox"
            )
        }
        counters = dict(conn.execute("SELECT name, value FROM outbox_counters").fetchall())
    finally:
        conn.close()
    missing = set(reported.committed) - set(rows)
    assert not missing, f"committed enrolments lost: {sorted(missing)}"
    acked_in_db = 0
    for enrolment_id, (state, envelope, digest, size) in rows.items():
        if state == "acked":
            acked_in_db += 1
            assert envelope is None
            continue
        assert enrolment_id not in reported.acked, f"reported ack of {enrolment_id} lost"
        assert envelope is not None
        assert len(envelope) == size
        assert hashlib.sha256(envelope).digest() == bytes(digest)
        if enrolment_id in reported.committed:
            assert hashlib.sha256(envelope).hexdigest() == reported.committed[enrolment_id]
        opened = open_enrolment(
            envelope,
            recipient_keys={central.key_id: central},
            device_public_key=device.public_key,
        )
        assert opened.record.enrolment_id == enrolment_id
    assert reported.acked <= {i for i, r in rows.items() if r[0] == "acked"}
    assert counters["enqueued_total"] == len(rows)
    assert counters["acked_total"] == acked_in_db


def _crash_many_times(
    tmp_path: Path,
    key_files: KeyFiles,
    central_key: CentralDecryptionKey,
    device_key: SigningKey,
    *,
    rounds: int,
    seed: int,
) -> Reported:
    db = tmp_path / "crash" / "outbox.db"
    rng = random.Random(seed)
    reported = Reported()
    for round_number in range(rounds):
        _run_round(db, key_files, seed * 1000 + round_number, rng, reported)
        _verify(db, central_key, device_key, reported)
    # The survivor opens it normally: every committed enrolment is due, in flight or acked.
    with Outbox(db, limits=OutboxLimits(min_free_disk_bytes=0)) as box:
        assert box.integrity_check() == ["ok"]
        due = {r.enrolment_id for r in box.next_due(limit=10**6)}
        for enrolment_id in reported.committed:
            state = box.entry(enrolment_id).state
            assert state in (RowState.ACKED, RowState.SENT) or enrolment_id in due
        assert box.stats().acked_total >= len(reported.acked)
    assert len(reported.committed) >= rounds  # the child did real work between kills
    return reported


def test_sigkill_at_random_points_loses_nothing_committed(
    tmp_path: Path, key_files: KeyFiles, central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    _crash_many_times(tmp_path, key_files, central_key, device_key, rounds=10, seed=1)


@pytest.mark.slow
def test_sigkill_soak(
    tmp_path: Path, key_files: KeyFiles, central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    _crash_many_times(tmp_path, key_files, central_key, device_key, rounds=150, seed=2)
