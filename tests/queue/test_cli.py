"""``dr-edge queue ...`` against a real outbox file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dr_contracts.enrolment import EnrolmentRecord
from dr_contracts.identifiers import request_number_for
from edge.cli import main
from edge.queue import Outbox, OutboxLimits, OutboxMeta


def test_queue_commands(
    tmp_path: Path,
    make_record: Callable[..., EnrolmentRecord],
    seal: Callable[[EnrolmentRecord], bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "outbox.sqlite3"
    records = [make_record() for _ in range(2)]
    envelopes = [seal(r) for r in records]
    with Outbox(db, limits=OutboxLimits(min_free_disk_bytes=0)) as box:
        for record, envelope in zip(records, envelopes, strict=True):
            box.enqueue(
                record.enrolment_id,
                envelope,
                meta=OutboxMeta(prerequest_number=record.prerequest_number),
            )
        box.mark_acked(records[0].enrolment_id, request_number=request_number_for(3))

    assert main(["queue", "stats", "--db", str(db)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["pending_count"] == 1
    assert stats["acked_total"] == 1

    assert main(["queue", "list", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["state"] for r in rows] == ["acked", "pending"]
    assert rows[0]["request_number"] == request_number_for(3)
    assert envelopes[1][:200].hex() not in out

    assert main(["queue", "check", "--db", str(db)]) == 0
    assert "intègre" in capsys.readouterr().out
    assert main(["queue", "purge", "--db", str(db)]) == 0
    assert "0 reçu" in capsys.readouterr().out

    assert main(["queue", "stats", "--db", str(tmp_path / "absent.db")]) == 2
    assert "introuvable" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()
