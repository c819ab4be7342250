"""The workflow's :class:`~edge.station.ports.CentralPort` over the MQTT link (``edge.link``).

Maps the link's answers to the station's types and its errors to the station's: central
unreachable -> :class:`CentralUnavailableError`; a refusal from central -> the station error
of that step with central's French message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from dr_contracts.rejections import Rejection, RejectionCode
from edge.audit_cli import AUDIT_FILE
from edge.audit_hooks import AuditedOutbox, OutboxAudit
from edge.biometrics.types import FingerTemplate
from edge.config import EdgeConfig
from edge.link.client import EdgeLink
from edge.link.errors import LinkError, LinkUnavailableError, RpcRejectedError
from edge.link.settings import LinkSettings
from edge.queue import Outbox
from edge.queue.backoff import Backoff
from edge.station.bundle import DeviceBundle
from edge.station.errors import (
    CentralUnavailableError,
    PrerequestRefusedError,
    StampRefusedError,
    StationError,
)
from edge.station.ports import PrerequestInfo

log = logging.getLogger(__name__)

_UNREACHABLE_FR = (
    "Service central injoignable : vérifiez la connexion. Vous pouvez poursuivre hors connexion."
)


def _unavailable(exc: Exception) -> CentralUnavailableError:
    return CentralUnavailableError("central_unavailable", _UNREACHABLE_FR, why=type(exc).__name__)


class LinkCentral:
    def __init__(self, link: EdgeLink, *, bundle: DeviceBundle) -> None:
        self.link = link
        self._bundle = bundle
        self.rejections: deque[tuple[str, Rejection]] = deque(maxlen=20)
        self.acked: dict[str, str] = {}  # enrolment id -> request number, since start
        self.changed = asyncio.Condition()
        self._background: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def create(
        cls,
        config: EdgeConfig,
        bundle: DeviceBundle,
        *,
        outbox: Outbox,
        sensor_state: Callable[[], str] = lambda: "unknown",
    ) -> LinkCentral:
        settings = LinkSettings(
            device_id=config.device.id,
            host=config.link.host,
            port=config.link.port,
            ca_file=bundle.ca_cert,
            cert_file=bundle.tls_cert,
            key_file=bundle.tls_key,
            rpc_timeout_s=config.link.rpc_timeout,
            reconnect=Backoff(
                initial_s=0.2, factor=2.0, maximum_s=config.link.reconnect_max, jitter=0.5
            ),
        )
        holder: list[LinkCentral] = []
        link = EdgeLink(
            settings,
            signing_key=bundle.signing_key,
            central_key=bundle.central_signing_key,
            # Sent, acknowledged (payload deleted), refused: audited (privacy, issue 10).
            outbox=AuditedOutbox(
                outbox,
                audit=OutboxAudit(
                    config.device.state_dir / AUDIT_FILE,
                    signer=bundle.signing_key.private_key,
                ),
            ),
            on_rejection=lambda eid, rej: holder[0]._on_rejection(eid, rej),
            on_acked=lambda eid, number: holder[0]._on_acked(eid, number),
            sensor_state=sensor_state,
        )
        central = cls(link, bundle=bundle)
        holder.append(central)
        return central

    def _on_acked(self, enrolment_id: str, request_number: str) -> None:
        self.acked[enrolment_id] = request_number
        log.info("enrolment %s acknowledged by central", enrolment_id)
        self._wake()

    def _on_rejection(self, enrolment_id: str, rejection: Rejection) -> None:
        self.rejections.append((enrolment_id, rejection))
        log.warning("enrolment %s rejected by central: %s", enrolment_id, rejection.code)
        self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self.changed:
                self.changed.notify_all()

        if self._loop is not None:
            task = self._loop.create_task(notify())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def wait_outcome(self, enrolment_id: str) -> str | Rejection:
        """The request number central acknowledged, or its rejection (wrap in a timeout)."""
        async with self.changed:
            while True:
                if enrolment_id in self.acked:
                    return self.acked[enrolment_id]
                for eid, rejection in self.rejections:
                    if eid == enrolment_id and not rejection.retryable:
                        return rejection
                await self.changed.wait()

    async def wait_online(self) -> None:
        await self.link.wait_connected()

    @property
    def online(self) -> bool:
        return self.link.connected

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.link.run()

    def notify_enqueued(self) -> None:
        """Thread-safe: wake the link's drain loop after an enqueue."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.link.notify_enqueued)

    async def lookup_prerequest(self, number: str) -> PrerequestInfo:
        try:
            reply = await self.link.lookup_prerequest(number)
        except RpcRejectedError as exc:
            code = exc.rejection.code
            raise PrerequestRefusedError(code.value, exc.rejection.message_fr) from exc
        except LinkUnavailableError as exc:
            raise _unavailable(exc) from exc
        except LinkError as exc:
            raise _unavailable(exc) from exc
        return prerequest_from_reply(reply)

    async def check_stamp(self, number: str) -> None:
        try:
            reply = await self.link.check_stamp(number)
        except RpcRejectedError as exc:
            raise StampRefusedError(exc.rejection.code.value, exc.rejection.message_fr) from exc
        except LinkError as exc:
            raise _unavailable(exc) from exc
        state = str(reply.get("state", "unused"))
        if state != "unused":
            code = RejectionCode(f"stamp_{state}")
            raise StampRefusedError(code.value, Rejection(code).message_fr)

    async def lease_numbers(self, count: int) -> tuple[str, list[str], datetime | None]:
        try:
            verified = await self.link.lease_numbers(count)
        except RpcRejectedError as exc:
            raise StationError(exc.rejection.code.value, exc.rejection.message_fr) from exc
        except LinkError as exc:
            raise _unavailable(exc) from exc
        lease = verified.lease
        return lease.lease_id, list(lease.numbers()), lease.expires_at

    async def handover_templates(self, request_number: str) -> list[FingerTemplate]:
        if self._bundle.handover_key is None:
            raise StationError(
                "handover_unavailable",
                "La vérification d'identité à la remise n'est pas disponible sur ce poste.",
            )
        from dr_contracts.handover import HandoverError, open_handover
        from edge.biometrics.iso19794 import decode_template

        try:
            sealed = await self.link.handover_templates(request_number)
        except RpcRejectedError as exc:
            raise StationError(exc.rejection.code.value, exc.rejection.message_fr) from exc
        except LinkError as exc:
            raise _unavailable(exc) from exc
        try:
            opened = open_handover(
                sealed,
                device_key=self._bundle.handover_key,
                device_id=self._bundle.device_id,
                request_number=request_number,
            )
        except HandoverError as exc:
            raise StationError(
                "handover_sealed_invalid", "Données de vérification illisibles : refusées."
            ) from exc
        templates: list[FingerTemplate] = []
        for item in opened:
            templates.extend(decode_template(item.template).views)
        return templates

    async def record_handover(self, request_number: str, *, agent_id: str) -> None:
        try:
            await self.link.record_handover(request_number)
        except RpcRejectedError as exc:
            raise StationError(exc.rejection.code.value, exc.rejection.message_fr) from exc
        except LinkError as exc:
            raise _unavailable(exc) from exc


def prerequest_from_reply(reply: Mapping[str, Any]) -> PrerequestInfo:
    """The station's view of central's pre-request answer (``PreRequest.to_dict()``)."""
    form = reply.get("form", reply)
    try:
        return PrerequestInfo(
            number=str(reply["number"]),
            surname=str(form["surname"]),
            given_names=str(form.get("given_names", "")),
            birth_date=date.fromisoformat(str(form["birth_date"])),
            reason=str(form["reason"]),
            status=str(reply.get("status", "validated")),
            sex=str(form.get("sex", "")),
            birth_place=str(form.get("birth_place", "")),
            verified_online=True,
        )
    except (KeyError, ValueError) as exc:
        raise StationError(
            "central_reply_invalid", "Réponse du service central illisible : réessayez."
        ) from exc
