"""With the simulator pacing its output at the baud rate, the driver's per-packet timeout
meets a real line's timing: a 256-byte data packet takes 0.28 s at 9600 baud."""

from __future__ import annotations

import pytest

from edge.drivers.errors import DeviceTimeoutError
from edge.drivers.sensor import FingerprintSensor
from edge.drivers.sensor_config import SensorConfig
from tests.fixtures.sim import SensorFactory

BAUD = 9600


async def _template_upload(port: str, *, reply_timeout: float) -> bytes:
    def config(timeout: float) -> SensorConfig:
        return SensorConfig(port=port, baudrate=BAUD, packet_size=256, timeout=timeout, retries=0)

    # Capture with time to spare (the module renders the impression), then upload the
    # features with the timeout under test: only the line's timing matters there.
    async with FingerprintSensor(config(5.0)) as sensor:
        await sensor.gen_img()
        await sensor.image_to_template(1)
    async with FingerprintSensor(config(reply_timeout)) as sensor:
        return await sensor.upload_template(1)


async def test_timeout_shorter_than_a_packet_fails(make_sensor_sim: SensorFactory) -> None:
    async with make_sensor_sim(baudrate=BAUD, pace=True, auto_finger=3) as sim:
        # Short commands (12-byte replies, 12.5 ms) pass; the 265-byte data packet cannot.
        with pytest.raises(DeviceTimeoutError) as caught:
            await _template_upload(sim.port, reply_timeout=0.2)
    assert caught.value.command == "UpChar"


async def test_timeout_longer_than_a_packet_succeeds(make_sensor_sim: SensorFactory) -> None:
    async with make_sensor_sim(baudrate=BAUD, pace=True, auto_finger=3) as sim:
        template = await _template_upload(sim.port, reply_timeout=1.5)
    assert len(template) == 512


@pytest.mark.slow
async def test_soak_many_sessions_on_a_faulty_line(make_sensor_sim: SensorFactory) -> None:
    async with make_sensor_sim(auto_finger=3) as sim:
        config = SensorConfig(port=sim.port, timeout=0.5, retries=8)
        async with FingerprintSensor(config) as sensor:
            for seed in range(40):
                await sim.control.line(
                    drop=0.0002, corrupt=0.0002, duplicate=0.0002, seed=seed, limit=5
                )
                image = await sensor.capture(finger_timeout=5)
                assert image.shape == (288, 256)
                await sensor.image_to_template(1)
                await sensor.store(seed)
                if seed % 10 == 9:
                    await sim.control.unplug()
                    await sim.control.replug()
            assert await sensor.template_count() == 40
