"""Errors of the outbox. Each carries data, and those the agent sees carry a French message."""

from __future__ import annotations

from enum import StrEnum


class OutboxError(Exception):
    """Base of every outbox error."""


class BacklogReason(StrEnum):
    """Which limit makes the outbox refuse new enrolments."""

    COUNT = "count"  # too many enrolments waiting for central
    BYTES = "bytes"  # too many bytes waiting for central
    AGE = "age"  # the oldest waiting enrolment is too old (the link is down for too long)
    DISK = "disk"  # too little free space left on the station's disk


_BACKLOG_MESSAGES_FR: dict[BacklogReason, str] = {
    BacklogReason.COUNT: (
        "Enregistrement impossible : {value} demandes attendent déjà d'être transmises au "
        "service central (limite : {limit}). Rétablissez la connexion avant de poursuivre."
    ),
    BacklogReason.BYTES: (
        "Enregistrement impossible : la file d'attente locale est pleine ({value} octets en "
        "attente de transmission, limite : {limit}). Rétablissez la connexion au service "
        "central avant de poursuivre."
    ),
    BacklogReason.AGE: (
        "Enregistrement impossible : une demande attend d'être transmise au service central "
        "depuis plus de {limit_days} jours. Contactez l'assistance pour rétablir la connexion."
    ),
    BacklogReason.DISK: (
        "Enregistrement impossible : l'espace disque du poste est insuffisant ({value} octets "
        "libres). Contactez l'assistance."
    ),
}


class BacklogFull(OutboxError):  # noqa: N818 - the name the station and the brief use
    """The outbox refuses new enrolments: a limit is reached (nothing already queued is lost).

    ``message_fr`` is the text to show the agent; ``reason``, ``value`` and ``limit`` say which
    limit and by how much (``value`` in enrolments, bytes or seconds).
    """

    def __init__(self, reason: BacklogReason, *, value: float, limit: float) -> None:
        super().__init__(f"outbox refuses new enrolments: {reason.value} {value} (limit {limit})")
        self.reason = reason
        self.value = value
        self.limit = limit
        self.message_fr = _BACKLOG_MESSAGES_FR[reason].format(
            value=int(value), limit=int(limit), limit_days=round(limit / 86400, 1)
        )


class OutboxStorageError(OutboxError):
    """The database could not be written (disk full, I/O error). The write was rolled back:
    nothing confirmed before is lost, and the enrolment being written was *not* confirmed."""

    message_fr = (
        "La demande n'a pas pu être enregistrée sur le poste (espace disque insuffisant ou "
        "erreur du support de stockage). Aucune demande déjà confirmée n'est perdue. "
        "Contactez l'assistance avant de recommencer."
    )

    def __init__(self, operation: str, *, sqlite_error: str, disk_full: bool) -> None:
        super().__init__(f"outbox {operation} failed: {sqlite_error}")
        self.operation = operation
        self.sqlite_error = sqlite_error
        self.disk_full = disk_full


class DuplicateEnrolmentError(OutboxError):
    """An enrolment id already queued with *different* envelope bytes (same bytes: no-op)."""

    def __init__(self, enrolment_id: str) -> None:
        super().__init__(f"enrolment {enrolment_id} is already queued with another envelope")
        self.enrolment_id = enrolment_id


class UnknownEnrolmentError(OutboxError, LookupError):
    """No row for this enrolment id (never queued, or its receipt was purged)."""

    def __init__(self, enrolment_id: str) -> None:
        super().__init__(f"no outbox row for enrolment {enrolment_id}")
        self.enrolment_id = enrolment_id


class SchemaVersionError(OutboxError):
    """The database was written by a newer version of this software (PRAGMA user_version)."""

    def __init__(self, path: str, *, found: int, supported: int) -> None:
        super().__init__(
            f"{path}: outbox schema version {found} is newer than this software ({supported})"
        )
        self.path = path
        self.found = found
        self.supported = supported
