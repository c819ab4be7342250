"""The whole edge over real parts, in the test's event loop.

``world`` runs: mosquitto (``broker`` fixture, TLS + client certificates), central's service
(SQLite) and its MQTT side, a device provisioned by central (bundle on disk), the sensor and
QR scanner simulators behind real ptys, and the DR daemon's ``serve`` (console on a free
loopback port, link, outbox, workflow). The test drives it as an agent does, through the
console's JSON API (:class:`ConsoleClient`, run in a thread so the loop keeps serving).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from dr_sim.finger_factory import LibraryFingers
from dr_sim.scanner_sim import ScannerSimulator
from dr_sim.sensor_model import PlacedFinger
from dr_sim.sensor_sim import SensorSimulator

from central.keyring import CentralKeyring
from central.models import PreRequest
from central.mqtt.server import CentralLink
from central.mqtt.settings import CentralLinkSettings
from central.provisioning import provision_device
from central.service import CentralService
from edge.biometrics.types import FingerPosition as P
from edge.config import (
    ConsoleSection,
    DeviceSection,
    EdgeConfig,
    LinkSection,
    PolicySection,
    ScannerSection,
    SensorSection,
)
from edge.console.client import ConsoleClient, ConsoleError
from edge.daemon import Running, Wiring, build_wiring, serve
from edge.station.bundle import load_bundle
from edge.station.link_adapter import LinkCentral
from edge.station.workflow import Station
from tests.fixtures.broker import RunningBroker, TestPki
from tests.fixtures.central import ManualClock, sample_form
from tests.fixtures.sim import SimHandle

DEVICE_ID = "dr-91228-01"
AGENT = "agent.test"
PASSWORD = "mot de passe de test"
# Refusals of a capture after which the agent simply captures again.
RETRY_CODES = frozenset(
    {
        "sensor_error",
        "no_fingerprint",
        "scan_no_finger",
        "scan_image_fail",
        "scan_messy_image",
        "scan_too_few_features",
    }
)
WAIT_S = 60.0  # bound on any wait: exceeding it is a failure, never a timing assertion


@dataclass
class Daemon:
    task: asyncio.Task[None]
    stop: asyncio.Event
    url: str
    station: Station

    async def shutdown(self) -> None:
        self.stop.set()
        async with asyncio.timeout(WAIT_S):
            await self.task


@dataclass
class StationWorld:
    broker: RunningBroker
    service: CentralService
    clock: ManualClock
    sensor: SimHandle[SensorSimulator]
    scanner: SimHandle[ScannerSimulator]
    config: EdgeConfig
    directory: Path
    daemon: Daemon | None = None
    wiring: Wiring | None = None
    client: ConsoleClient | None = None
    central_task: asyncio.Task[None] | None = None
    central_link: CentralLink | None = None
    started: list[asyncio.Task[Any]] = field(default_factory=list)

    # -- processes --------------------------------------------------------------------------
    async def start_daemon(self, *, online: bool = True) -> Daemon:
        bundle = load_bundle(self.config.device.bundle_dir or Path(), device_id=DEVICE_ID)
        wiring = build_wiring(self.config, bundle)
        self.wiring = wiring
        stop = asyncio.Event()
        ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(self.config, wiring, stop=stop, on_ready=ready.set_result))
        async with asyncio.timeout(WAIT_S):
            waiters: list[asyncio.Future[Any]] = [task, ready]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what stopped the daemon
        running = ready.result()
        self.daemon = Daemon(task, stop, running.url, running.station)
        self.client = ConsoleClient(self.daemon.url)
        await self.call("sign_in", AGENT, PASSWORD)
        if online:
            assert isinstance(wiring.central, LinkCentral)
            async with asyncio.timeout(WAIT_S):
                await wiring.central.wait_online()
        return self.daemon

    async def stop_daemon(self) -> None:
        assert self.daemon is not None
        await self.daemon.shutdown()
        self.daemon = None

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A console API call, in a thread (the daemon serves on this loop)."""
        assert self.client is not None
        fn: Callable[..., Any] = getattr(self.client, method)
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- central's data ---------------------------------------------------------------------
    def prerequest(self, **form: Any) -> PreRequest:
        return self.service.create_prerequest(sample_form(**form))

    def qr(self, number: str) -> str:
        return self.service.prerequest_qr(number)

    # -- agent helpers -------------------------------------------------------------------
    async def place(self, identity: int) -> None:
        await self.sensor.control.place_synthetic(identity)

    async def capture(self, sid: str) -> dict[str, Any]:
        """One capture as an agent does it: a retry-worthy refusal (the device was slow, the
        image unusable) is shown to the agent, who presses "capture" again."""
        for _ in range(3):
            try:
                view: dict[str, Any] = await self.call("capture", sid)
            except ConsoleError as exc:
                if exc.code not in RETRY_CODES:
                    raise
                last = exc
                continue
            return view
        raise last

    async def capture_until(self, sid: str, fingers: dict[P, int] | None = None) -> dict[str, Any]:
        """Capture until step 4 is over; ``fingers`` maps ISO position -> synthetic identity."""
        chosen = FINGERS if fingers is None else fingers
        view: dict[str, Any] = await self.call("session", sid)
        for _ in range(20):
            if view["step"] != "fingers":
                return view
            position = view["fingers"]["current"]["position"]
            await self.place(chosen[P(position)])
            view = await self.capture(sid)
        raise AssertionError(f"step 4 not over after 12 captures: {view['fingers']}")

    async def outcome(self, view: dict[str, Any]) -> Any:
        """Central's acknowledgement (request number) or rejection of a confirmed session."""
        assert self.wiring is not None
        link = self.wiring.central
        assert isinstance(link, LinkCentral)
        enrolment_id = self.daemon_session_enrolment(view)
        async with asyncio.timeout(WAIT_S):
            return await link.wait_outcome(enrolment_id)

    def daemon_session_enrolment(self, view: dict[str, Any]) -> str:
        from edge.daemon import open_local

        local = open_local(self.config)
        try:
            receipt = local.store.receipt(view["request_number"])
        finally:
            local.close()
        assert receipt is not None
        return receipt["enrolment_id"]


class CarefulFingers(LibraryFingers):
    """Synthetic fingers placed with care (small shift, rotation and distortion): the matcher
    then finds two captures of one finger consistent within the three attempts."""

    def synthetic(self, identity: int) -> PlacedFinger:
        from dr_sim.fingers import SyntheticFinger
        from dr_sim.fingers.impression import ImpressionSettings

        settings = ImpressionSettings(
            max_shift=6.0, max_rotation=4.0, distortion=0.3, dryness=(0.0, 0.2)
        )
        return PlacedFinger(SyntheticFinger(identity, settings=settings), f"careful:{identity}")


# A distinct synthetic finger for every position the fallback may reach.
FINGERS = {
    P.RIGHT_INDEX: 103,
    P.LEFT_INDEX: 102,
    P.RIGHT_MIDDLE: 104,
    P.LEFT_MIDDLE: 106,
    P.RIGHT_RING: 107,
    P.LEFT_RING: 108,
}


@pytest.fixture
async def sensor(make_sensor_sim: Any) -> AsyncIterator[SimHandle[SensorSimulator]]:
    async with make_sensor_sim(fingers=CarefulFingers(), seed=1) as sim:
        yield sim


@pytest.fixture
async def world(
    broker: RunningBroker,
    pki: TestPki,
    tmp_path: Path,
    sensor: SimHandle[SensorSimulator],
    scanner_sim: SimHandle[ScannerSimulator],
) -> AsyncIterator[StationWorld]:
    sensor_sim = sensor
    key_dir = tmp_path / "central-keys"
    CentralKeyring.create(key_dir)
    clock = ManualClock()
    service = CentralService.open(
        database=f"sqlite:///{tmp_path / 'central.db'}", key_dir=key_dir, clock=clock
    )
    bundle_dir = tmp_path / "device"
    provision_device(
        service,
        pki.ca,
        service.keys,
        device_id=DEVICE_ID,
        commune_name="Évry-Courcouronnes",
        out_dir=bundle_dir,
    )
    files = broker.client_files("central")
    central_link = CentralLink(
        CentralLinkSettings(
            host=broker.host,
            port=broker.port,
            ca_file=broker.ca_file,
            cert_file=files.cert,
            key_file=files.key,
            reconnect_initial_s=0.05,
            reconnect_max_s=0.5,
        ),
        backend=service,
        signing_key=service.keys.signing,
    )
    central_task = asyncio.create_task(central_link.run())
    config = EdgeConfig(
        device=DeviceSection(
            id=DEVICE_ID,
            mairie="Mairie d'Évry-Courcouronnes",
            state_dir=tmp_path / "edge",
            bundle_dir=bundle_dir,
        ),
        sensor=SensorSection(port=sensor_sim.port, capture_timeout=10.0),
        scanner=ScannerSection(port=scanner_sim.port),
        console=ConsoleSection(port=0),
        # Generous RPC timeout: the whole suite runs on 2 busy cores.
        link=LinkSection(
            host=broker.host,
            port=broker.port,
            reconnect_max=0.5,
            ack_timeout=3.0,
            rpc_timeout=15.0,
        ),
        policy=PolicySection(lease_count=5, lease_low_water=2),
    )
    from edge.daemon import open_local

    local = open_local(config)
    local.agents.provision(AGENT, name="Agent de test", password=PASSWORD)
    local.close()
    w = StationWorld(
        broker,
        service,
        clock,
        sensor_sim,
        scanner_sim,
        config,
        tmp_path,
        central_task=central_task,
        central_link=central_link,
    )
    try:
        yield w
    finally:
        if w.daemon is not None:
            await w.daemon.shutdown()
        central_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await central_task
        service.close()


def child_birth_date() -> date:
    today = datetime.now(UTC).date()
    return date(today.year - 8, 1, 15)


__all__ = ["AGENT", "DEVICE_ID", "PASSWORD", "StationWorld", "child_birth_date"]
