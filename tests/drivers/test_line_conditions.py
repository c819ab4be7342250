"""One end-to-end session under every line condition (bellows/zigpy-znp style).

Handshake, capture with a bit-exact image upload, enrolment, search: over whole packets, one
byte per write, garbage before every burst, seeded corruption, loss and duplication of bytes
(both directions), and delayed replies. The driver must get the same results every time.
"""

from __future__ import annotations

import numpy as np
import pytest
from dr_sim.sensor_sim import SensorSimulator

from edge.drivers.sensor import FingerprintSensor
from edge.drivers.sensor_config import SensorConfig
from tests.fixtures.sim import SimHandle, last_image

CONDITIONS: dict[str, list[tuple[str | int | float, ...]]] = {
    "whole packets": [],
    "one byte per write": [("chunk", 1)],
    "garbage prefixes": [("line", "prefix=7", "seed=1")],
    "corruption": [("line", "corrupt=0.0005", "seed=2", "limit=4")],
    "loss": [("line", "drop=0.0005", "seed=3", "limit=4")],
    "duplication": [("line", "dup=0.0005", "seed=4", "limit=4")],
    "mixed faults": [("line", "drop=0.0003", "corrupt=0.0003", "dup=0.0003", "seed=5", "limit=6")],
    "delays": [("slow", 0.05)],
}


@pytest.mark.parametrize("condition", list(CONDITIONS))
async def test_session_under_line_condition(
    sensor_sim: SimHandle[SensorSimulator], condition: str
) -> None:
    control = sensor_sim.control
    for words in CONDITIONS[condition]:
        await control.command(*words)
    await control.place_synthetic(3)
    config = SensorConfig(port=sensor_sim.port, timeout=0.5, retries=6, packet_size=64)
    async with FingerprintSensor(config) as sensor:
        assert sensor.parameters.packet_size == 64
        image = await sensor.capture(finger_timeout=5)
        assert np.array_equal(image, last_image(sensor_sim))
        for buffer in (1, 2):
            await sensor.wait_for_finger(finger_timeout=5)
            await sensor.image_to_template(buffer)
        await sensor.register_model()
        await sensor.store(7)
        await sensor.wait_for_finger(finger_timeout=5)
        await sensor.image_to_template(1)
        hit = await sensor.search()
        assert hit is not None
        assert hit.page == 7
        assert await sensor.template_count() == 1
    status = await control.status()
    if "limit" in str(CONDITIONS[condition]):
        assert int(status["faults_injected"]) > 0  # the faults did happen
