"""Bindings of the workflow's ports to the real parts: sensor and scanner drivers, the
biometric core, and the sealed outbox. (The MQTT link binding is in ``link_adapter.py``.)

Each adapter turns the other area's exceptions into the station's (French messages for the
agent) and nothing else: no policy here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
from collections.abc import Callable
from datetime import UTC

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from dr_contracts.enrolment import (
    DocumentKind,
    EnrolmentRecord,
    FingerException,
    FingerQuality,
    FingerRecord,
    RequestReason,
)
from dr_contracts.envelope import seal_record
from dr_contracts.keys import CentralRecipientKey, SigningKey
from edge.biometrics.types import FingerPosition, FingerTemplate
from edge.drivers.errors import DeviceError, ScanRetry
from edge.drivers.scanner import QrScanner
from edge.drivers.sensor import FingerprintSensor
from edge.queue import (
    BacklogFull,
    DuplicateEnrolmentError,
    Outbox,
    OutboxMeta,
    OutboxStorageError,
)
from edge.station.errors import CaptureProblemError, DeviceUnavailableError, QueueFullError
from edge.station.ports import Analysis, EnrolmentDraft, QueueStatus

log = logging.getLogger(__name__)

SENSOR_DPI = 508.0  # R30x modules: 256 x 288 pixels at 508 dpi


class DriverSensor:
    """:class:`~edge.station.ports.SensorPort` over the R30x driver (opened on first use)."""

    def __init__(self, sensor: FingerprintSensor) -> None:
        self._sensor = sensor
        self._opened = False
        self._lock = asyncio.Lock()
        self.state = "absent"

    async def open(self) -> None:
        async with self._lock:
            await self._open()

    async def _open(self) -> None:
        if not self._opened:
            try:
                await self._sensor.open()
            except DeviceError as exc:
                self.state = "absent"
                raise DeviceUnavailableError(
                    "sensor_unavailable",
                    "Capteur d'empreintes injoignable : vérifiez son câble.",
                ) from exc
            self._opened = True
            self.state = "ready"

    async def close(self) -> None:
        async with self._lock:
            if self._opened:
                self._opened = False
                await self._sensor.close()
            self.state = "absent"

    async def capture(self, *, finger_wait: float) -> NDArray[np.uint8]:
        async with self._lock:
            await self._open()
            try:
                image = await self._sensor.capture(finger_timeout=finger_wait)
            except ScanRetry as exc:
                self.state = "ready"
                raise CaptureProblemError(
                    f"scan_{exc.reason.name.lower()}", exc.advice, device=False
                ) from exc
            except DeviceError as exc:
                self.state = "error"
                raise DeviceUnavailableError(
                    "sensor_error",
                    "Le capteur d'empreintes ne répond pas correctement : débranchez-le et "
                    "rebranchez-le, puis recommencez.",
                ) from exc
            self.state = "ready"
            return image


class DriverScanner:
    """:class:`~edge.station.ports.ScannerPort`: a payload scanned while someone waits.

    :meth:`run` reads the scanner for ever (in the daemon's TaskGroup); a payload that arrives
    while nobody waits is dropped, so that an old scan never fills a later session.
    """

    def __init__(self, scanner: QrScanner) -> None:
        self._scanner = scanner
        self._waiters: list[asyncio.Future[str]] = []
        self.state = "absent"

    async def run(self) -> None:
        try:
            await self._scanner.open()
        except DeviceError:
            log.warning("QR scanner not available at start; waiting for it")
        self.state = "ready"
        try:
            async for payload in self._scanner.payloads():
                waiters, self._waiters = self._waiters, []
                delivered = False
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(payload)
                        delivered = True
                if not delivered:
                    log.info("scanner: payload with nobody waiting, dropped")
        finally:
            self.state = "absent"
            await self._scanner.close()

    async def next_payload(self, *, wait: float) -> str:
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, wait)
        except TimeoutError as exc:
            raise DeviceUnavailableError(
                "scan_timeout", "Aucun QR code lu : présentez-le de nouveau au lecteur."
            ) from exc
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)


def png_bytes(image: NDArray[np.uint8]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image, mode="L").save(out, format="PNG", optimize=True)
    return out.getvalue()


class CoreBiometrics:
    """:class:`~edge.station.ports.BiometricPort` over ``edge.biometrics``."""

    def __init__(self, *, dpi: float = SENSOR_DPI) -> None:
        self._dpi = dpi

    def analyse(self, image: NDArray[np.uint8], *, position: FingerPosition) -> Analysis:
        from edge.biometrics.errors import BiometricError
        from edge.biometrics.iso19794 import encode_iso19794_2
        from edge.biometrics.pipeline import extract
        from edge.biometrics.preview import render_preview

        try:
            extraction = extract(image, dpi=self._dpi)
        except BiometricError as exc:
            raise CaptureProblemError(
                "no_fingerprint",
                "Aucune empreinte exploitable sur l'image : posez le doigt à plat, au centre "
                "du capteur, puis recommencez.",
            ) from exc
        report = extraction.quality
        template = dataclasses.replace(
            extraction.template, position=position, quality=int(report.score)
        )
        return Analysis(
            quality=int(report.score),
            measures={k: float(v) for k, v in report.measures.items()},
            advice=tuple(str(a) for a in report.advice),
            advice_fr=tuple(report.advice_fr),
            template=template,
            iso_template=encode_iso19794_2([template]),
            image_png=png_bytes(image),
            preview_png=render_preview(image, extraction.minutiae),
        )

    def match(self, a: FingerTemplate, b: FingerTemplate) -> tuple[bool, float]:
        from edge.biometrics.matcher import MATCH_THRESHOLD, compare

        with np.errstate(over="ignore"):  # the matcher's sigmoid saturates: benign
            score = float(compare(a, b))
        return score >= MATCH_THRESHOLD, score


_EXCEPTION_CODES = {e.value: e for e in FingerException}


def build_record(draft: EnrolmentDraft) -> EnrolmentRecord:
    """The contract's enrolment record for a confirmed session."""
    fingers = [
        FingerRecord(
            position=f.position,
            template=f.iso_template,
            quality=FingerQuality(f.quality, dict(f.measures.items())),
            image_png=f.image_png,
            attempts=max(1, f.attempts),
        )
        for f in draft.fingers
    ]
    fingers += [
        FingerRecord(
            position=position, exception=_EXCEPTION_CODES[code], attempts=min(attempts, 10)
        )
        for position, code, attempts in draft.exceptions
    ]
    fingers.sort(key=lambda f: int(f.position))
    return EnrolmentRecord(
        enrolment_id=draft.enrolment_id,
        prerequest_number=draft.prerequest_number,
        device_id=draft.device_id,
        agent_id=draft.agent_id,
        started_at=draft.started_at.astimezone(UTC),
        completed_at=draft.completed_at.astimezone(UTC),
        reason=RequestReason(draft.reason),
        fingers=tuple(fingers),
        documents=frozenset(DocumentKind(d) for d in draft.documents),
        tax_stamp_number=draft.stamp_number,
        request_number=draft.request_number,
        erase_images_after_decision=draft.erase_images,
    )


class OutboxSink:
    """:class:`~edge.station.ports.EnrolmentSink`: build, seal, enqueue (sync; run in a thread)."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        recipient: CentralRecipientKey,
        signer: SigningKey,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self._recipient = recipient
        self._signer = signer
        self._on_enqueued = on_enqueued

    def submit(self, draft: EnrolmentDraft) -> None:
        try:
            self.outbox.entry(draft.enrolment_id)
        except LookupError:
            pass
        else:
            return  # already committed (a retry after a crash): idempotent
        record = build_record(draft)
        envelope = seal_record(record, recipient=self._recipient, signer=self._signer)
        meta = OutboxMeta(
            prerequest_number=draft.prerequest_number, request_number=draft.request_number
        )
        try:
            self.outbox.enqueue(draft.enrolment_id, envelope, meta=meta)
        except BacklogFull as exc:
            raise QueueFullError("backlog_full", exc.message_fr) from exc
        except OutboxStorageError as exc:
            # Rolled back: the session stays at its summary and the agent may confirm again.
            raise QueueFullError("storage_error", exc.message_fr) from exc
        except DuplicateEnrolmentError:
            return
        if self._on_enqueued is not None:
            self._on_enqueued()

    def check_admission(self) -> None:
        try:
            self.outbox.check_admission()
        except BacklogFull as exc:
            raise QueueFullError("backlog_full", exc.message_fr) from exc
        except OutboxStorageError as exc:
            raise QueueFullError("storage_error", exc.message_fr) from exc

    def status(self) -> QueueStatus:
        stats = self.outbox.stats()
        return QueueStatus(
            depth=stats.depth,
            oldest_pending_age=stats.oldest_pending_age_s,
            alert=stats.alert or stats.refusing,
        )
