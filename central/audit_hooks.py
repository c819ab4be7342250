"""Central's audit trail: the hash-chained :class:`~dr_contracts.audit.AuditLog`, shared by
threads, signed with central's Ed25519 key.

Every event that touches biometric or personal data goes here: ingest (recorded or refused),
a device's pre-request lookup, an operator viewing a pre-request or a request's data report,
a record opened (instruction, handover), a stage change, a purge. Entries hold ids, counts and
codes only (the audit log refuses binary or long values): never biometric data, never a name.

:class:`CentralAudit` serialises appends with a lock (the service is called from many threads,
the log has one connection). Each central instance writes its own file (``[audit] path``);
several processes on one machine may share one file (SQLite serialises their appends).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dr_contracts.audit import AuditEvent, AuditLog, AuditReport, DetailValue, key_id

log = logging.getLogger("central.audit")

# Event names (one declaration each; docs/privacy.md lists them).
INGEST: Final = "ingest"
INGEST_REFUSED: Final = "ingest_refused"
PREREQUEST_LOOKUP: Final = "prerequest_lookup"
PREREQUEST_VIEWED: Final = "prerequest_viewed"
RECORD_OPENED: Final = "record_opened"
TEMPLATES_OPENED: Final = "templates_opened_for_handover"
HANDOVER: Final = "handover"
STAGE_CHANGED: Final = "stage_changed"
DATA_REPORT: Final = "data_report"
PURGE_IMAGES: Final = "purge_images"
PURGE_REQUEST: Final = "purge_request"
PURGE_PREREQUEST: Final = "purge_prerequest"
RETENTION_RUN: Final = "retention_run"

OPERATOR: Final = "operator"
CENTRAL: Final = "central"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CentralAudit:
    """A thread-safe audit log for central; :meth:`open` it from a path and a signing key."""

    def __init__(self, audit: AuditLog, *, public_key: Ed25519PublicKey | None = None) -> None:
        self._log = audit
        self._lock = threading.Lock()
        self._public_key = public_key

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        signer: Ed25519PrivateKey,
        sign_every: int = 100,
        clock: Callable[[], datetime] = _utc_now,
    ) -> CentralAudit:
        path.parent.mkdir(parents=True, exist_ok=True)
        audit = AuditLog(path, signer=signer, sign_every=sign_every, clock=clock)
        return cls(audit, public_key=signer.public_key())

    @property
    def path(self) -> Path:
        return self._log.path

    def record(
        self,
        event: str,
        *,
        actor: str,
        subject: str = "",
        details: Mapping[str, DetailValue] | None = None,
    ) -> None:
        """Append one event (durable on return). Raises what the audit log raises."""
        with self._lock:
            self._log.append(event, actor=actor, subject=subject, details=details)

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        """Append several events in one transaction (durable on return, all or none)."""
        with self._lock:
            self._log.append_many(events)

    def sign_head(self) -> None:
        with self._lock:
            self._log.sign_head()

    def verify(self) -> AuditReport:
        keys = {} if self._public_key is None else {key_id(self._public_key): self._public_key}
        with self._lock:
            return self._log.verify(keys)

    def close(self) -> None:
        with self._lock:
            self._log.close()


def verify_file(path: Path, *, public_keys: Mapping[str, Ed25519PublicKey]) -> AuditReport:
    """Verify an audit file without writing to it (``dr-central audit verify``)."""
    audit = AuditLog(path)  # no signer: close() signs nothing
    try:
        return audit.verify(public_keys)
    finally:
        audit.close()


__all__ = ["CentralAudit", "verify_file"]
