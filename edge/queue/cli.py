"""``dr-edge queue ...``: inspect and maintain the outbox from a shell (operators, support).

    dr-edge queue stats --db /var/lib/dr-edge/outbox.sqlite3     # JSON telemetry snapshot
    dr-edge queue list --db ...                                   # one JSON line per row
    dr-edge queue check --db ...                                  # PRAGMA integrity_check
    dr-edge queue purge --db ...                                  # expired receipts

Never prints envelope bytes. Messages for the operator are in French; exit status 0 on
success, 1 when the database is unsound, 2 when it cannot be opened.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.queue.errors import OutboxError
from edge.queue.outbox import Outbox, OutboxLimits

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``queue`` command to ``dr-edge``."""
    queue = subparsers.add_parser("queue", help="outbox of sealed enrolments (inspection)")
    sub = queue.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    for name, help_text, func in (
        ("stats", "depth, bytes, oldest pending age, alert flags (JSON)", _stats),
        ("list", "rows without their payload (JSON lines)", _list),
        ("check", "run PRAGMA integrity_check", _check),
        ("purge", "delete receipts past their retention period", _purge),
    ):
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("--db", type=Path, required=True, help="outbox database file")
        parser.set_defaults(func=func)


def _open(args: argparse.Namespace) -> Outbox | None:
    path: Path = args.db
    if not path.is_file():
        print(f"Base de la file d'attente introuvable : {path}", file=sys.stderr)
        return None
    try:
        # Inspection only: the disk limit must not get in the way of reading.
        return Outbox(path, limits=OutboxLimits(min_free_disk_bytes=0))
    except OutboxError as exc:
        print(f"Impossible d'ouvrir la file d'attente {path} : {exc}", file=sys.stderr)
        return None


def _stats(args: argparse.Namespace) -> int:
    outbox = _open(args)
    if outbox is None:
        return 2
    with outbox:
        print(json.dumps(outbox.stats().as_dict(), indent=2, sort_keys=True))
    return 0


def _list(args: argparse.Namespace) -> int:
    outbox = _open(args)
    if outbox is None:
        return 2
    with outbox:
        for entry in outbox.entries():
            print(
                json.dumps(
                    {
                        "enrolment_id": entry.enrolment_id,
                        "state": entry.state.value,
                        "request_number": entry.request_number,
                        "envelope_size": entry.envelope_size,
                        "attempts": entry.attempts,
                        "created_at": entry.created_at.isoformat(),
                        "next_attempt_at": entry.next_attempt_at.isoformat(),
                        "last_error": entry.last_error,
                        "rejection_code": entry.rejection_code,
                    },
                    sort_keys=True,
                )
            )
    return 0


def _check(args: argparse.Namespace) -> int:
    outbox = _open(args)
    if outbox is None:
        return 2
    with outbox:
        messages = outbox.integrity_check()
    if messages == ["ok"]:
        print("File d'attente intègre.")
        return 0
    print("File d'attente endommagée :", *messages, sep="\n  ", file=sys.stderr)
    return 1


def _purge(args: argparse.Namespace) -> int:
    outbox = _open(args)
    if outbox is None:
        return 2
    with outbox:
        count = outbox.purge_expired_receipts()
    print(f"{count} reçu(s) expiré(s) supprimé(s).")
    return 0
