"""``dr-edge run``: the DR device daemon.

One asyncio process, one :class:`asyncio.TaskGroup`: the MQTT link (store-and-forward drain,
RPC, telemetry), the QR scanner reader, the request-number lease keeper and the agent console
(aiohttp on the loopback interface). The fingerprint sensor is driven on demand by the
workflow. At start the workflow resumes interrupted sessions (:meth:`Station.resume`); on
SIGTERM or SIGINT every task is cancelled, the console stops accepting requests, the files are
closed, and the process exits 0.

The console's actual address is written to ``<state dir>/console.url`` once it listens (useful
with ``console.port = 0``), and removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from dr_contracts.audit import AuditLog
from edge.audit_hooks import device_audit_signer
from edge.config import EdgeConfig
from edge.console.app import create_app
from edge.sdnotify import SystemdNotifier, feed_watchdog, watchdog_interval
from edge.station.agents import AgentDirectory
from edge.station.bundle import DeviceBundle, load_bundle
from edge.station.errors import CentralUnavailableError, StationError
from edge.station.ports import CentralPort, EnrolmentSink, ScannerPort, SensorPort
from edge.station.store import StationStore
from edge.station.vault import Vault
from edge.station.workflow import Station

log = logging.getLogger(__name__)

LEASE_CHECK_INTERVAL = 30.0  # seconds between two checks of the request-number pool
RECEIPT_PURGE_INTERVAL = 24 * 3600.0  # seconds between two purges of the outbox's old receipts
# How long READY=1 waits for the first connection to central. The station works offline, so
# after this it reports ready anyway (link offline) rather than let systemd's TimeoutStartSec
# (60 s in dr-edge.service) kill a device whose network is down.
LINK_READY_GRACE = 15.0
SENSOR_FR = {"ready": "prêt", "absent": "non connecté", "error": "en erreur"}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LocalParts:
    """The daemon's local files, opened (no network, no device)."""

    store: StationStore
    audit: AuditLog
    agents: AgentDirectory

    def close(self) -> None:
        self.store.close()
        self.audit.close()


def open_local(config: EdgeConfig, *, clock: Callable[[], datetime] = utc_now) -> LocalParts:
    """Opens (creating on first use) the state directory's station database and audit log."""
    state_dir = config.device.state_dir
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    vault = Vault.load_or_create(state_dir / "state.key")
    store = StationStore(config.station_db, vault=vault)
    # Head signed with the device key (privacy): a cut-off tail is detected by verification.
    audit = AuditLog(state_dir / "audit.sqlite3", signer=device_audit_signer(config))
    policy = config.policy
    agents = AgentDirectory(
        store,
        audit,
        lockout_failures=policy.lockout_failures,
        lockout=timedelta(minutes=policy.lockout_minutes),
        token_lifetime=timedelta(hours=policy.agent_session_hours),
        clock=clock,
    )
    return LocalParts(store, audit, agents)


class OfflineCentral:
    """The central port when the link is disabled: every call is "unreachable"."""

    online = False

    def _down(self) -> CentralUnavailableError:
        return CentralUnavailableError(
            "central_unavailable",
            "Service central injoignable : le poste fonctionne hors connexion.",
        )

    async def lookup_prerequest(self, number: str) -> Any:
        raise self._down()

    async def check_stamp(self, number: str) -> None:
        raise self._down()

    async def lease_numbers(self, count: int) -> Any:
        raise self._down()

    async def handover_templates(self, request_number: str) -> Any:
        raise self._down()

    async def record_handover(self, request_number: str, *, agent_id: str) -> None:
        raise self._down()


def status_snapshot(station: Station, *, scanner_state: Callable[[], str]) -> dict[str, Any]:
    queue = station.sink.status()
    sensor_state = station.sensor.state if station.sensor is not None else "absent"
    return {
        "device_id": station.device_id,
        "mairie": station.mairie,
        "link": {"online": station.central.online},
        "queue": {
            "depth": queue.depth,
            "oldest_pending_age_s": queue.oldest_pending_age,
            "alert": queue.alert,
        },
        "sensor": sensor_state,
        "sensor_fr": SENSOR_FR.get(sensor_state, sensor_state),
        "scanner": scanner_state(),
        "numbers_free": station.free_numbers(),
        "rejections": [
            {"enrolment_id": eid, "code": str(rej.code), "message": rej.message_fr}
            for eid, rej in getattr(station.central, "rejections", ())
            if not rej.retryable  # central's own transient failures are retried, not shown
        ],
    }


async def _lease_keeper(station: Station) -> None:
    """Keeps a stock of leased request numbers whenever central is reachable."""
    while True:
        wait_online = getattr(station.central, "wait_online", None)
        if wait_online is not None:
            await wait_online()
        if station.central.online:
            try:
                added = await station.top_up_numbers()
            except StationError as exc:
                log.warning("number lease failed: %s", exc.code)
            else:
                if added:
                    log.info("leased %d request numbers", added)
        await asyncio.sleep(LEASE_CHECK_INTERVAL)


async def _announce_link(station: Station, notifier: SystemdNotifier, url: str) -> None:
    """Tells systemd (``systemctl status``) once the link to central is first up."""
    wait_online = getattr(station.central, "wait_online", None)
    if wait_online is None:
        return
    await wait_online()
    notifier.status(f"console {url}; link online")


class _SyncPurge:
    """``purge_expired_receipts()`` of an audited outbox, as :func:`_purge_receipts_daily`
    calls it (in a worker thread)."""

    def __init__(self, outbox: Any) -> None:
        self._outbox = outbox

    def purge_expired_receipts(self) -> int:
        count: int = self._outbox.purge_expired_receipts_sync()
        return count


async def _purge_receipts_daily(outbox: Any) -> None:
    """Deletes the outbox's expired receipts (and truncates its WAL) once a day."""
    while True:
        await asyncio.sleep(RECEIPT_PURGE_INTERVAL)
        try:
            purged = await asyncio.to_thread(outbox.purge_expired_receipts)
        except OSError as exc:  # OutboxStorageError included: try again tomorrow
            log.warning("receipt purge failed: %s", exc)
        else:
            log.info("purged %d expired receipts", purged)


async def _link_first_up(station: Station) -> bool:
    """True once the link to central is connected; False after :data:`LINK_READY_GRACE`."""
    wait_online = getattr(station.central, "wait_online", None)
    if wait_online is None:
        return False
    try:
        async with asyncio.timeout(LINK_READY_GRACE):
            await wait_online()
    except TimeoutError:
        log.warning("link to central not up after %.0f s: ready, offline", LINK_READY_GRACE)
        return False
    return True


async def _become_ready(
    station: Station, sensor: SensorPort | None, notifier: SystemdNotifier, *, url: str
) -> None:
    """Sends READY=1 once the outbox is open (done in :func:`build_wiring`), the sensor has
    been opened (or found absent: the console says so) and the link is up or its grace over;
    then tells systemd when the link comes up."""
    link_up = asyncio.create_task(_link_first_up(station))
    try:
        if sensor is not None:
            await _open_sensor(sensor)
        online = await link_up
    finally:
        link_up.cancel()  # only if the daemon stops before it ended
    notifier.ready(status=f"console {url}")
    log.info("ready: link %s", "online" if online else "offline")
    await _announce_link(station, notifier, url)


async def _open_sensor(sensor: SensorPort) -> None:
    """Opens the sensor at start so the console shows its state; a capture retries anyway."""
    opener = getattr(sensor, "open", None)
    if opener is None:
        return
    try:
        await opener()
    except StationError as exc:
        log.warning("fingerprint sensor not available at start: %s", exc.code)


@dataclass(frozen=True)
class Running:
    url: str
    station: Station


@dataclass
class Wiring:
    """What :func:`serve` runs: the central port (with its own task, if any) and the devices."""

    central: CentralPort
    central_task: Callable[[], Any] | None
    sensor: SensorPort | None
    scanner: ScannerPort | None
    scanner_task: Callable[[], Any] | None
    sink: EnrolmentSink
    qr_keys: list[Any]
    close: Callable[[], Any]
    housekeeping_task: Callable[[], Any] | None = None


async def serve(
    config: EdgeConfig,
    wiring: Wiring,
    *,
    stop: asyncio.Event,
    clock: Callable[[], datetime] = utc_now,
    on_ready: Callable[[Running], None] | None = None,
) -> None:
    """Runs the workflow and the console until ``stop`` is set.

    ``on_ready`` gets the console URL and the workflow once the console listens (tests wait
    on it, and on the workflow's ``changed`` condition).
    """
    local = open_local(config, clock=clock)
    url_file = config.device.state_dir / "console.url"
    notifier = SystemdNotifier()
    try:
        station = Station(
            device_id=config.device.id,
            mairie=config.device.mairie,
            mairie_address=config.device.mairie_address,
            store=local.store,
            audit=local.audit,
            central=wiring.central,
            sensor=wiring.sensor,
            scanner=wiring.scanner,
            biometrics=_biometrics(),
            sink=wiring.sink,
            receipts_dir=config.receipts_dir,
            policy=config.policy,
            qr_keys=wiring.qr_keys,
            clock=clock,
            capture_timeout=config.sensor.capture_timeout,
        )
        outcome = await station.resume()
        log.info("sessions at start: %s", outcome)
        scanner_state = getattr(wiring.scanner, "state", None)
        app = create_app(
            station,
            local.agents,
            status=lambda: status_snapshot(
                station,
                scanner_state=lambda: (
                    str(getattr(wiring.scanner, "state", "absent"))
                    if scanner_state is not None
                    else "absent"
                ),
            ),
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.console.host, config.console.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"  # noqa: S104
            tmp = url_file.with_suffix(".tmp")
            tmp.write_text(url + "\n")
            tmp.replace(url_file)  # readers never see a half-written file
            log.info("agent console on %s", url)
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(_lease_keeper(station))]
                if wiring.central_task is not None:
                    tasks.append(tg.create_task(wiring.central_task()))
                if wiring.scanner_task is not None:
                    tasks.append(tg.create_task(wiring.scanner_task()))
                if wiring.housekeeping_task is not None:
                    tasks.append(tg.create_task(wiring.housekeeping_task()))
                interval = watchdog_interval()
                if interval is not None:
                    # Fed from the start: opening the sensor and the link can take a while.
                    tasks.append(tg.create_task(feed_watchdog(notifier, interval=interval)))
                tasks.append(
                    tg.create_task(_become_ready(station, wiring.sensor, notifier, url=url))
                )
                if on_ready is not None:
                    on_ready(Running(url, station))
                await stop.wait()
                notifier.stopping()
                for task in tasks:
                    task.cancel()
        finally:
            with contextlib.suppress(FileNotFoundError):
                url_file.unlink()
            await runner.cleanup()
    finally:
        await _maybe_await(wiring.close())
        local.close()
        notifier.close()


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value


def _biometrics() -> Any:
    from edge.station.adapters import CoreBiometrics

    return CoreBiometrics()


def build_wiring(config: EdgeConfig, bundle: DeviceBundle) -> Wiring:
    """The real parts: outbox + sealing, MQTT link, sensor and scanner drivers."""
    from edge.drivers.scanner import QrScanner, ScannerConfig
    from edge.drivers.sensor import FingerprintSensor
    from edge.drivers.sensor_config import SensorConfig
    from edge.queue import Outbox, OutboxLimits
    from edge.station.adapters import DriverScanner, DriverSensor, OutboxSink

    outbox = Outbox(config.outbox_db, limits=OutboxLimits(ack_timeout_s=config.link.ack_timeout))
    sensor = None
    if config.sensor.port:
        sensor = DriverSensor(
            FingerprintSensor(SensorConfig(port=config.sensor.port, baudrate=config.sensor.baud))
        )
    central: CentralPort = OfflineCentral()
    central_task = None
    on_enqueued = None
    if config.link.enabled:
        from edge.station.link_adapter import LinkCentral

        link_central = LinkCentral.create(
            config,
            bundle,
            outbox=outbox,
            sensor_state=lambda: sensor.state if sensor is not None else "absent",
        )
        central, central_task = link_central, link_central.run
        on_enqueued = link_central.notify_enqueued
    sink = OutboxSink(
        outbox, recipient=bundle.recipient, signer=bundle.signing_key, on_enqueued=on_enqueued
    )
    scanner = None
    if config.scanner.port:
        scanner = DriverScanner(
            QrScanner(ScannerConfig(port=config.scanner.port, baudrate=config.scanner.baud))
        )

    async def close() -> None:
        if sensor is not None:
            await sensor.close()
        outbox.close()

    async def housekeeping() -> None:
        from edge.audit_hooks import AuditedOutbox, OutboxAudit

        # Receipt purges are audited (privacy): purge_expired_receipts_sync does it.
        audit = OutboxAudit(
            config.device.state_dir / "audit.sqlite3", signer=bundle.signing_key.private_key
        )
        audited = AuditedOutbox(outbox, audit=audit)
        await _purge_receipts_daily(_SyncPurge(audited))

    return Wiring(
        central=central,
        central_task=central_task,
        sensor=sensor,
        scanner=scanner,
        scanner_task=None if scanner is None else scanner.run,
        sink=sink,
        qr_keys=[bundle.central_signing_key],
        close=close,
        housekeeping_task=housekeeping,
    )


async def run(config: EdgeConfig) -> int:
    """The daemon's main coroutine (signals end it)."""
    if config.device.bundle_dir is None:
        raise StationError("no_bundle", "device.bundle_dir is not set: provision the device first")
    bundle = load_bundle(config.device.bundle_dir, device_id=config.device.id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    wiring = build_wiring(config, bundle)
    log.info("dr-edge %s starting (pid %d)", config.device.id, os.getpid())
    await serve(config, wiring, stop=stop)
    log.info("dr-edge stopped")
    return 0


def console_url(config: EdgeConfig) -> str:
    """The running daemon's console URL (from its state directory, else from the config)."""
    path: Path = config.device.state_dir / "console.url"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return f"http://{config.console.host}:{config.console.port}"
