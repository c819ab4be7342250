"""Real processes killed with SIGKILL: edge mid-publish, central mid-ingest, and a chaos soak.

The outcome is read from the devices' outboxes and central's database after the run: every
enrolment acknowledged exactly once, with exactly one request number, none lost.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.fixtures.broker import RunningBroker
from tests.link.chaos import Child, Fleet


def _acks(lines: list[str]) -> int:
    return sum(1 for line in lines if line.startswith("ACK "))


async def _wait_acks(child: Child, count: int) -> None:
    await child.wait_for(lambda lines: _acks(lines) >= count or "IDLE" in lines)


def _check(fleet: Fleet, enrolments: int) -> None:
    outcome = fleet.outcome()
    assert outcome.not_acked == []
    assert len(outcome.acked) == enrolments
    assert outcome.acked_total == enrolments  # no row acknowledged twice
    assert len(outcome.central_numbers) == enrolments  # central recorded each once
    assert sorted(outcome.central_numbers) == sorted(outcome.acked.values())
    assert len(set(outcome.acked.values())) == enrolments  # one number each, never reused


async def test_edge_killed_mid_publish_loses_and_duplicates_nothing(
    broker: RunningBroker, tmp_path: Path
) -> None:
    fleet = Fleet(tmp_path / "fleet", broker, devices=1, enrolments=24)
    device = fleet.devices[0]
    try:
        await fleet.start()
        await _wait_acks(device, 3)
        await device.kill()  # mid-drain: rows sent, acks in flight, enqueues unfinished
        await device.start()
        await fleet.wait_idle()
    finally:
        await fleet.stop()
    assert device.starts == 2
    _check(fleet, 24)


async def test_central_killed_mid_ingest_loses_and_duplicates_nothing(
    broker: RunningBroker, tmp_path: Path
) -> None:
    fleet = Fleet(tmp_path / "fleet", broker, devices=2, enrolments=24)
    central = fleet.centrals[0]
    try:
        await fleet.start()
        await _wait_acks(fleet.devices[0], 2)
        await central.kill()  # enrolments PUBACKed by the broker but not yet ingested
        await central.start()
        await fleet.wait_idle()
    finally:
        await fleet.stop()
    _check(fleet, 24)


async def _chaos(fleet: Fleet, broker: RunningBroker, *, kills: int, seed: int) -> None:
    """Kill a random part (a device, a central instance, the broker) every few acks."""
    rng = random.Random(seed)
    total = sum(len(v) for v in fleet.assigned.values())
    step = max(2, total // (kills + 2) // len(fleet.devices))
    for _ in range(kills):
        # Progress first: wait for more acks on a device still working.
        working = [d for d in fleet.devices if "IDLE" not in d.lines]
        if not working:
            return
        watched = rng.choice(working)
        if not watched.alive:
            await watched.start()
        await _wait_acks(watched, _acks(watched.lines) + step)
        victim = rng.choice(["broker", "central", "device"])
        if victim == "broker":
            await asyncio.to_thread(broker.kill)
            await asyncio.to_thread(broker.start)
        elif victim == "central":
            central = rng.choice(fleet.centrals)
            await central.kill()
            await central.start()
        else:
            device = rng.choice(fleet.devices)
            await device.kill()
            await device.start()


async def _soak(broker: RunningBroker, directory: Path, *, enrolments: int, kills: int) -> None:
    fleet = Fleet(directory, broker, devices=3, enrolments=enrolments, centrals=2)
    try:
        await fleet.start()
        await _chaos(fleet, broker, kills=kills, seed=enrolments)
        await fleet.wait_idle()
    finally:
        await fleet.stop()
    _check(fleet, enrolments)


async def test_soak_with_random_kills_short(broker: RunningBroker, tmp_path: Path) -> None:
    await _soak(broker, tmp_path / "fleet", enrolments=100, kills=6)


@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_soak_with_random_kills_long(broker: RunningBroker, tmp_path: Path) -> None:
    await _soak(broker, tmp_path / "fleet", enrolments=1000, kills=40)
