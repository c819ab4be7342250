"""Store-and-forward outbox of sealed enrolments (SQLite, WAL, synchronous=FULL).

See :mod:`edge.queue.outbox` for the guarantees and ``docs/outbox.md`` for operations.
"""

from edge.queue.async_outbox import AsyncOutbox
from edge.queue.backoff import Backoff
from edge.queue.errors import (
    BacklogFull,
    BacklogReason,
    DuplicateEnrolmentError,
    OutboxError,
    OutboxStorageError,
    SchemaVersionError,
    UnknownEnrolmentError,
)
from edge.queue.outbox import (
    Outbox,
    OutboxEntry,
    OutboxLimits,
    OutboxMeta,
    OutboxRow,
    OutboxStats,
    RowState,
)

__all__ = [
    "AsyncOutbox",
    "BacklogFull",
    "BacklogReason",
    "Backoff",
    "DuplicateEnrolmentError",
    "Outbox",
    "OutboxEntry",
    "OutboxError",
    "OutboxLimits",
    "OutboxMeta",
    "OutboxRow",
    "OutboxStats",
    "OutboxStorageError",
    "RowState",
    "SchemaVersionError",
    "UnknownEnrolmentError",
]
