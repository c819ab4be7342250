"""Asyncio façade of the outbox: each call runs in a worker thread (``asyncio.to_thread``).

The link drains the outbox from the event loop; an ``Outbox`` write waits for an fsync
(milliseconds, more on a busy SD card), which must not stall the loop's MQTT keep-alives.
The underlying :class:`~edge.queue.outbox.Outbox` is thread-safe (one lock, one connection),
so concurrent awaits are serialised there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from edge.queue.outbox import Outbox, OutboxEntry, OutboxMeta, OutboxRow, OutboxStats


class AsyncOutbox:
    """Same operations as :class:`Outbox`, as coroutines. ``sync`` is the wrapped outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self.sync = outbox

    async def enqueue(self, enrolment_id: str, envelope: bytes, *, meta: OutboxMeta) -> None:
        await asyncio.to_thread(self.sync.enqueue, enrolment_id, envelope, meta=meta)

    async def check_admission(self, *, incoming_bytes: int = 0) -> None:
        await asyncio.to_thread(self.sync.check_admission, incoming_bytes=incoming_bytes)

    async def next_due(self, *, limit: int = 8) -> list[OutboxRow]:
        return await asyncio.to_thread(self.sync.next_due, limit=limit)

    async def next_due_at(self) -> datetime | None:
        return await asyncio.to_thread(self.sync.next_due_at)

    async def mark_sent(self, enrolment_id: str) -> bool:
        return await asyncio.to_thread(self.sync.mark_sent, enrolment_id)

    async def mark_sent_many(self, enrolment_ids: Sequence[str]) -> list[bool]:
        return await asyncio.to_thread(self.sync.mark_sent_many, enrolment_ids)

    async def mark_acked_many(self, acks: Sequence[tuple[str, str, datetime | None]]) -> list[bool]:
        return await asyncio.to_thread(self.sync.mark_acked_many, acks)

    async def mark_failed(self, enrolment_id: str, error: str) -> bool:
        return await asyncio.to_thread(self.sync.mark_failed, enrolment_id, error)

    async def mark_acked(
        self, enrolment_id: str, *, request_number: str, acked_at: datetime | None = None
    ) -> bool:
        return await asyncio.to_thread(
            self.sync.mark_acked, enrolment_id, request_number=request_number, acked_at=acked_at
        )

    async def mark_rejected(
        self, enrolment_id: str, *, code: str, rejected_at: datetime | None = None
    ) -> bool:
        return await asyncio.to_thread(
            self.sync.mark_rejected, enrolment_id, code=code, rejected_at=rejected_at
        )

    async def entry(self, enrolment_id: str) -> OutboxEntry:
        return await asyncio.to_thread(self.sync.entry, enrolment_id)

    async def stats(self) -> OutboxStats:
        return await asyncio.to_thread(self.sync.stats)

    async def purge_expired_receipts(self) -> int:
        return await asyncio.to_thread(self.sync.purge_expired_receipts)
