"""The station's SQLite file: agents, sign-in tokens, sessions, captures, leased numbers, receipts.

One file under the state directory (WAL, ``synchronous=FULL``, ``secure_delete=ON``), written
from the daemon's event loop with short transactions. Session data and captures are stored
encrypted by :class:`~edge.station.vault.Vault`; the other columns hold no personal data
beyond the agent's id and display name.

Schema version in ``PRAGMA user_version``; migrations are applied in order at open.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.station.vault import Vault

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kdf TEXT NOT NULL,
        hash BLOB NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until TEXT,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE tokens (
        hash BLOB PRIMARY KEY,
        agent_id TEXT NOT NULL REFERENCES agents(id),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        step TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE TABLE captures (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id),
        created_at TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE TABLE numbers (
        number TEXT PRIMARY KEY,
        lease_id TEXT NOT NULL,
        leased_at TEXT NOT NULL,
        expires_at TEXT,
        used_by TEXT,
        used_at TEXT
    );
    CREATE TABLE receipts (
        request_number TEXT PRIMARY KEY,
        enrolment_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        prerequest_number TEXT NOT NULL,
        path TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE handovers (
        request_number TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        at TEXT NOT NULL,
        score REAL NOT NULL
    );
    """,
)


@dataclass(frozen=True, slots=True)
class AgentRow:
    id: str
    name: str
    kdf: dict[str, Any]
    hash: bytes
    failures: int
    locked_until: str | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    agent_id: str
    step: str
    created_at: str
    updated_at: str
    data: dict[str, Any]


class StationStore:
    def __init__(self, path: Path, *, vault: Vault) -> None:
        self.path = path
        self._vault = vault
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self.transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for index in range(version, len(_MIGRATIONS)):
                for statement in _MIGRATIONS[index].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version={len(_MIGRATIONS)}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- agents ----------------------------------------------------------------------------
    def add_agent(self, agent_id: str, *, name: str, kdf: dict[str, Any], hash_: bytes) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO agents (id, name, kdf, hash) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name=excluded.name, kdf=excluded.kdf, "
                "hash=excluded.hash, failures=0, locked_until=NULL, disabled=0",
                (agent_id, name, json.dumps(kdf), hash_),
            )

    def agent(self, agent_id: str) -> AgentRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, kdf, hash, failures, locked_until, disabled FROM agents "
                "WHERE id = ?",
                (agent_id,),
            ).fetchone()
        if row is None:
            return None
        return AgentRow(
            row[0], row[1], json.loads(row[2]), bytes(row[3]), row[4], row[5], bool(row[6])
        )

    def agents(self) -> list[AgentRow]:
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM agents ORDER BY id")]
        return [a for a in (self.agent(i) for i in ids) if a is not None]

    def set_agent_failures(self, agent_id: str, *, failures: int, locked_until: str | None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE agents SET failures = ?, locked_until = ? WHERE id = ?",
                (failures, locked_until, agent_id),
            )

    def set_agent_disabled(self, agent_id: str, *, disabled: bool) -> None:
        with self.transaction() as db:
            db.execute("UPDATE agents SET disabled = ? WHERE id = ?", (int(disabled), agent_id))

    def add_token(
        self, token_hash: bytes, *, agent_id: str, created_at: str, expires_at: str
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?)",
                (token_hash, agent_id, created_at, expires_at),
            )

    def token(self, token_hash: bytes) -> tuple[str, str] | None:
        """(agent id, expiry) of a sign-in token."""
        with self._lock:
            row = self._db.execute(
                "SELECT agent_id, expires_at FROM tokens WHERE hash = ?", (token_hash,)
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def delete_token(self, token_hash: bytes) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tokens WHERE hash = ?", (token_hash,))

    def delete_expired_tokens(self, now: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,))

    # -- sessions --------------------------------------------------------------------------
    def save_session(self, row: SessionRow) -> None:
        blob = self._vault.seal(json.dumps(row.data).encode(), context=f"session:{row.id}")
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "step=excluded.step, updated_at=excluded.updated_at, data=excluded.data",
                (row.id, row.agent_id, row.step, row.created_at, row.updated_at, blob),
            )

    def session(self, session_id: str) -> SessionRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, agent_id, step, created_at, updated_at, data FROM sessions "
                "WHERE id = ?",
                (session_id,),
            ).fetchone()
        if row is None:
            return None
        data = json.loads(self._vault.open(bytes(row[5]), context=f"session:{row[0]}"))
        return SessionRow(row[0], row[1], row[2], row[3], row[4], data)

    def sessions(self, *, steps: tuple[str, ...] | None = None) -> list[SessionRow]:
        """Sessions (decrypted), oldest first; only those in ``steps`` when given."""
        sql = "SELECT id FROM sessions"
        params: tuple[str, ...] = ()
        if steps is not None:
            sql += f" WHERE step IN ({', '.join('?' for _ in steps)})"
            params = steps
        with self._lock:
            ids = [r[0] for r in self._db.execute(sql + " ORDER BY created_at", params)]
        return [s for s in (self.session(i) for i in ids) if s is not None]

    def purge_sessions(self, *, steps: tuple[str, ...], updated_before: str) -> list[str]:
        """Delete finished sessions last changed before a time; returns their ids."""
        marks = ", ".join("?" for _ in steps)
        with self.transaction() as db:
            ids = [
                r[0]
                for r in db.execute(
                    # Only "?" placeholders are formatted in; values go as parameters.
                    f"SELECT id FROM sessions WHERE step IN ({marks}) AND updated_at < ?",  # noqa: S608
                    (*steps, updated_before),
                )
            ]
            for session_id in ids:
                db.execute("DELETE FROM captures WHERE session_id = ?", (session_id,))
                db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return ids

    def purge_receipts(self, *, created_before: str) -> list[str]:
        """Forget receipts made before a time; returns their PDF paths (to delete)."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT path FROM receipts WHERE created_at < ?", (created_before,)
            ).fetchall()
            db.execute("DELETE FROM receipts WHERE created_at < ?", (created_before,))
        return [str(r[0]) for r in rows]

    # -- captures --------------------------------------------------------------------------
    def save_capture(
        self, capture_id: str, *, session_id: str, created_at: str, payload: bytes
    ) -> None:
        blob = self._vault.seal(payload, context=f"capture:{capture_id}")
        with self.transaction() as db:
            db.execute(
                "INSERT INTO captures VALUES (?, ?, ?, ?)",
                (capture_id, session_id, created_at, blob),
            )

    def capture(self, capture_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM captures WHERE id = ?", (capture_id,)
            ).fetchone()
        if row is None:
            return None
        return self._vault.open(bytes(row[0]), context=f"capture:{capture_id}")

    def delete_captures(self, session_id: str, *, keep: set[str] | None = None) -> None:
        with self.transaction() as db:
            ids = [
                r[0]
                for r in db.execute("SELECT id FROM captures WHERE session_id = ?", (session_id,))
            ]
            for capture_id in ids:
                if keep is None or capture_id not in keep:
                    db.execute("DELETE FROM captures WHERE id = ?", (capture_id,))

    def count_captures(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM captures").fetchone()[0])

    # -- request numbers -------------------------------------------------------------------
    def add_numbers(
        self, numbers: list[str], *, lease_id: str, leased_at: str, expires_at: str | None
    ) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO numbers (number, lease_id, leased_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                [(n, lease_id, leased_at, expires_at) for n in numbers],
            )

    def take_number(self, *, enrolment_id: str, now: str) -> str | None:
        """Reserve the next unused leased number for an enrolment (the same one if retried)."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT number FROM numbers WHERE used_by = ?", (enrolment_id,)
            ).fetchone()
            if row is not None:
                return str(row[0])
            row = db.execute(
                "SELECT number FROM numbers WHERE used_by IS NULL "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY leased_at, number LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE numbers SET used_by = ?, used_at = ? WHERE number = ?",
                (enrolment_id, now, row[0]),
            )
            return str(row[0])

    def free_numbers(self, *, now: str) -> int:
        with self._lock:
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM numbers WHERE used_by IS NULL "
                    "AND (expires_at IS NULL OR expires_at > ?)",
                    (now,),
                ).fetchone()[0]
            )

    # -- receipts and handovers ------------------------------------------------------------
    def add_receipt(
        self,
        *,
        request_number: str,
        enrolment_id: str,
        session_id: str,
        prerequest_number: str,
        path: str,
        created_at: str,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO receipts VALUES (?, ?, ?, ?, ?, ?)",
                (request_number, enrolment_id, session_id, prerequest_number, path, created_at),
            )

    def receipt(self, request_number: str) -> dict[str, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT request_number, enrolment_id, session_id, prerequest_number, path, "
                "created_at FROM receipts WHERE request_number = ?",
                (request_number,),
            ).fetchone()
        if row is None:
            return None
        keys = (
            "request_number",
            "enrolment_id",
            "session_id",
            "prerequest_number",
            "path",
            "created_at",
        )
        return dict(zip(keys, row, strict=True))

    def add_handover(self, *, request_number: str, agent_id: str, at: str, score: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO handovers VALUES (?, ?, ?, ?)",
                (request_number, agent_id, at, score),
            )

    def handover(self, request_number: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT request_number, agent_id, at, score FROM handovers "
                "WHERE request_number = ?",
                (request_number,),
            ).fetchone()
        if row is None:
            return None
        return {"request_number": row[0], "agent_id": row[1], "at": row[2], "score": row[3]}
