"""Real processes for the kill and soak tests: devices, central instances, and their outcome.

:class:`Fleet` prepares everything on disk (central keys and database with registered devices
and pre-requests, device keys and certificates, one JSON config per process), starts the
children of :mod:`tests.link.procs`, kills them with SIGKILL, restarts them, and at the end
reads the outboxes and central's database to check the outcome.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from central.keyring import RECIPIENT_PUB, SIGNING_PUB, CentralKeyring
from central.service import CentralService
from dr_contracts.keys import SigningKey
from edge.queue import Outbox, RowState
from tests.fixtures.broker import RunningBroker
from tests.fixtures.central import sample_form
from tests.link.procs import enrolment_id_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 240.0  # bound on any single wait in these tests (a failure when exceeded)


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One child process, restartable; its stdout lines are kept and waited on."""

    name: str
    role: str
    config_path: Path
    log_path: Path
    lines: list[str] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    starts: int = 0
    run_mark: int = 0  # index of the first line printed by the current run

    async def start(self) -> None:
        assert self.process is None or self.process.returncode is not None
        self.starts += 1
        self.run_mark = len(self.lines)
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.link.procs",
                self.role,
                str(self.config_path),
                cwd=PROJECT_ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
                preexec_fn=_die_with_parent,  # a killed test run leaves no child behind
            )
        finally:
            log.close()
        self._reader = asyncio.create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            async with self._changed:
                self.lines.append(raw.decode().strip())
                self._changed.notify_all()
        await process.wait()
        async with self._changed:
            self._changed.notify_all()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait_for(self, predicate: Callable[[list[str]], bool]) -> None:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: predicate(self.lines) or not self.alive)
        if not predicate(self.lines):
            raise AssertionError(f"{self.name} exited ({self.tail()})")

    def lines_since(self, index: int) -> list[str]:
        return self.lines[index:]

    async def kill(self) -> None:
        """SIGKILL, and wait for it (and its output) to be gone."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        if self._reader is not None:
            await self._reader
            self._reader = None

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
        await self.kill()

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return ""


def _new_line(child: Child, text: str) -> Callable[[list[str]], bool]:
    """A predicate: ``text`` printed by the current run of ``child`` (not an earlier one)."""
    mark = child.run_mark
    return lambda lines: text in lines[mark:]


@dataclass
class Outcome:
    acked: dict[str, str]  # enrolment id -> request number, from the outboxes
    acked_total: int  # sum of the outboxes' counters (a second ack is never counted)
    central_numbers: list[str]  # every request number central recorded
    not_acked: list[str]


class Fleet:
    """Central instances and devices as processes around one broker."""

    def __init__(
        self,
        directory: Path,
        broker: RunningBroker,
        *,
        devices: int,
        enrolments: int,
        centrals: int = 1,
    ) -> None:
        self.directory = directory
        self.broker = broker
        directory.mkdir(parents=True, exist_ok=True)
        key_dir = directory / "central-keys"
        CentralKeyring.create(key_dir)
        self.database = f"sqlite://{directory / 'central.db'}"
        device_ids = [f"dr-91228-{i + 1:02d}" for i in range(devices)]
        service = CentralService.open(database=self.database, key_dir=key_dir)
        self.assigned: dict[str, list[str]] = {d: [] for d in device_ids}
        try:
            for device_id in device_ids:
                key = SigningKey.generate()
                key.save(directory / f"{device_id}.key")
                service.register_device(device_id, commune_name="Évry", signing_key=key.public_key)
            for i in range(enrolments):
                pre = service.create_prerequest(sample_form())
                self.assigned[device_ids[i % devices]].append(pre.number)
        finally:
            service.close()
        base = {"host": broker.host, "port": broker.port, "ca_file": str(broker.ca_file)}
        self.centrals: list[Child] = []
        files = broker.client_files("central")
        for i in range(centrals):
            name = f"central-{i + 1}"
            config = {
                **base,
                "cert_file": str(files.cert),
                "key_file": str(files.key),
                "database": self.database,
                "key_dir": str(key_dir),
                "instance": name,
            }
            self.centrals.append(self._child(name, "central", config))
        self.devices: list[Child] = []
        for device_id in device_ids:
            files = broker.client_files(device_id)
            config = {
                **base,
                "device_id": device_id,
                "cert_file": str(files.cert),
                "key_file": str(files.key),
                "signing_key": str(directory / f"{device_id}.key"),
                "central_recipient": str(key_dir / RECIPIENT_PUB),
                "central_signing": str(key_dir / SIGNING_PUB),
                "outbox": str(directory / f"{device_id}.outbox.db"),
                "prerequests": self.assigned[device_id],
            }
            self.devices.append(self._child(device_id, "edge", config))

    def _child(self, name: str, role: str, config: dict[str, Any]) -> Child:
        path = self.directory / f"{name}.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        return Child(name, role, path, self.directory / f"{name}.log")

    @property
    def children(self) -> list[Child]:
        return self.centrals + self.devices

    async def start(self) -> None:
        for central in self.centrals:
            await central.start()
        for central in self.centrals:
            await central.wait_for(_new_line(central, "READY"))
        for device in self.devices:
            await device.start()

    async def wait_idle(self) -> None:
        """Every device has all its enrolments acknowledged (each prints IDLE)."""
        for device in self.devices:
            if not device.alive:
                await device.start()
            await device.wait_for(_new_line(device, "IDLE"))

    async def stop(self) -> None:
        """Stop every child, even if one of them misbehaves: none may outlive the test."""
        failures: list[BaseException] = []
        for child in self.children:
            try:
                await child.stop()
            except BaseException as exc:
                if child.process is not None and child.process.returncode is None:
                    child.process.kill()
                failures.append(exc)
        if failures:
            raise failures[0]

    def outcome(self) -> Outcome:
        acked: dict[str, str] = {}
        not_acked: list[str] = []
        total = 0
        for device in self.devices:
            outbox = Outbox(self.directory / f"{device.name}.outbox.db")
            try:
                total += outbox.stats().acked_total
                for number in self.assigned[device.name]:
                    entry = outbox.entry(enrolment_id_for(number))
                    if entry.state is RowState.ACKED and entry.request_number is not None:
                        acked[entry.enrolment_id] = entry.request_number
                    else:
                        not_acked.append(entry.enrolment_id)
            finally:
                outbox.close()
        service = CentralService.open(
            database=self.database, key_dir=self.directory / "central-keys"
        )
        try:
            numbers = list(service.iter_request_numbers())
        finally:
            service.close()
        return Outcome(acked, total, numbers, not_acked)
