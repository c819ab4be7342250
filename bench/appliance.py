"""Appliance: ``dr-edge run`` cold start to READY=1, and its memory at idle and in a capture.

    python -m bench appliance [--runs=5]

Everything real, on loopback, in this run: mosquitto (TLS, client certificates) from
central.broker, central's service with its MQTT side, a device provisioned by central, the
sensor and QR scanner simulators behind ptys. The daemon is the real process (``python -m
edge.cli run``) with a fake systemd notify socket:

- **Cold start to READY**: from the spawn to the ``READY=1`` datagram, which the daemon sends
  once the sensor is open, the outbox open and the link to central connected. Median of
  ``--runs`` starts (each one a fresh process; the page cache is warm after the first).
- **Baseline**: ``python -c pass`` with the same interpreter, from spawn to exit; and, to
  show where a start goes, a process that only imports the daemon's modules.
- **RSS**: ``VmRSS`` after READY with the daemon idle, then ``VmHWM`` (peak RSS) after one
  whole fingerprint capture through the console API (image upload from the simulated sensor,
  quality, minutiae, ISO template).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from dr_sim.control import ControlClient
from dr_sim.scanner_sim import ScannerSimulator
from dr_sim.sensor_sim import SensorSimulator
from dr_sim.serial_device import running

from central.broker import MosquittoBroker
from central.keyring import CentralKeyring
from central.mqtt.server import CentralLink
from central.mqtt.settings import CentralLinkSettings
from central.pki import CertificateAuthority
from central.provisioning import provision_device
from central.service import CentralService
from edge.console.client import ConsoleClient
from tests.fixtures.central import sample_form
from tests.station.conftest import FINGERS, CarefulFingers

DEVICE = "dr-91228-01"
AGENT = "agent.bench"
PASSWORD = "mot de passe du banc"
READY_GOAL_S = 2.0
RSS_GOAL_MB = 150.0
WAIT_S = 60.0


def _proc_status(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` memory field, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


# What the daemon imports before it can do anything: the import-only floor of a cold start.
DAEMON_IMPORTS = (
    "import edge.cli, edge.daemon, edge.station.adapters, edge.station.link_adapter,"
    " edge.drivers.sensor, edge.drivers.scanner; edge.cli.build_parser()"
)


async def _baseline(runs: int, code: str = "pass") -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
        await proc.wait()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@asynccontextmanager
async def _world(directory: Path) -> AsyncIterator[tuple[Path, CentralService, ControlClient]]:
    """Broker, central (service + MQTT side), simulators, a provisioned device and its config."""
    ca = CertificateAuthority.load_or_create(directory / "ca")
    key_dir = directory / "central-keys"
    CentralKeyring.create(key_dir)
    service = CentralService.open(database=f"sqlite://{directory / 'central.db'}", key_dir=key_dir)
    bundle_dir = directory / "device"
    provision_device(
        service, ca, service.keys, device_id=DEVICE, commune_name="Évry", out_dir=bundle_dir
    )
    files = ca.issue_client("central").write(directory / "certs", name="central")
    sensor = SensorSimulator(
        link=directory / "sensor",
        control=directory / "sensor.ctl",
        fingers=CarefulFingers(),
        seed=1,
    )
    scanner = ScannerSimulator(link=directory / "scanner", control=directory / "scanner.ctl")
    with MosquittoBroker(directory / "broker", ca=ca) as broker:
        link = CentralLink(
            CentralLinkSettings(
                host=broker.host,
                port=broker.port,
                ca_file=broker.ca_file,
                cert_file=files.cert,
                key_file=files.key,
            ),
            backend=service,
            signing_key=service.keys.signing,
        )
        async with asyncio.TaskGroup() as tg, running(sensor), running(scanner):
            task = tg.create_task(link.run())
            assert sensor.control_path is not None
            control = await ControlClient.connect(sensor.control_path)
            state_dir = directory / "edge"
            config = directory / "dr-edge.toml"
            config.write_text(
                f'[device]\nid = "{DEVICE}"\nstate_dir = "{state_dir}"\n'
                f'bundle_dir = "{bundle_dir}"\n'
                f'[sensor]\nport = "{sensor.link}"\n[scanner]\nport = "{scanner.link}"\n'
                f'[console]\nport = 0\n[link]\nhost = "{broker.host}"\nport = {broker.port}\n'
                "reconnect_max = 0.5\n"
            )
            from edge.config import load_config
            from edge.daemon import open_local

            local = open_local(load_config(config))
            local.agents.provision(AGENT, name="Banc", password=PASSWORD)
            local.close()
            try:
                yield config, service, control
            finally:
                await control.close()
                task.cancel()
    service.close()


async def _start(config: Path, directory: Path) -> tuple[asyncio.subprocess.Process, str, float]:
    """Spawn the daemon; return it, its console URL and the time to READY=1."""
    path = directory / f"notify-{os.urandom(4).hex()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "10000000"}
    env.pop("JOURNAL_STREAM", None)
    loop = asyncio.get_running_loop()
    try:
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge.cli",
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=(directory / "dr-edge.log").open("ab"),
            env=env,
        )
        async with asyncio.timeout(WAIT_S):
            while True:
                data = (await loop.sock_recv(sock, 4096)).decode()
                fields = dict(line.split("=", 1) for line in data.splitlines())
                if fields.get("READY") == "1":
                    elapsed = time.perf_counter() - start
                    return proc, fields["STATUS"].removeprefix("console "), elapsed
    finally:
        sock.close()
        path.unlink(missing_ok=True)


async def _stop(proc: asyncio.subprocess.Process, log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(WAIT_S):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        tail = "\n".join((await asyncio.to_thread(log.read_text)).splitlines()[-20:])
        raise SystemExit(
            f"dr-edge did not stop within {WAIT_S:.0f} s of SIGTERM:\n{tail}"
        ) from None


async def _capture_once(url: str, service: CentralService, control: ControlClient) -> None:
    client = ConsoleClient(url)
    await asyncio.to_thread(client.sign_in, AGENT, PASSWORD)
    pre = service.create_prerequest(sample_form())
    sid = (await asyncio.to_thread(client.start))["id"]
    await asyncio.to_thread(client.recall, sid, number=pre.number)
    view = await asyncio.to_thread(client.documents, sid, checked=["photo", "proof_of_address"])
    position = view["fingers"]["current"]["position"]
    from edge.biometrics.types import FingerPosition

    await control.place_synthetic(FINGERS[FingerPosition(position)])
    await asyncio.to_thread(client.capture, sid)
    await asyncio.to_thread(client.abort, sid)


async def _run(directory: Path, *, runs: int) -> dict[str, float]:
    baseline = await _baseline(runs)
    imports = await _baseline(runs, DAEMON_IMPORTS)
    async with _world(directory) as (config, service, control):
        ready: list[float] = []
        for _ in range(runs):
            proc, _, elapsed = await _start(config, directory)
            ready.append(elapsed)
            await _stop(proc, directory / "dr-edge.log")
        proc, url, _ = await _start(config, directory)
        try:
            await asyncio.sleep(1.0)  # a bench, not a test: let the start-up work settle
            idle = _proc_status(proc.pid, "VmRSS")
            await _capture_once(url, service, control)
            peak = _proc_status(proc.pid, "VmHWM")
            after = _proc_status(proc.pid, "VmRSS")
        finally:
            await _stop(proc, directory / "dr-edge.log")
    return {
        "baseline": baseline,
        "imports": imports,
        "ready_median": statistics.median(ready),
        "ready_max": max(ready),
        "idle": idle,
        "peak": peak,
        "after": after,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench appliance")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-appliance-") as tmp:
        r = asyncio.run(_run(Path(tmp), runs=args.runs))
    load = os.getloadavg()[0]
    print(f"Load average at the end of the run: {load:.1f} (shared 2-core machine).\n")
    print("| figure | measured | baseline (same run) | ratio | goal |")
    print("|---|---|---|---|---|")
    print(
        f"| `dr-edge run` spawn to READY=1, median of {args.runs} | {r['ready_median']:.2f} s "
        f"(max {r['ready_max']:.2f} s) | `python -c pass`: {r['baseline'] * 1000:.0f} ms | "
        f"{r['ready_median'] / r['baseline']:.0f}x | <= {READY_GOAL_S:.0f} s |"
    )
    print(
        f"| of which: importing the daemon's modules, median of {args.runs} | "
        f"{r['imports']:.2f} s | `python -c pass`: {r['baseline'] * 1000:.0f} ms | "
        f"{r['imports'] / r['baseline']:.0f}x | - |"
    )
    print(f"| RSS at idle (after READY) | {r['idle']:.0f} MB | - | - | <= {RSS_GOAL_MB:.0f} MB |")
    print(
        f"| peak RSS (VmHWM) after one capture | {r['peak']:.0f} MB (RSS after: "
        f"{r['after']:.0f} MB) | idle RSS {r['idle']:.0f} MB | {r['peak'] / r['idle']:.2f}x | "
        f"<= {RSS_GOAL_MB:.0f} MB |"
    )
