"""Versioned schema of the outbox database (``PRAGMA user_version``).

Each migration is a tuple of SQL statements taking the schema from version ``n - 1`` to
``n``; :func:`migrate` applies the missing ones in one ``BEGIN IMMEDIATE`` transaction, so a
crash mid-migration leaves the previous version intact. Never edit a released migration: append
a new one.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlite_utils import Database

from edge.queue.errors import SchemaVersionError

# Version 1.
# - outbox: one row per enrolment. ``envelope`` (the sealed bytes) is the LAST column so that
#   reading the metadata of a row never walks the blob's overflow pages; it is set to NULL
#   when central acknowledges or definitively rejects the enrolment (the CHECKs enforce
#   "closed <=> no payload"). ``closed_at`` (ack or rejection time) drives the purge of
#   receipts. Times are Unix seconds (REAL) from the injected clock.
# - outbox_counters: monotonic totals for telemetry (an ack counted once, even if repeated).
_V1: tuple[str, ...] = (
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        enrolment_id TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'acked', 'rejected')),
        prerequest_number TEXT NOT NULL,
        request_number TEXT,
        envelope_size INTEGER NOT NULL CHECK (envelope_size > 0),
        envelope_sha256 BLOB NOT NULL CHECK (length(envelope_sha256) = 32),
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        sent_at REAL,
        acked_at REAL,
        rejected_at REAL,
        rejection_code TEXT,
        closed_at REAL,
        envelope BLOB,
        CHECK ((state IN ('acked', 'rejected')) = (envelope IS NULL)),
        CHECK ((state IN ('acked', 'rejected')) = (closed_at IS NOT NULL)),
        CHECK ((state = 'acked') = (acked_at IS NOT NULL)),
        CHECK ((state = 'rejected') = (rejection_code IS NOT NULL))
    )
    """,
    # Covers next_due() and stats() without touching the table's blobs.
    """
    CREATE INDEX outbox_by_state
        ON outbox (state, next_attempt_at, created_at, envelope_size)
    """,
    "CREATE INDEX outbox_closed_at ON outbox (closed_at) WHERE closed_at IS NOT NULL",
    """
    CREATE TABLE outbox_counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    """
    INSERT INTO outbox_counters (name, value) VALUES
        ('enqueued_total', 0), ('acked_total', 0), ('rejected_total', 0), ('purged_total', 0)
    """,
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)
"""``MIGRATIONS[n - 1]`` takes the schema to version ``n``."""

LATEST_VERSION = len(MIGRATIONS)


def user_version(db: Database) -> int:
    row = db.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _checked_version(db: Database, *, path: str, latest: int) -> int:
    found = user_version(db)
    if found > latest:
        raise SchemaVersionError(path, found=found, supported=latest)
    return found


def migrate(
    db: Database, *, path: str, migrations: Sequence[Sequence[str]] = MIGRATIONS
) -> tuple[int, int]:
    """Bring the schema to the latest version; return ``(before, after)`` versions.

    Raises :class:`SchemaVersionError` if the file is newer than this software.
    The connection must be in autocommit mode (``isolation_level=None``).
    """
    latest = len(migrations)
    db.execute("BEGIN IMMEDIATE")
    try:
        before = _checked_version(db, path=path, latest=latest)
        for version in range(before + 1, latest + 1):
            for statement in migrations[version - 1]:
                db.execute(statement)
            # PRAGMA user_version lives in the database header: it commits with the DDL.
            db.execute(f"PRAGMA user_version = {int(version)}")
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    return before, latest
