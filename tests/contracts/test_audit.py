"""The hash-chained audit log detects every kind of tampering and says where."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dr_contracts.audit import AuditDetailError, AuditError, AuditEvent, AuditLog, key_id


@pytest.fixture
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log_path(tmp_path: Path, signer: Ed25519PrivateKey) -> Path:
    path = tmp_path / "audit.sqlite"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = iter(range(10_000))
    with AuditLog(
        path, signer=signer, sign_every=5, clock=lambda: start + timedelta(seconds=next(ticks))
    ) as log:
        for i in range(12):
            log.append("capture", actor="agent-7", subject=f"ENR{i:04d}", details={"finger": 2})
    return path


def _keys(signer: Ed25519PrivateKey) -> dict[str, object]:
    return {key_id(signer.public_key()): signer.public_key()}


def _verify(path: Path, signer: Ed25519PrivateKey):  # type: ignore[no-untyped-def]
    with AuditLog(path) as log:
        return log.verify(_keys(signer))  # type: ignore[arg-type]


def _tamper(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER audit_entries_no_update")
    db.execute("DROP TRIGGER audit_entries_no_delete")
    for statement in statements:
        db.execute(statement)
    db.close()


def test_intact_chain_verifies(log_path: Path, signer: Ed25519PrivateKey) -> None:
    report = _verify(log_path, signer)
    assert report.ok, report.problems
    assert report.entries == 12
    # heads signed at 5 and 10, and at close (12)
    assert report.signed_heads == 3


def test_entries_are_append_only_through_sql(log_path: Path) -> None:
    db = sqlite3.connect(log_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit_entries SET actor = 'x' WHERE seq = 3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_entries WHERE seq = 3")
    db.close()


def test_altered_entry_is_located(log_path: Path, signer: Ed25519PrivateKey) -> None:
    _tamper(log_path, "UPDATE audit_entries SET subject = 'ENR9999' WHERE seq = 4")
    report = _verify(log_path, signer)
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "altered")]


def test_altered_and_rehashed_entry_breaks_the_next_link(
    log_path: Path, signer: Ed25519PrivateKey
) -> None:
    # A forger who recomputes the altered entry's own hash still breaks the chain after it.
    from dr_contracts.audit import entry_hash

    db = sqlite3.connect(log_path)
    seq, at, actor, event, _subject, details, prev = db.execute(
        "SELECT seq, at, actor, event, subject, details, prev_hash FROM audit_entries WHERE seq = 7"
    ).fetchone()
    db.close()
    forged = entry_hash(
        prev, seq=seq, at=at, actor=actor, event=event, subject="FORGED", details=details
    )
    _tamper(
        log_path, f"UPDATE audit_entries SET subject='FORGED', hash=x'{forged.hex()}' WHERE seq = 7"
    )
    kinds = {(p.seq, p.kind) for p in _verify(log_path, signer).problems}
    assert (8, "reordered") in kinds  # entry 8 no longer follows entry 7
    assert (10, "head-mismatch") in kinds or (8, "reordered") in kinds


def test_removed_entry_is_located(log_path: Path, signer: Ed25519PrivateKey) -> None:
    _tamper(log_path, "DELETE FROM audit_entries WHERE seq = 6")
    problems = _verify(log_path, signer).problems
    assert (7, "removed") in {(p.seq, p.kind) for p in problems}


def test_reordered_entries_are_located(log_path: Path, signer: Ed25519PrivateKey) -> None:
    # Swap the places of entries 3 and 4 (seq is the storage key, so this is a reordering).
    _tamper(
        log_path,
        "UPDATE audit_entries SET seq = -1 WHERE seq = 3",
        "UPDATE audit_entries SET seq = 3 WHERE seq = 4",
        "UPDATE audit_entries SET seq = 4 WHERE seq = -1",
    )
    problems = _verify(log_path, signer).problems
    assert problems
    assert min(p.seq for p in problems) == 3
    assert {p.seq for p in problems} <= {3, 4, 5}


def test_truncated_tail_is_detected_by_signed_head(
    log_path: Path, signer: Ed25519PrivateKey
) -> None:
    _tamper(log_path, "DELETE FROM audit_entries WHERE seq > 10")
    problems = _verify(log_path, signer).problems
    assert [(p.seq, p.kind) for p in problems] == [(12, "truncated")]


def test_forged_head_signature_is_detected(log_path: Path, signer: Ed25519PrivateKey) -> None:
    db = sqlite3.connect(log_path, isolation_level=None)
    db.execute("UPDATE audit_heads SET signature = zeroblob(64) WHERE seq = 5")
    db.close()
    problems = _verify(log_path, signer).problems
    assert [(p.seq, p.kind) for p in problems] == [(5, "head-signature")]


def test_unknown_signing_key_is_reported(log_path: Path) -> None:
    report = _verify(log_path, Ed25519PrivateKey.generate())
    assert {p.kind for p in report.problems} == {"head-signature"}


@pytest.mark.parametrize(
    ("details", "key"),
    [
        ({"template": b"\x01\x02"}, "template"),
        ({"image": "A" * 500}, "image"),
        ({"nested": {"a": 1}}, "nested"),
    ],
)
def test_biometric_or_bulky_details_are_refused(
    tmp_path: Path, details: dict[str, object], key: str
) -> None:
    with AuditLog(tmp_path / "a.sqlite") as log:
        with pytest.raises(AuditDetailError) as caught:
            log.append("capture", actor="agent", details=details)  # type: ignore[arg-type]
        assert caught.value.key == key
        assert list(log.entries()) == []


def test_sign_head_without_key_is_an_error(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.sqlite") as log, pytest.raises(AuditError):
        log.sign_head()


def test_append_many_chains_like_single_appends_and_signs_crossed_heads(
    tmp_path: Path, signer: Ed25519PrivateKey
) -> None:
    path = tmp_path / "batched.sqlite"
    with AuditLog(path, signer=signer, sign_every=5) as log:
        log.append("capture", actor="agent-7", subject="ENR0000")
        entries = log.append_many(
            [AuditEvent("ingest", actor="dr-1", subject=f"ENR{i:04d}") for i in range(1, 7)]
        )
        assert [e.seq for e in entries] == [2, 3, 4, 5, 6, 7]
        assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
        with pytest.raises(AuditDetailError):  # one bad event refuses the whole batch
            log.append_many(
                [
                    AuditEvent("ingest", actor="dr-1"),
                    AuditEvent("ingest", actor="dr-1", details={"t": b"\x00"}),  # type: ignore[dict-item]
                ]
            )
        assert [e.seq for e in log.entries()] == list(range(1, 8))
    db = sqlite3.connect(path)
    heads = [row[0] for row in db.execute("SELECT seq FROM audit_heads ORDER BY seq")]
    db.close()
    assert heads[0] == 7  # the batch crossed seq 5: its end was signed at once
    assert _verify(path, signer).ok
