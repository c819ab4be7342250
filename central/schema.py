"""Central's tables (portable SQL, see :mod:`central.store`) and their creation.

Times are stored as ISO-8601 UTC text with microseconds (fixed width, so text order is time
order). Biometric data never sits in clear: ``biometrics.ciphertext`` is AES-256-GCM with a
storage key from central's key directory and a random nonce per row.
"""

from __future__ import annotations

from typing import Final

from central.store import Store

SCHEMA_VERSION: Final = 3  # 2: prerequests.birth_date; 3: split counter space

# Counter values (see docs/identifiers.md): fresh numbers count up from 0, leased blocks from
# here, so the two allocators never meet (1.1e15 fresh numbers, 2.5e15 leased ones).
LEASE_COUNTER_BASE: Final = 2**50

_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS prerequests (
        number TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        reason TEXT NOT NULL,
        birth_date TEXT NOT NULL,
        fields TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        consumed_at TEXT,
        request_number TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS stamps (
        number TEXT PRIMARY KEY,
        amount_cents INTEGER NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT,
        request_number TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS devices (
        device_id TEXT PRIMARY KEY,
        commune_code TEXT NOT NULL,
        commune_name TEXT NOT NULL,
        station INTEGER NOT NULL,
        signing_key {blob} NOT NULL,
        handover_key {blob},
        state TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY,
        value {bigint} NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS leases (
        lease_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices (device_id),
        first_counter {bigint} NOT NULL,
        count INTEGER NOT NULL,
        issued_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS leases_by_device ON leases (device_id, first_counter)",
    """CREATE TABLE IF NOT EXISTS requests (
        request_number TEXT PRIMARY KEY,
        enrolment_id TEXT NOT NULL UNIQUE,
        envelope_digest {blob} NOT NULL,
        device_id TEXT NOT NULL REFERENCES devices (device_id),
        commune_code TEXT NOT NULL,
        prerequest_number TEXT NOT NULL UNIQUE REFERENCES prerequests (number),
        stamp_number TEXT UNIQUE REFERENCES stamps (number),
        agent_id TEXT NOT NULL,
        leased INTEGER NOT NULL,
        stage TEXT NOT NULL,
        stage_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        ack {blob} NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS stage_history (
        request_number TEXT NOT NULL REFERENCES requests (request_number),
        seq INTEGER NOT NULL,
        stage TEXT NOT NULL,
        at TEXT NOT NULL,
        note TEXT NOT NULL,
        PRIMARY KEY (request_number, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS biometrics (
        enrolment_id TEXT PRIMARY KEY REFERENCES requests (enrolment_id),
        key_id TEXT NOT NULL,
        nonce {blob} NOT NULL,
        ciphertext {blob} NOT NULL
    )""",
    # Privacy (central.retention): the applicant's choice about the full images, copied out of
    # the encrypted record at ingest so the retention job need not open records to decide, and
    # when the images were erased. Created if missing: no schema version change.
    """CREATE TABLE IF NOT EXISTS retention (
        enrolment_id TEXT PRIMARY KEY REFERENCES requests (enrolment_id),
        erase_images INTEGER NOT NULL,
        images_erased_at TEXT
    )""",
)


# PostgreSQL would try to compress every ciphertext before storing it out of line (TOAST):
# wasted CPU, since ciphertext does not compress.
_POSTGRES_ONLY: Final = (
    "CREATE SEQUENCE IF NOT EXISTS request_counter AS BIGINT MINVALUE 0 START 0",
    "ALTER TABLE biometrics ALTER COLUMN ciphertext SET STORAGE EXTERNAL",
    "ALTER TABLE requests ALTER COLUMN ack SET STORAGE EXTERNAL",
)


def create_schema(store: Store) -> None:
    """Create the tables if missing and check the schema version (idempotent)."""
    with store.transaction() as tx:
        for statement in _DDL:
            tx.execute(statement)
        if store.dialect.name == "postgresql":
            for statement in _POSTGRES_ONLY:
                tx.execute(statement)
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
            (str(SCHEMA_VERSION),),
        )
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('request', 0), ('lease', ?)"
            " ON CONFLICT DO NOTHING",
            (LEASE_COUNTER_BASE,),
        )
        row = tx.one("SELECT value FROM meta WHERE key = 'schema_version'")
    if row is None or int(row[0]) != SCHEMA_VERSION:
        found = None if row is None else row[0]
        raise RuntimeError(f"database schema version {found}, this central needs {SCHEMA_VERSION}")
