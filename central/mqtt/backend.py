"""What the MQTT side needs from central's service (``central.service.CentralService`` fits).

Written as a Protocol so that the link is tested against the real service and, in unit tests
of the link alone, against a small stand-in.
"""

from __future__ import annotations

from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dr_contracts.acks import Ack
from dr_contracts.rejections import Rejection

__all__ = ["DeviceLike", "LeaseLike", "LinkBackend", "ResultLike"]


class ResultLike(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class LeaseLike(Protocol):
    @property
    def signed(self) -> bytes: ...


class DeviceLike(Protocol):
    @property
    def signing_key(self) -> Ed25519PublicKey: ...

    @property
    def state(self) -> str: ...


class LinkBackend(Protocol):
    """Central's service API as the link calls it (sync, thread-safe; run in worker threads)."""

    def lookup_prerequest(
        self, number: str, *, device_id: str, audit: bool = True
    ) -> ResultLike | Rejection: ...

    def audit_lookup(self, number: str, *, device_id: str) -> None: ...

    def check_stamp(self, number: str, *, device_id: str) -> ResultLike | Rejection: ...

    def lease_numbers(self, device_id: str, *, count: int) -> LeaseLike | Rejection: ...

    def handover_templates(self, number: str, *, device_id: str) -> bytes | Rejection: ...

    def record_handover(self, number: str, *, device_id: str) -> ResultLike | Rejection: ...

    def ingest(self, envelope: bytes, *, device_id: str) -> Ack | Rejection: ...

    # Optional: ``ingest_batch(items: Sequence[tuple[bytes, str]]) -> list[Ack | Rejection]``
    # (one transaction for many); used when present.

    def device(self, device_id: str) -> DeviceLike | None: ...
