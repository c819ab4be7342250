"""``dr-central audit verify`` and ``dr-edge audit verify`` find every tampering, and say where.

Central's trail is written by the real service (its events), then altered with SQL the way an
intruder with file access would: an entry changed, removed, two swapped, the tail cut off.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from central.cli import main as central_main
from central.config import load_config
from central.service import CentralService
from dr_contracts.audit import AuditLog
from edge.cli import main as edge_main
from tests.fixtures.central import sample_form

Tamper = Callable[[Path], None]


def _sql(*statements: str) -> Tamper:
    def tamper(path: Path) -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("DROP TRIGGER audit_entries_no_update")
        db.execute("DROP TRIGGER audit_entries_no_delete")
        for statement in statements:
            db.execute(statement)
        db.close()

    return tamper


TAMPERINGS: dict[str, tuple[Tamper, int, str]] = {
    # name: (tampering, first sequence number reported, kind reported there)
    "altered": (
        _sql("UPDATE audit_entries SET subject = 'AAAA0000AA' WHERE seq = 3"),
        3,
        "altered",
    ),
    "removed": (_sql("DELETE FROM audit_entries WHERE seq = 4"), 5, "removed"),
    "reordered": (
        _sql(
            "UPDATE audit_entries SET seq = -1 WHERE seq = 2",
            "UPDATE audit_entries SET seq = 2 WHERE seq = 3",
            "UPDATE audit_entries SET seq = 3 WHERE seq = -1",
        ),
        2,
        "",
    ),
    "truncated": (_sql("DELETE FROM audit_entries WHERE seq > 5"), 7, "truncated"),
}


@pytest.fixture(scope="module")
def central_audit_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A central data directory whose audit trail holds seven real events (signed head at
    the close); returns (data dir, audit file)."""
    data_dir = tmp_path_factory.mktemp("central")
    assert central_main(["--data-dir", str(data_dir), "init"]) == 0
    with CentralService.from_config(load_config(None, env={}, data_dir=data_dir)) as service:
        for _ in range(3):
            pre = service.create_prerequest(sample_form())
            service.get_prerequest(pre.number)  # operator lookups: audited
            service.get_prerequest(pre.number)
        service.get_prerequest("AAAAAAAAAA")
    path = data_dir / "audit.sqlite3"
    with AuditLog(path) as audit:
        assert len(list(audit.entries())) == 7
    return data_dir, path


def _central_verify(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    status = central_main(["--data-dir", str(data_dir), "audit", "verify", "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_central_intact_trail_verifies(
    central_audit_file: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _ = central_audit_file
    status, report = _central_verify(data_dir, capsys)
    assert (status, report["ok"], report["entries"]) == (0, True, 7)
    assert report["signed_heads"] >= 1


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_central_tampering_is_located(
    name: str,
    central_audit_file: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir, original = central_audit_file
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    tamper, seq, kind = TAMPERINGS[name]
    tamper(copy / original.name)
    status, report = _central_verify(copy, capsys)
    assert status == 1
    assert not report["ok"]
    first = min(report["problems"], key=lambda p: p["seq"])
    assert first["seq"] == seq
    if kind:
        assert first["kind"] == kind


def test_central_verify_subprocess_exit_status(
    central_audit_file: tuple[Path, Path], tmp_path: Path
) -> None:
    data_dir, original = central_audit_file
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    command = [sys.executable, "-m", "central.cli", "--data-dir", str(copy), "audit", "verify"]
    intact = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert intact.returncode == 0, intact.stderr
    assert "intact" in intact.stdout
    TAMPERINGS["altered"][0](copy / original.name)
    broken = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert broken.returncode == 1
    assert "entry 3: altered" in broken.stdout


def test_central_verify_missing_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = central_main(["--data-dir", str(tmp_path), "audit", "verify"])
    assert status == 2
    assert "no audit log" in capsys.readouterr().err


def _edge_trail(path: Path) -> None:
    with AuditLog(path) as audit:
        for i in range(8):
            audit.append(
                "finger_capture", actor="agent.test", subject=f"S{i}", details={"position": 2}
            )


@pytest.mark.parametrize("name", ["altered", "removed", "reordered"])
def test_edge_tampering_is_located(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.sqlite3"
    _edge_trail(path)
    assert edge_main(["audit", "verify", "--file", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    tamper, seq, kind = TAMPERINGS[name]
    tamper(path)
    assert edge_main(["audit", "verify", "--file", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    first = min(report["problems"], key=lambda p: p["seq"])
    assert first["seq"] == seq
    if kind:
        assert first["kind"] == kind


def test_edge_verify_text_output_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.sqlite3"
    _edge_trail(path)
    TAMPERINGS["altered"][0](path)
    assert edge_main(["audit", "verify", "--file", str(path)]) == 1
    out = capsys.readouterr().out
    assert "entry 3: altered" in out
    assert "S3" not in out  # entries are located, never printed
    assert edge_main(["audit", "verify", "--file", str(tmp_path / "none.sqlite3")]) == 2
    assert "introuvable" in capsys.readouterr().out
