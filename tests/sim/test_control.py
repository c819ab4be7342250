"""Every command of the control channel, through the Python client and the blocking helper."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
from dr_sim.control import ControlError, control_command
from dr_sim.scanner_sim import ScannerSimulator
from dr_sim.sensor_sim import SensorSimulator

from edge.drivers.sensor import FingerprintSensor
from edge.drivers.sensor_config import SensorConfig
from tests.fixtures.sim import SimHandle

Sim = SimHandle[SensorSimulator]


def _sensor(sim: Sim) -> FingerprintSensor:
    return FingerprintSensor(SensorConfig(port=sim.port, timeout=0.5))


async def test_place_real_image_lift_and_auto(sensor_sim: Sim, shared_data: Path) -> None:
    control = sensor_sim.control
    path = shared_data / "fvc2002" / "db1_b" / "101_1.tif"
    async with _sensor(sensor_sim) as sensor:
        key = await control.command("place", "image", str(path))
        assert key == f"image:{path.resolve()}"
        real = await sensor.capture(finger_timeout=5)
        assert real.std() > 10
        await control.lift()
        with pytest.raises(Exception, match="no_finger"):
            await sensor.capture(finger_timeout=0.1)
        await control.auto_finger(3)
        synthetic = await sensor.capture(finger_timeout=5)
        assert not np.array_equal(real, synthetic)
        assert (await control.status())["finger"] == "synthetic:3"
        await control.auto_finger(None)
        assert (await control.status())["finger"] == "-"


@pytest.mark.parametrize(
    "words",
    [
        ("frobnicate",),
        ("place", "synthetic"),
        ("place", "image", "/nonexistent.png"),
        ("place", "synthetic", "seven"),
        ("fault", "lightning"),
        ("stuck", "maybe"),
        ("slow", "-1"),
        ("slow",),
        ("line", "drop"),
        ("line", "drop=2"),
        ("line", "volume=3"),
        ("chunk", "0"),
        ("garbage", "xyz"),
        ("replug",),
        ("auto",),
    ],
)
async def test_bad_commands_get_a_clear_error(sensor_sim: Sim, words: tuple[str, ...]) -> None:
    with pytest.raises(ControlError) as caught:
        await sensor_sim.control.command(*words)
    assert str(caught.value)
    # The channel is still usable after an error.
    assert "plugged" in await sensor_sim.control.status()


async def test_unparsable_and_empty_lines(sensor_sim: Sim) -> None:
    assert sensor_sim.device.control_path is not None
    reader, writer = await asyncio.open_unix_connection(str(sensor_sim.device.control_path))
    try:
        answers = []
        for line in (b'"unterminated\n', b"\n", b"\xff\xfe\n"):
            writer.write(line)
            answers.append(await reader.readline())
    finally:
        writer.close()
        await writer.wait_closed()
    assert answers[0].startswith(b"error cannot parse")
    assert answers[1] == b"error empty command\n"
    assert answers[2].startswith(b"error cannot parse")


async def test_help_lists_the_commands(sensor_sim: Sim) -> None:
    text = await sensor_sim.control.command("help")
    for word in ("place", "lift", "fault", "stuck", "unplug", "replug", "slow", "line", "chunk"):
        assert word in text


async def test_status_counts(sensor_sim: Sim) -> None:
    status = await sensor_sim.control.status()
    assert status["plugged"] == "1"
    assert status["pty"].startswith("/dev/pts/")
    assert status["templates"] == "0"
    await sensor_sim.control.unplug()
    assert (await sensor_sim.control.status())["plugged"] == "0"
    assert not await asyncio.to_thread(os.path.lexists, sensor_sim.port)
    await sensor_sim.control.replug()
    assert await asyncio.to_thread(os.path.islink, sensor_sim.port)


async def test_blocking_helper(sensor_sim: Sim) -> None:
    assert sensor_sim.device.control_path is not None
    path = sensor_sim.device.control_path
    details = await asyncio.to_thread(control_command, path, "status")
    assert "plugged=1" in details
    with pytest.raises(ControlError, match="unknown command"):
        await asyncio.to_thread(control_command, path, "nope")


async def test_scanner_commands(scanner_sim: SimHandle[ScannerSimulator]) -> None:
    await scanner_sim.control.scan("A B C")
    status = await scanner_sim.control.status()
    assert status["scans"] == "1"
    assert "scan" in await scanner_sim.control.command("help")
    with pytest.raises(ControlError, match="usage"):
        await scanner_sim.control.command("scan")
