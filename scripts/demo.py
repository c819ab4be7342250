"""``make demo``: one whole enrolment on this machine, through the real parts.

1. central: ``dr-central init``, provision the device ``dr-91228-01`` (bundle), create a
   pre-request (with its signed QR code), then ``dr-central serve`` (HTTP, MQTT side, and
   mosquitto started by central with TLS client certificates);
2. the simulators: ``dr-sim sensor`` and ``dr-sim scanner`` behind pseudo-terminals;
3. the DR daemon: ``dr-edge agent add``, then ``dr-edge run`` (console on a free loopback port);
4. the agent's work, scripted through the console's JSON API (what the web console and
   ``dr-edge session`` use): sign in, scan the citizen's QR code on the scanner, tick the
   documents, capture the fingers on the sensor (the simulator's control socket places a
   synthetic finger before each capture), confirm;
5. waits until central has acknowledged the enrolment, prints ``CNI request number: <number>``
   and ``Receipt: <path>``, and stops every process (SIGTERM, then waits for each).

Everything lives in ``demo-out/<run>/`` (git-ignored; ``$DR_DEMO_OUT`` overrides the parent
folder); each run uses a new folder and free ports, so running it twice in a row works.
Exit status 0 on success, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEVICE_ID = "dr-91228-01"
AGENT = "agent.demo"
PASSWORD = "demo-mot-de-passe"  # noqa: S105 - a throwaway account of the demo's own station
DEADLINE_S = 90.0
# Synthetic fingers of the demo citizen, one per finger position the workflow may ask for.
FINGERS = {2: 103, 7: 102, 3: 104, 8: 106, 4: 107, 9: 108}


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(what: str, check: Callable[[], bool], *, timeout: float = DEADLINE_S) -> None:
    """Polls ``check`` (a process's side effect we cannot be notified of) until true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def port_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


class Processes:
    """The demo's background processes; stopped in reverse order, each one waited for."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str | Path) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(  # noqa: S603 - our own programs, fixed arguments
            [str(a) for a in args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.logs,
            start_new_session=True,
        )
        log.close()
        self.running.append((name, proc))
        return proc

    def check_alive(self) -> bool:
        """True, or raises with the log's tail if a process has died."""
        for name, proc in self.running:
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with status {proc.returncode}:\n{tail}")
        return True

    def stop_all(self) -> list[str]:
        problems = []
        for name, proc in reversed(self.running):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    problems.append(f"{name} did not stop on SIGTERM (killed)")
            say(f"stopped {name} (exit status {proc.returncode})")
        self.running.clear()
        return problems


def run(*args: str | Path, cwd: Path, stdin: str | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - our own programs, fixed arguments
        [str(a) for a in args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{result.stderr}")
    return result.stdout


@contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    procs = Processes(logs)
    try:
        yield procs
    finally:
        for problem in procs.stop_all():
            say(problem)


def write_configs(run_dir: Path, *, mqtt: int, ws: int, http: int) -> tuple[Path, Path]:
    central = run_dir / "central.toml"
    central.write_text(
        "\n".join(
            [
                "[central]",
                'data_dir = "central"',
                "[http]",
                f"port = {http}",
                "[mqtt]",
                'host = "127.0.0.1"',
                f"port = {mqtt}",
                "run_broker = true",
                f"websockets_port = {ws}",
                "",
            ]
        )
    )
    edge = run_dir / "dr-edge.toml"
    edge.write_text(
        "\n".join(
            [
                "[device]",
                f'id = "{DEVICE_ID}"',
                'mairie = "Mairie d\'Évry-Courcouronnes"',
                'mairie_address = "Place des Droits-de-l\'Homme-et-du-Citoyen, 91000 Évry"',
                'state_dir = "edge"',
                'bundle_dir = "device"',
                "[sensor]",
                'port = "sensor.pty"',
                "[scanner]",
                'port = "scanner.pty"',
                "[console]",
                "port = 0",
                "[link]",
                'host = "127.0.0.1"',
                f"port = {mqtt}",
                "reconnect_max = 2.0",
                "",
            ]
        )
    )
    return central, edge


def enrol(client: Any, *, qr: str, scanner_ctl: Path, sensor_ctl: Path) -> dict[str, Any]:
    """The agent's work, step by step, through the console's JSON API."""
    from dr_sim.control import control_command

    session = client.start()
    sid = session["id"]
    say(f"session {sid[:8]} started; the citizen presents the pre-request QR code")
    result: dict[str, Any] = {}

    def recall() -> None:
        try:
            result["view"] = client.recall(sid, from_scanner=True, timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            result["error"] = exc

    waiter = threading.Thread(target=recall)
    waiter.start()
    while waiter.is_alive():
        control_command(scanner_ctl, "scan", qr)  # the scanner reads the code
        waiter.join(timeout=0.5)
    if "error" in result:
        raise result["error"]
    view = result["view"]
    pre = view["prerequest"]
    say(f"pre-request {pre['number']}: {pre['surname']} {pre['given_names']}, {pre['reason_fr']}")
    view = client.documents(sid, checked=["photo", "proof_of_address"])
    say("documents checked: photo, proof of address")
    for _ in range(20):
        if view["step"] != "fingers":
            break
        current = view["fingers"]["current"]
        control_command(sensor_ctl, "place", "synthetic", FINGERS[current["position"]])
        view = client.capture(sid)
        last = view["last_capture"]
        say(f"capture {last['name_fr']}: quality {last['quality']}/100, {last['message_fr']}")
    if view["step"] != "summary":
        raise RuntimeError(f"fingerprint step did not finish: {view['fingers']}")
    view = client.confirm(sid)
    say("agent confirmed: enrolment sealed and queued")
    return dict(view)


def main() -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(os.environ.get("DR_DEMO_OUT", ROOT / "demo-out"))
    run_dir = out / f"{stamp}-{os.getpid()}"
    run_dir.mkdir(parents=True)
    say(f"working in {run_dir}")
    mqtt, ws, http = free_port(), free_port(), free_port()
    central_toml, edge_toml = write_configs(run_dir, mqtt=mqtt, ws=ws, http=http)
    central: list[str | Path] = [BIN / "dr-central", "--config", central_toml]
    edge: list[str | Path] = [BIN / "dr-edge"]
    run(*central, "init", cwd=run_dir)
    run(
        *central,
        "device",
        "provision",
        DEVICE_ID,
        "--commune",
        "Évry-Courcouronnes",
        "--out",
        run_dir / "device",
        cwd=run_dir,
    )
    created = json.loads(
        run(
            *central,
            "prerequest",
            "create",
            "--json",
            "--surname",
            "Martin",
            "--given-names",
            "Léa Marie",
            "--sex",
            "F",
            "--birth-date",
            date(1991, 4, 12).isoformat(),
            "--birth-place",
            "Évry",
            "--address",
            "1 rue de la Demo",
            "--postcode",
            "91000",
            "--city",
            "Évry",
            "--height",
            "168",
            "--eyes",
            "marron",
            "--reason",
            "renewal",
            "--pdf",
            run_dir / "prerequest.pdf",
            cwd=run_dir,
        )
    )
    number, qr = created["number"], created["qr"]
    say(f"pre-request {number} created (recap with QR code: {run_dir / 'prerequest.pdf'})")
    run(
        *edge,
        "agent",
        "add",
        AGENT,
        "--name",
        "Agent Démo",
        "--password-stdin",
        "--config",
        edge_toml,
        cwd=run_dir,
        stdin=PASSWORD + "\n",
    )

    with processes(run_dir) as procs:
        procs.start("central", *central, "serve")
        wait_until(
            "central's broker and HTTP API",
            lambda: procs.check_alive() and port_open(mqtt)() and port_open(http)(),
        )
        say(f"central serving (HTTP {http}, MQTT/TLS {mqtt})")
        procs.start(
            "sensor-sim",
            BIN / "dr-sim",
            "sensor",
            "--link",
            run_dir / "sensor.pty",
            "--control",
            run_dir / "sensor.ctl",
            "--seed",
            "1",
        )
        procs.start(
            "scanner-sim",
            BIN / "dr-sim",
            "scanner",
            "--link",
            run_dir / "scanner.pty",
            "--control",
            run_dir / "scanner.ctl",
        )
        wait_until(
            "the simulators",
            lambda: (
                (procs.check_alive() or True)
                and all(
                    (run_dir / n).exists()
                    for n in ("sensor.pty", "sensor.ctl", "scanner.pty", "scanner.ctl")
                )
            ),
        )
        procs.start("dr-edge", *edge, "run", "--config", edge_toml)
        url_file = run_dir / "edge" / "console.url"
        wait_until("the DR daemon's console", lambda: procs.check_alive() and url_file.exists())
        url = url_file.read_text().strip()
        say(f"DR daemon up, agent console at {url}")

        from edge.console.client import ConsoleClient

        client = ConsoleClient(url)
        client.sign_in(AGENT, PASSWORD)
        wait_until("the link to central", lambda: bool(client.status()["link"]["online"]))
        say("agent signed in; link to central online")
        view = enrol(
            client, qr=qr, scanner_ctl=run_dir / "scanner.ctl", sensor_ctl=run_dir / "sensor.ctl"
        )
        request_number = view["request_number"]
        wait_until("central's acknowledgement", lambda: client.status()["queue"]["depth"] == 0)
        shown = json.loads(run(*central, "status", "show", request_number, "--json", cwd=run_dir))
        say(f"central holds request {request_number}: stage {shown.get('stage')}")
    # Printed last, once every process has stopped: what the citizen leaves with.
    print(f"CNI request number: {request_number}", flush=True)
    print(f"Receipt: {view['receipt']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    try:
        sys.exit(main())
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)
