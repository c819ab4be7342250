"""The DR's audit of what happens to a sealed enrolment after the station queued it.

The station audits capture and sealing (``finger_capture``, ``enrolment_queued``); this module
audits the rest of the way, at the outbox, where the state really changes:

- ``enrolment_sent``: published to central (once per send attempt that marked the row sent);
- ``payload_deleted_on_ack``: central acknowledged it, the sealed payload is deleted;
- ``payload_deleted_on_rejection``: central refused it for good, the payload is deleted;
- ``receipts_purged``: receipt metadata past its period deleted (a count).

:class:`AuditedOutbox` is an :class:`~edge.queue.AsyncOutbox` that appends these events to the
state directory's audit file (the one ``edge.daemon.open_local`` opens) after each change
committed, in the worker thread that made the change, on its own connection: SQLite
serialises its appends with the station's own (``BEGIN IMMEDIATE``), so one chain results.
With the device's key, each of these appends also signs the chain's head, so cutting entries
off the end is detected by ``dr-edge audit verify``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dr_contracts.audit import AuditLog, DetailValue
from edge.config import EdgeConfig
from edge.queue.async_outbox import AsyncOutbox
from edge.queue.outbox import Outbox

log = logging.getLogger(__name__)

ACTOR: Final = "daemon"
SENT: Final = "enrolment_sent"
ACKED: Final = "payload_deleted_on_ack"
REJECTED: Final = "payload_deleted_on_rejection"
RECEIPTS_PURGED: Final = "receipts_purged"


def device_audit_signer(config: EdgeConfig) -> Ed25519PrivateKey | None:
    """The device's Ed25519 key from its bundle, to sign the audit chain's head; None when
    the device is not provisioned yet (the chain is then only hash-linked)."""
    if config.device.bundle_dir is None:
        return None
    from edge.station.bundle import load_bundle

    try:
        bundle = load_bundle(config.device.bundle_dir, device_id=config.device.id)
    except Exception as exc:  # noqa: BLE001  (a bad bundle is reported where it is used)
        log.warning("audit head signing off: device bundle unreadable (%s)", type(exc).__name__)
        return None
    return bundle.signing_key.private_key


class OutboxAudit:
    """Appends outbox events to an audit file (thread-safe; never raises: logged).

    One connection, opened at the first event; with a signer, the chain's head is signed at
    every append (these events are few: a handful per enrolment).
    """

    def __init__(self, path: Path, *, signer: Ed25519PrivateKey | None = None) -> None:
        self.path = path
        self._signer = signer
        self._lock = threading.Lock()
        self._log: AuditLog | None = None

    def record(
        self, event: str, *, subject: str, details: dict[str, DetailValue] | None = None
    ) -> None:
        try:
            with self._lock:
                if self._log is None:
                    self._log = AuditLog(self.path, signer=self._signer, sign_every=1)
                self._log.append(event, actor=ACTOR, subject=subject, details=details)
        except Exception:
            log.exception("audit append failed (%s)", event)

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None


class AuditedOutbox(AsyncOutbox):
    """:class:`AsyncOutbox` whose state changes are audited (see the module docstring)."""

    def __init__(self, outbox: Outbox, *, audit: OutboxAudit) -> None:
        super().__init__(outbox)
        self.audit = audit

    async def mark_sent(self, enrolment_id: str) -> bool:
        def run() -> bool:
            changed = self.sync.mark_sent(enrolment_id)
            if changed:
                self.audit.record(SENT, subject=enrolment_id)
            return changed

        return await asyncio.to_thread(run)

    async def mark_sent_many(self, enrolment_ids: Sequence[str]) -> list[bool]:
        def run() -> list[bool]:
            changed = self.sync.mark_sent_many(enrolment_ids)
            for enrolment_id, done in zip(enrolment_ids, changed, strict=True):
                if done:
                    self.audit.record(SENT, subject=enrolment_id)
            return changed

        return await asyncio.to_thread(run)

    async def mark_acked(
        self, enrolment_id: str, *, request_number: str, acked_at: datetime | None = None
    ) -> bool:
        def run() -> bool:
            changed = self.sync.mark_acked(
                enrolment_id, request_number=request_number, acked_at=acked_at
            )
            if changed:
                self.audit.record(
                    ACKED, subject=enrolment_id, details={"request_number": request_number}
                )
            return changed

        return await asyncio.to_thread(run)

    async def mark_acked_many(self, acks: Sequence[tuple[str, str, datetime | None]]) -> list[bool]:
        def run() -> list[bool]:
            changed = self.sync.mark_acked_many(acks)
            for (enrolment_id, number, _), done in zip(acks, changed, strict=True):
                if done:
                    self.audit.record(
                        ACKED, subject=enrolment_id, details={"request_number": number}
                    )
            return changed

        return await asyncio.to_thread(run)

    async def mark_rejected(
        self, enrolment_id: str, *, code: str, rejected_at: datetime | None = None
    ) -> bool:
        def run() -> bool:
            changed = self.sync.mark_rejected(enrolment_id, code=code, rejected_at=rejected_at)
            if changed:
                self.audit.record(REJECTED, subject=enrolment_id, details={"code": code})
            return changed

        return await asyncio.to_thread(run)

    async def purge_expired_receipts(self) -> int:
        return await asyncio.to_thread(self.purge_expired_receipts_sync)

    def purge_expired_receipts_sync(self) -> int:
        """The purge, audited, in the calling thread (the daemon's daily housekeeping)."""
        count = self.sync.purge_expired_receipts()
        if count:
            self.audit.record(RECEIPTS_PURGED, subject="outbox", details={"count": count})
        return count


__all__ = ["AuditedOutbox", "OutboxAudit", "device_audit_signer"]
