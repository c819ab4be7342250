"""Append-only, hash-chained audit log of every event that touches biometric or personal data.

Used by the DR device and by central alike. Each entry carries the SHA-256 hash of the entry
before it, so altering, removing or reordering entries breaks the chain at a place that
:meth:`AuditLog.verify` names. The head of the chain is signed periodically with an Ed25519 key,
so that cutting entries off the end (which leaves a shorter but consistent chain) is detected
against the last signed head too.

Storage is one SQLite file (WAL, ``synchronous=FULL``)::

    audit_entries(seq, at, actor, event, subject, details, prev_hash, hash)
    audit_heads(seq, hash, signed_at, key_id, signature)

``hash = SHA-256(prev_hash || canonical JSON of [seq, at, actor, event, subject, details])``,
with ``prev_hash`` of the first entry 32 zero bytes. Triggers refuse UPDATE and DELETE on the
entries; they stop honest mistakes, the chain detects the rest.

The audit never holds biometric data: details are small scalars (ids, counts, codes), checked
on append.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS_HASH: Final = bytes(32)
# Details are for ids, counts and codes. A long string is far more likely to be data that has
# no place in an audit (a template in base64, a photo) than a legitimate detail.
MAX_DETAIL_CHARS: Final = 200
MAX_DETAILS: Final = 16

DetailValue = str | int | float | bool | None

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_entries (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_heads (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    signed_at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
"""


class AuditError(Exception):
    """Base of the audit log's errors."""


class AuditDetailError(AuditError, ValueError):
    """A detail is not allowed in the audit (too long, binary, nested)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"audit detail {key!r} refused: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event to append (:meth:`AuditLog.append_many`)."""

    event: str
    actor: str
    subject: str = ""
    details: Mapping[str, DetailValue] | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    event: str
    subject: str
    details: Mapping[str, DetailValue]
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One break in the chain, located by sequence number."""

    seq: int
    kind: str  # altered | removed | reordered | head-signature | truncated | head-mismatch
    detail: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class AuditReport:
    entries: int
    signed_heads: int
    problems: tuple[AuditProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short id of a signing key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def entry_hash(
    prev_hash: bytes,
    *,
    seq: int,
    at: str,
    actor: str,
    event: str,
    subject: str,
    details: str,
) -> bytes:
    canonical = json.dumps(
        [seq, at, actor, event, subject, details], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(prev_hash + canonical.encode("utf-8")).digest()


def _head_message(seq: int, head_hash: bytes, signed_at: str) -> bytes:
    return b"dr-audit-head\x00" + f"{seq}\x00{signed_at}\x00".encode() + head_hash


def _check_details(details: Mapping[str, DetailValue]) -> str:
    if len(details) > MAX_DETAILS:
        raise AuditDetailError("*", f"at most {MAX_DETAILS} details")
    for key, value in details.items():
        if isinstance(value, bytes | bytearray | memoryview):
            raise AuditDetailError(key, "binary data never goes in the audit")
        if not isinstance(value, str | int | float | bool | None):
            raise AuditDetailError(key, f"only scalars are allowed, not {type(value).__name__}")
        if isinstance(value, str) and len(value) > MAX_DETAIL_CHARS:
            raise AuditDetailError(key, f"longer than {MAX_DETAIL_CHARS} characters")
    return json.dumps(dict(sorted(details.items())), ensure_ascii=False, separators=(",", ":"))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """An audit log in its own SQLite file.

    One writer process per file; each central instance keeps its own chain.
    """

    def __init__(
        self,
        path: Path,
        *,
        signer: Ed25519PrivateKey | None = None,
        sign_every: int = 100,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = path
        self._signer = signer
        self._sign_every = sign_every
        self._clock = clock
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        if self._signer is not None:
            self.sign_head()
        self._db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(
        self,
        event: str,
        *,
        actor: str,
        subject: str = "",
        details: Mapping[str, DetailValue] | None = None,
    ) -> AuditEntry:
        """Append one event; returns once it is durable."""
        return self.append_many([AuditEvent(event, actor=actor, subject=subject, details=details)])[
            0
        ]

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        """Append several events in order, in one transaction (one fsync); returns once they
        are all durable. All or none: a refused detail refuses the whole call."""
        checked = [(e, _check_details(e.details or {})) for e in events]
        if not checked:
            return []
        at = self._clock().isoformat(timespec="microseconds")
        entries: list[AuditEntry] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(
                "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = (row[0], bytes(row[1])) if row else (0, GENESIS_HASH)
            first = seq + 1
            for event, details_json in checked:
                seq += 1
                digest = entry_hash(
                    prev,
                    seq=seq,
                    at=at,
                    actor=event.actor,
                    event=event.event,
                    subject=event.subject,
                    details=details_json,
                )
                self._db.execute(
                    "INSERT INTO audit_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, at, event.actor, event.event, event.subject, details_json, prev, digest),
                )
                entries.append(
                    AuditEntry(
                        seq,
                        at,
                        event.actor,
                        event.event,
                        event.subject,
                        json.loads(details_json),
                        prev,
                        digest,
                    )
                )
                prev = digest
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        # The head is signed whenever the chain passed a multiple of sign_every.
        if self._signer is not None and seq // self._sign_every > (first - 1) // self._sign_every:
            self.sign_head()
        return entries

    def sign_head(self) -> int | None:
        """Sign the current head of the chain; returns its sequence number (None if empty)."""
        if self._signer is None:
            raise AuditError("this audit log has no signing key")
        row = self._db.execute(
            "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        seq, head = int(row[0]), bytes(row[1])
        signed_at = self._clock().isoformat(timespec="microseconds")
        signature = self._signer.sign(_head_message(seq, head, signed_at))
        self._db.execute(
            "INSERT OR REPLACE INTO audit_heads VALUES (?, ?, ?, ?, ?)",
            (seq, head, signed_at, key_id(self._signer.public_key()), signature),
        )
        return seq

    def entries(self) -> Iterator[AuditEntry]:
        for row in self._db.execute("SELECT * FROM audit_entries ORDER BY rowid"):
            yield AuditEntry(
                int(row[0]),
                row[1],
                row[2],
                row[3],
                row[4],
                json.loads(row[5]),
                bytes(row[6]),
                bytes(row[7]),
            )

    def verify(self, public_keys: Mapping[str, Ed25519PublicKey] | None = None) -> AuditReport:
        """Walk the chain and the signed heads; report every break, located."""
        return verify_audit(self._db, public_keys or {})


def verify_audit(
    db: sqlite3.Connection, public_keys: Mapping[str, Ed25519PublicKey]
) -> AuditReport:
    problems: list[AuditProblem] = []
    hashes: dict[int, bytes] = {}
    expected_seq, prev = 1, GENESIS_HASH
    count = 0
    # rowid order is insertion order: a reordering of rows (rewritten file) shows as a seq that
    # goes backwards or a prev_hash that does not follow.
    rows = db.execute(
        "SELECT seq, at, actor, event, subject, details, prev_hash, hash "
        "FROM audit_entries ORDER BY rowid"
    )
    for seq, at, actor, event, subject, details, prev_hash, stored in rows:
        count += 1
        prev_hash, stored = bytes(prev_hash), bytes(stored)
        recomputed = entry_hash(
            prev_hash, seq=seq, at=at, actor=actor, event=event, subject=subject, details=details
        )
        if recomputed != stored:
            problems.append(AuditProblem(seq, "altered", "content does not match its hash"))
        if seq < expected_seq:
            problems.append(AuditProblem(seq, "reordered", f"expected entry {expected_seq}"))
        elif seq > expected_seq:
            problems.append(
                AuditProblem(seq, "removed", f"entries {expected_seq}..{seq - 1} are missing")
            )
        elif prev_hash != prev:
            problems.append(AuditProblem(seq, "reordered", "does not follow the entry before it"))
        hashes[seq] = stored
        prev = stored
        expected_seq = max(expected_seq, seq + 1)
    last_seq = expected_seq - 1

    heads = 0
    for seq, head_hash, signed_at, kid, signature in db.execute(
        "SELECT seq, hash, signed_at, key_id, signature FROM audit_heads ORDER BY seq"
    ):
        heads += 1
        key = public_keys.get(kid)
        if key is None:
            problems.append(AuditProblem(seq, "head-signature", f"unknown signing key {kid}"))
        else:
            try:
                key.verify(bytes(signature), _head_message(seq, bytes(head_hash), signed_at))
            except InvalidSignature:
                problems.append(AuditProblem(seq, "head-signature", "signature does not verify"))
        if seq > last_seq:
            problems.append(
                AuditProblem(seq, "truncated", f"signed head is past the last entry {last_seq}")
            )
        elif hashes.get(seq) != bytes(head_hash):
            problems.append(AuditProblem(seq, "head-mismatch", "chain differs from signed head"))
    return AuditReport(entries=count, signed_heads=heads, problems=tuple(problems))
