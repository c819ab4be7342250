"""A purge leaves no biometric bytes in the database files (SQLite and PostgreSQL).

Biometric data is stored encrypted, so the bytes to look for are the stored ciphertexts (and,
for good measure, the plaintext templates and images). The test first checks that they *are*
in the files before the purge (so the scan can fail), then runs the retention job and a
VACUUM, and scans every file again: database, WAL, and for PostgreSQL the database's
directory of relation files.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from central.models import Stage
from central.retention import RetentionPolicy, run_retention
from central.service import CentralService
from tests.fixtures.central import PostgresServer
from tests.fixtures.privacy import AuditedKit, Ingested

POLICY = RetentionPolicy(images_after_decision_days=90, rejected_after_days=100)
SLICE = 48


def _ciphertext(service: CentralService, enrolment_id: str) -> bytes:
    with service.store.transaction(write=False) as tx:
        row = tx.one("SELECT ciphertext FROM biometrics WHERE enrolment_id = ?", (enrolment_id,))
    assert row is not None
    return bytes(row[0])


def _slices(data: bytes, *, count: int = 24) -> list[bytes]:
    step = max(1, (len(data) - SLICE) // count)
    return [data[i : i + SLICE] for i in range(0, len(data) - SLICE, step)][:count]


def _files(service: CentralService, request: pytest.FixtureRequest) -> list[Path]:
    """Flush to disk, then list the files holding this database."""
    url = service.store.url
    if url.startswith("sqlite://"):
        path = Path(url.removeprefix("sqlite://"))
        return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with service.store.transaction(write=False) as tx:
        row = tx.one("SELECT oid FROM pg_database WHERE datname = current_database()")
    assert row is not None
    _autocommit(service, "CHECKPOINT")
    return sorted(p for p in (server.data_dir / "base" / str(row[0])).iterdir() if p.is_file())


def _autocommit(service: CentralService, statement: str) -> None:
    url = service.store.url
    if url.startswith("sqlite://"):
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None)
        try:
            db.execute(statement)
        finally:
            db.close()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def _found(files: list[Path], needles: list[bytes]) -> int:
    found = 0
    contents = [p.read_bytes() for p in files]
    for needle in needles:
        if any(needle in content for content in contents):
            found += 1
    return found


def test_purge_leaves_no_biometric_bytes(
    audited_kit: AuditedKit, request: pytest.FixtureRequest
) -> None:
    kit, service = audited_kit.kit, audited_kit.kit.service
    erased: Ingested = audited_kit.ingest(stage=Stage.HANDED_OVER, erase_images=True)
    purged: Ingested = audited_kit.ingest(stage=Stage.REJECTED)
    kept: Ingested = audited_kit.ingest(stage=Stage.UNDER_REVIEW)
    old = {
        name: _slices(_ciphertext(service, item.record.enrolment_id))
        for name, item in (("erased", erased), ("purged", purged), ("kept", kept))
    }
    plaintext = [
        blob[i : i + SLICE]
        for item in (erased, purged, kept)
        for blob in item.record.biometric_blobs()
        for i in (64, len(blob) // 2)
    ]
    files = _files(service, request)
    # Control: the stored ciphertexts are in the files now (the scan can fail).
    for name, needles in old.items():
        assert _found(files, needles) >= len(needles) // 2, name
    assert _found(files, plaintext) == 0  # encrypted at rest

    kit.clock.advance(timedelta(days=101))
    run = run_retention(service, POLICY)
    assert sorted((a.kind, a.subject) for a in run.actions) == sorted(
        [("images", erased.number), ("request", purged.number)]
    )
    _autocommit(service, "VACUUM" if service.store.url.startswith("sqlite") else "VACUUM FULL")
    files = _files(service, request)
    assert _found(files, old["erased"]) == 0
    assert _found(files, old["purged"]) == 0
    assert _found(files, plaintext) == 0
    # The request left alone is still there, byte for byte.
    assert _found(files, old["kept"]) >= len(old["kept"]) // 2
    assert service.enrolment_record(kept.number).enrolment_id == kept.record.enrolment_id
