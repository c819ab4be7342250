"""``dr-edge support-bundle`` and ``dr-central support-bundle`` over real files: a real outbox
holding a sealed enrolment, a real central database and keys, real log files."""

from __future__ import annotations

import json
import random
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from central.cli import main as central_main
from dr_contracts.enrolment import EnrolmentRecord
from dr_contracts.supportbundle import REDACTED, redact_mapping
from edge.cli import main as edge_main
from edge.queue import Outbox, OutboxLimits, OutboxMeta

SECRET = "hunter2-s3cret"
BLOB = "".join(
    random.Random(7).choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789") for _ in range(96)
)
LOG_LINES = [
    'ts=2026-11-27T04:00:00Z level=info logger=edge.daemon msg="agent console on http://x"',
    f'ts=2026-11-27T04:00:01Z level=error msg="bad call" password={SECRET}',
    f'ts=2026-11-27T04:00:02Z level=error msg="Authorization: Bearer {SECRET}"',
    f'ts=2026-11-27T04:00:03Z level=debug msg="template {BLOB}"',
    "-----BEGIN PRIVATE KEY-----",
    "MC4CAQAwBQYDK2VwBCIEIKw0ZXN0LWtleS1ub3QtcmVhbC1ub3QtcmVhbC0x",
    "-----END PRIVATE KEY-----",
]


def _read(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {
            m.name.split("/", 1)[1]: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


@pytest.fixture
def edge_config(tmp_path: Path) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[device]\nid = "dr-91228-01"\nstate_dir = "state"\nbundle_dir = "device"\n'
        "[console]\nport = 8123\n"
    )
    (tmp_path / "state").mkdir()
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "device.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nxx\n")
    return path


def test_edge_bundle_has_versions_config_queue_stats_and_redacted_logs(
    tmp_path: Path,
    edge_config: Path,
    make_record: Callable[..., EnrolmentRecord],
    seal: Callable[[EnrolmentRecord], bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    record = make_record()
    envelope = seal(record)
    outbox = Outbox(
        tmp_path / "state" / "outbox.sqlite3", limits=OutboxLimits(min_free_disk_bytes=0)
    )
    outbox.enqueue(
        record.enrolment_id, envelope, meta=OutboxMeta(prerequest_number=record.prerequest_number)
    )
    outbox.close()
    log = tmp_path / "dr-edge.log"
    log.write_text("\n".join(LOG_LINES) + "\n")
    out = tmp_path / "bundle.tar.gz"
    argv = ["support-bundle", "-o", str(out), "--config", str(edge_config), "--log-file", str(log)]
    assert edge_main(argv) == 0
    assert str(out) in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    members = _read(out)
    assert set(members) == {
        "manifest.json",
        "versions.json",
        "config.json",
        "queue.json",
        "files.json",
        "logs.txt",
    }
    manifest = json.loads(members["manifest.json"])
    assert manifest["program"] == "dr-edge"
    assert manifest["problems"] == []
    assert json.loads(members["versions.json"])["python"]
    assert json.loads(members["config.json"])["console"]["port"] == 8123
    queue = json.loads(members["queue.json"])
    assert queue["present"] is True
    assert queue["pending_count"] == 1
    assert queue["pending_bytes"] >= len(envelope)
    files = json.loads(members["files.json"])
    assert {f["path"] for f in files["bundle_dir"]} == {"device.key"}  # listed, never read
    logs = members["logs.txt"].decode()
    assert "agent console on" in logs
    everything = b"".join(members.values())
    for needle in (SECRET, BLOB, "PRIVATE KEY-----\nMC4C", "xx\n", record.prerequest_number):
        assert needle.encode() not in everything, needle
    for i in range(0, len(envelope) - 32, 997):  # no piece of the sealed payload either
        assert envelope[i : i + 32] not in everything


def test_edge_bundle_is_written_even_when_the_config_is_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "edge.toml"
    bad.write_text('[device]\nid = "dr-91228-01"\n[console]\nprot = 1\n')
    out = tmp_path / "b.tar.gz"
    assert edge_main(["support-bundle", "-o", str(out), "--config", str(bad)]) == 0
    members = _read(out)
    problems = json.loads(members["manifest.json"])["problems"]
    assert any("console.prot" in p and "unknown key" in p for p in problems)
    assert "config.json" not in members
    assert "versions.json" in members


def test_edge_bundle_unwritable_output_fails_cleanly(
    tmp_path: Path, edge_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing-dir" / "b.tar.gz"
    assert edge_main(["support-bundle", "-o", str(out), "--config", str(edge_config)]) == 1
    assert "support bundle not written" in capsys.readouterr().err
    assert not out.parent.exists()


def test_central_bundle_has_stats_and_no_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "operator.token"
    token_file.write_text(SECRET * 2)
    config = tmp_path / "central.toml"
    config.write_text(
        '[central]\ndata_dir = "data"\n[http]\noperator_token_file = "operator.token"\n'
        f'[mqtt]\nhost = "127.0.0.1"\noperator_password = "{SECRET}"\n'
        f'[dashboard]\nsession_secret = "{SECRET}"\n'
    )
    assert central_main(["--config", str(config), "init"]) == 0
    capsys.readouterr()
    out = tmp_path / "c.tar.gz"
    assert central_main(["--config", str(config), "support-bundle", "-o", str(out)]) == 0
    members = _read(out)
    assert json.loads(members["manifest.json"])["problems"] == []
    stats = json.loads(members["stats.json"])
    assert stats["database_present"] is True
    assert stats["devices"] == 0
    conf = json.loads(members["config.json"])
    assert conf["mqtt"]["operator_password"] == REDACTED
    assert conf["operator_token_file"] == str(token_file)  # a path is kept, its content never
    assert {f["path"] for f in json.loads(members["files.json"])["data_dir"]} >= {"central.db"}
    assert SECRET.encode() not in b"".join(members.values())


def test_central_bundle_hides_the_database_password_when_it_cannot_connect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "central.toml"
    config.write_text(
        f'[central]\ndatabase = "postgresql://dr:{SECRET}@127.0.0.1:1/dr"\ndata_dir = "d"\n'
    )
    out = tmp_path / "c.tar.gz"
    assert central_main(["--config", str(config), "support-bundle", "-o", str(out)]) == 0
    members = _read(out)
    assert (
        json.loads(members["config.json"])["database"]
        == f"postgresql://dr:{REDACTED}@127.0.0.1:1/dr"
    )
    assert json.loads(members["manifest.json"])["problems"]  # statistics could not be read
    assert SECRET.encode() not in b"".join(members.values())


def test_redact_mapping_keeps_paths_and_hides_secrets() -> None:
    data = {
        "key_file": "/etc/dr/device.key",
        "password": "x",
        "nested": {"api_token": "y", "token_file": "/t", "port": 1},
        "urls": ["postgresql://u:p@h/db"],
    }
    assert redact_mapping(data) == {
        "key_file": "/etc/dr/device.key",
        "password": REDACTED,
        "nested": {"api_token": REDACTED, "token_file": "/t", "port": 1},
        "urls": [f"postgresql://u:{REDACTED}@h/db"],
    }
