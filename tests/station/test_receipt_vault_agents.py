"""Receipt PDF, encrypted working store and agent accounts (one layer each, real files)."""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dr_contracts.audit import AuditLog
from dr_contracts.identifiers import format_request_number, request_number_for
from edge.station.agents import AgentDirectory
from edge.station.errors import AgentLockedError, NotAuthenticatedError, SignInRefusedError
from edge.station.receipt import ReceiptData, render_receipt
from edge.station.store import SessionRow, StationStore
from edge.station.vault import StateKeyExposedError, Vault, VaultError


def pdf_text(pdf: bytes) -> str:
    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            chunks.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            continue
    return "\n".join(chunks)


@pytest.mark.parametrize("offline", [False, True])
def test_receipt_pdf_content(offline: bool) -> None:
    number = request_number_for(123456)
    pdf = render_receipt(
        ReceiptData(
            mairie="Mairie d'Évry-Courcouronnes",
            mairie_address="Place des Droits",
            device_id="dr-91228-01",
            request_number=number,
            prerequest_number="AB12CD34EF",
            holder_name="MARTIN Léa",
            created_at=datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
            offline=offline,
        )
    )
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert format_request_number(number) in text
    assert "AB12CD34EF" in text
    assert "pissé de demande de carte nationale d" in text  # "Récépissé ..." in Latin-1
    assert ("hors connexion" in text) is offline
    assert b"/Subtype /Image" in pdf  # the QR code of the number


def test_vault_binds_values_to_their_row(tmp_path: Path) -> None:
    vault = Vault.load_or_create(tmp_path / "state.key")
    assert (tmp_path / "state.key").stat().st_mode & 0o777 == 0o600
    blob = vault.seal(b"secret", context="capture:a")
    assert vault.open(blob, context="capture:a") == b"secret"
    with pytest.raises(VaultError):
        vault.open(blob, context="capture:b")
    (tmp_path / "state.key").chmod(0o644)
    with pytest.raises(StateKeyExposedError) as err:
        Vault.load_or_create(tmp_path / "state.key")
    assert str(tmp_path / "state.key") in str(err.value)


def test_store_holds_no_plaintext(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "s.db", vault=Vault.load_or_create(tmp_path / "k"))
    marker = b"TEMPLATE-BYTES-0123456789"
    store.save_session(SessionRow("s1", "agent", "fingers", "t", "t", {"name": "DUPONTMARKER"}))
    store.save_capture("c1", session_id="s1", created_at="t", payload=marker)
    assert store.capture("c1") == marker
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("s.db"))
    assert marker not in raw
    assert b"DUPONTMARKER" not in raw


def test_agents_scrypt_lockout_tokens_and_audit(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 27, 9, 0, tzinfo=UTC)]
    store = StationStore(tmp_path / "s.db", vault=Vault.load_or_create(tmp_path / "k"))
    audit = AuditLog(tmp_path / "audit.db")
    agents = AgentDirectory(
        store,
        audit,
        lockout_failures=3,
        lockout=timedelta(minutes=15),
        token_lifetime=timedelta(hours=8),
        clock=lambda: now[0],
    )
    with pytest.raises(ValueError, match="password"):
        agents.provision("marie", name="Marie", password="short")
    agents.provision("marie", name="Marie", password="un long mot de passe")
    assert b"un long mot de passe" not in (tmp_path / "s.db").read_bytes()
    token = agents.sign_in("marie", "un long mot de passe")
    assert agents.authenticate(token) == "marie"
    with pytest.raises(SignInRefusedError):
        agents.sign_in("nobody", "whatever password")
    for _ in range(2):
        with pytest.raises(SignInRefusedError):
            agents.sign_in("marie", "wrong")
    with pytest.raises(AgentLockedError):
        agents.sign_in("marie", "wrong")
    with pytest.raises(AgentLockedError):
        agents.sign_in("marie", "un long mot de passe")
    now[0] += timedelta(minutes=16)
    agents.sign_in("marie", "un long mot de passe")
    now[0] += timedelta(hours=9)
    with pytest.raises(NotAuthenticatedError):
        agents.authenticate(token)
    events = [e.event for e in audit.entries()]
    assert events.count("signin") == 2
    assert "agent_locked" in events
    assert audit.verify().ok
    audit.close()
    store.close()
