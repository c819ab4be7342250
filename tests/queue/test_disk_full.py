"""A full disk during a write: a clear error, nothing confirmed lost, no corruption.

Preferred: a real, small filesystem (a tmpfs mounted with ``size=``, needs root and the right
to mount). Always run as well: a per-process file size limit (``RLIMIT_FSIZE``), which makes
the kernel fail the same writes SQLite issues (EFBIG instead of ENOSPC).
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr_contracts.envelope import open_enrolment, seal_record
from dr_contracts.keys import CentralDecryptionKey, SigningKey
from edge.queue import Outbox, OutboxLimits, OutboxMeta, RowState
from tests.fixtures.keys import KeyFiles
from tests.queue.samples import sample_record

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted in tmp_path (skips where mounting is not allowed)."""
    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the RLIMIT_FSIZE variant still runs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False, capture_output=True)


def _fill(db: Path, keys: KeyFiles, *extra: str) -> tuple[dict[str, str], list[str]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.queue.fill_writer",
            str(db),
            str(keys.central_public),
            keys.central_fingerprint,
            str(keys.device_private),
            *extra,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    committed: dict[str, str] = {}
    other: list[str] = []
    for line in done.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "committed":
            enrolment_id, digest = rest.split()
            committed[enrolment_id] = digest
        else:
            other.append(line)
    return committed, other


def _verify_all_there(
    db: Path,
    committed: dict[str, str],
    central: CentralDecryptionKey,
    device: SigningKey,
) -> None:
    with Outbox(db, limits=OutboxLimits(min_free_disk_bytes=0)) as box:
        assert box.integrity_check() == ["ok"]
        rows = {r.enrolment_id: r for r in box.next_due(limit=10**6)}
        assert set(rows) == set(committed)  # nothing lost, nothing half-written added
        for enrolment_id, digest in committed.items():
            envelope = rows[enrolment_id].envelope
            assert hashlib.sha256(envelope).hexdigest() == digest
            opened = open_enrolment(
                envelope,
                recipient_keys={central.key_id: central},
                device_public_key=device.public_key,
            )
            assert opened.record.enrolment_id == enrolment_id
        assert box.stats().enqueued_total == len(committed)


def test_full_tmpfs_refuses_cleanly_and_loses_nothing(
    small_filesystem: Path,
    key_files: KeyFiles,
    central_key: CentralDecryptionKey,
    device_key: SigningKey,
) -> None:
    # Space that the operator can free afterwards (old logs, say). Freeing must leave room
    # for SQLite to checkpoint the WAL into the database (the data is then briefly twice).
    filler = small_filesystem / "filler"
    filler.write_bytes(b"\0" * (5 * 1024 * 1024))
    db = small_filesystem / "outbox.db"
    committed, other = _fill(db, key_files)
    assert len(committed) >= 5
    refused = other[0].split(" ", 2)
    assert refused[0] == "refused"
    assert refused[1] == "True"  # recognised as a full disk (SQLITE_FULL)
    assert "espace disque insuffisant" in refused[2]
    assert other[1] == f"due {len(committed)}"

    filler.unlink()
    _verify_all_there(db, committed, central_key, device_key)
    # With space back, the station queues again.
    record = sample_record(random.Random(99))
    with Outbox(db, limits=OutboxLimits(min_free_disk_bytes=0)) as box:
        envelope = seal_record(record, recipient=central_key.public_key(), signer=device_key)
        box.enqueue(
            record.enrolment_id,
            envelope,
            meta=OutboxMeta(prerequest_number=record.prerequest_number),
        )
        assert box.entry(record.enrolment_id).state is RowState.PENDING


def test_file_size_limit_refuses_cleanly_and_loses_nothing(
    tmp_path: Path,
    key_files: KeyFiles,
    central_key: CentralDecryptionKey,
    device_key: SigningKey,
) -> None:
    db = tmp_path / "limited" / "outbox.db"
    committed, other = _fill(db, key_files, str(2 * 1024 * 1024))
    assert len(committed) >= 3
    assert other[0].startswith("refused ")
    assert "espace disque insuffisant" in other[0]
    assert other[1] == f"due {len(committed)}"
    _verify_all_there(db, committed, central_key, device_key)
