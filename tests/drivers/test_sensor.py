"""The sensor driver against the simulator, real bytes over a real pty."""

from __future__ import annotations

import numpy as np
import pytest
from dr_sim.sensor_sim import SensorSimulator

from edge.drivers.errors import (
    CommandFailedError,
    DeviceGoneError,
    DeviceTimeoutError,
    RetryReason,
    ScanRetry,
    WrongPasswordError,
)
from edge.drivers.r30x_codec import Packet
from edge.drivers.r30x_commands import COMMANDS
from edge.drivers.sensor import FingerprintSensor, LedColour, LedMode
from edge.drivers.sensor_config import SensorConfig
from tests.fixtures.sim import SensorFactory, SimHandle, last_image

Sim = SimHandle[SensorSimulator]


def _config(sim: Sim, **options: object) -> SensorConfig:
    defaults: dict[str, object] = {"timeout": 0.5, "retries": 3, "reconnect_timeout": 5.0}
    defaults.update(options)
    return SensorConfig(port=sim.port, **defaults)  # type: ignore[arg-type]


async def test_handshake_reads_parameters(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        params = sensor.parameters
    assert params.capacity == 1000
    assert params.packet_size == 128
    assert params.baudrate == 57600


async def test_configured_packet_size_is_set_on_the_module(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim, packet_size=32)) as sensor:
        assert sensor.parameters.packet_size == 32
        image = await _capture_placed(sensor_sim, sensor)
    assert np.array_equal(image, last_image(sensor_sim))


async def _capture_placed(sim: Sim, sensor: FingerprintSensor) -> np.ndarray:
    await sim.control.place_synthetic(3)
    return await sensor.capture(finger_timeout=5)


async def test_capture_uploads_the_image_bit_exact(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        image = await _capture_placed(sensor_sim, sensor)
    assert image.shape == (288, 256)
    assert image.dtype == np.uint8
    assert np.all(image % 17 == 0)
    assert np.array_equal(image, last_image(sensor_sim))
    assert image.std() > 10  # a print, not a blank


async def test_no_finger_within_the_wait_is_a_retry(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        with pytest.raises(ScanRetry) as caught:
            await sensor.capture(finger_timeout=0.2)
    assert caught.value.reason is RetryReason.NO_FINGER
    assert caught.value.advice.startswith("Posez")


async def test_enrol_search_match_and_library(sensor_sim: Sim) -> None:
    control = sensor_sim.control
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        await control.place_synthetic(3)
        for buffer in (1, 2):
            await sensor.wait_for_finger(finger_timeout=5)
            await sensor.image_to_template(buffer)
        assert await sensor.match() > 0
        await sensor.register_model()
        await sensor.store(5)
        template = await sensor.upload_template(1)
        assert len(template) == 512

        await control.place_synthetic(4)
        await sensor.wait_for_finger(finger_timeout=5)
        await sensor.image_to_template(1)
        assert await sensor.search() is None  # another finger

        await control.place_synthetic(3)
        await sensor.wait_for_finger(finger_timeout=5)
        await sensor.image_to_template(1)
        hit = await sensor.search()
        assert hit is not None
        assert hit.page == 5
        assert hit.score >= 50

        await sensor.download_template(template, buffer=2)
        await sensor.store(9, buffer=2)
        assert await sensor.template_count() == 2
        assert await sensor.used_pages() == {5, 9}
        await sensor.load(9, buffer=2)
        assert await sensor.match() > 0
        await sensor.delete(5)
        assert await sensor.used_pages() == {9}
        await sensor.empty()
        assert await sensor.template_count() == 0


async def test_two_fingers_do_not_merge(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        for buffer, finger in ((1, 3), (2, 4)):
            await sensor_sim.control.place_synthetic(finger)
            await sensor.wait_for_finger(finger_timeout=5)
            await sensor.image_to_template(buffer)
        assert await sensor.match() == 0
        with pytest.raises(ScanRetry) as caught:
            await sensor.register_model()
    assert caught.value.reason is RetryReason.ENROL_MISMATCH


async def test_download_image_then_features(sensor_sim: Sim) -> None:
    rng = np.random.default_rng(0)
    image = (rng.integers(0, 16, size=(288, 256)) * 17).astype(np.uint8)
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        await sensor.download_image(image)
        await sensor.template_count()  # a round trip: the module has read the data before it
        assert np.array_equal(last_image(sensor_sim), image)
        assert np.array_equal(await sensor.upload_image(), image)
        await sensor.image_to_template(1)


@pytest.mark.parametrize(
    ("fault", "reason", "stage"),
    [
        ("imagefail", RetryReason.IMAGE_FAIL, "gen_img"),
        ("messy", RetryReason.MESSY_IMAGE, "img2tz"),
        ("fewfeatures", RetryReason.TOO_FEW_FEATURES, "img2tz"),
    ],
)
async def test_capture_faults_are_retry_worthy(
    sensor_sim: Sim, fault: str, reason: RetryReason, stage: str
) -> None:
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        await sensor_sim.control.place_synthetic(3)
        await sensor_sim.control.fault(fault)
        if stage == "gen_img":
            with pytest.raises(ScanRetry) as caught:
                await sensor.gen_img()
        else:
            await sensor.gen_img()
            with pytest.raises(ScanRetry) as caught:
                await sensor.image_to_template(1)
        assert caught.value.reason is reason
        # The next capture is good again.
        await sensor.gen_img()
        await sensor.image_to_template(1)


async def test_no_finger_fault_is_polled_through(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim, finger_poll_interval=0.0)) as sensor:
        await sensor_sim.control.place_synthetic(3)
        await sensor_sim.control.fault("nofinger", 3)
        image = await sensor.capture(finger_timeout=5)
    assert np.array_equal(image, last_image(sensor_sim))
    status = await sensor_sim.control.status()
    assert status["pending_faults"] == "0"  # the three "no finger" answers were polled through


async def test_stuck_device_times_out_then_recovers(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim, timeout=0.3, retries=2)) as sensor:
        await sensor_sim.control.stuck(True)
        with pytest.raises(DeviceTimeoutError) as caught:
            await sensor.template_count()
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.command == "TempleteNum"
        assert caught.value.attempts == 3
        await sensor_sim.control.stuck(False)
        assert await sensor.template_count() == 0


async def test_slow_replies_within_the_timeout(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim, timeout=2.0)) as sensor:
        await sensor_sim.control.slow(0.05)
        image = await _capture_placed(sensor_sim, sensor)
    assert np.array_equal(image, last_image(sensor_sim))


async def test_replies_slower_than_the_timeout_fail(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim, timeout=0.1, retries=0)) as sensor:
        await sensor_sim.control.slow(1.0)
        with pytest.raises(DeviceTimeoutError):
            await sensor.template_count()


async def test_garbage_on_the_line_is_skipped(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        await sensor_sim.control.garbage(b"\x00\xef\x01\xffjunk\xef")
        assert await sensor.template_count() == 0


async def test_wrong_password(make_sensor_sim: SensorFactory) -> None:
    async with make_sensor_sim(password=0x1234) as sim:
        with pytest.raises(WrongPasswordError):
            await FingerprintSensor(_config(sim)).open()
        async with FingerprintSensor(_config(sim, password=0x1234)) as sensor:
            assert await sensor.template_count() == 0


async def test_led(make_sensor_sim: SensorFactory) -> None:
    async with make_sensor_sim() as sim, FingerprintSensor(_config(sim)) as sensor:
        await sensor.led(mode=LedMode.BREATHING, colour=LedColour.PURPLE)
        assert (await sim.control.status())["led"] == "1,3"
    async with make_sensor_sim(has_led=False) as sim, FingerprintSensor(_config(sim)) as sensor:
        with pytest.raises(CommandFailedError):
            await sensor.led(mode=LedMode.ON)


async def test_unplug_and_replug_reconnects_in_the_same_call(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        await sensor_sim.control.place_synthetic(3)
        await sensor.gen_img()
        await sensor.image_to_template(1)
        await sensor.store(1)
        assert sensor.is_connected
        await sensor_sim.control.unplug()
        await sensor_sim.control.replug()
        # The old pty is gone: the driver notices, reopens the link, replays the handshake.
        assert await sensor.template_count() == 1  # flash survives a power cycle
        assert sensor.reconnects == 1
        assert sensor.is_connected
        image = await sensor.capture(finger_timeout=5)
    assert np.array_equal(image, last_image(sensor_sim))


async def test_unplugged_for_good_is_device_gone(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim, reconnect_timeout=0.3)) as sensor:
        await sensor_sim.control.unplug()
        with pytest.raises(DeviceGoneError):
            await sensor.template_count()
        await sensor_sim.control.replug()
        assert await sensor.template_count() == 0


async def test_bad_buffer_number_is_a_value_error(sensor_sim: Sim) -> None:
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        with pytest.raises(ValueError, match="char buffer"):
            await sensor.image_to_template(3)


async def test_open_without_device_fails_clearly() -> None:
    with pytest.raises(DeviceGoneError, match="cannot open"):
        await FingerprintSensor(SensorConfig(port="/nonexistent/ttyUSB9")).open()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="9600"):
        SensorConfig(port="x", baudrate=10000)
    with pytest.raises(ValueError, match="packet size"):
        SensorConfig(port="x", packet_size=100)


async def test_capture_restarts_when_replugged_before_the_upload(
    sensor_sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = sensor_sim.device
    original = device.model.on_packet
    replugged: list[bool] = []

    def unplug_on_first_upload(packet: Packet) -> list[Packet]:
        if packet.payload[:1] == bytes([COMMANDS.UP_IMAGE.code]) and not replugged:
            replugged.append(True)
            device.unplug()  # power lost: the image buffer is gone
            device.port.plug()
            return []
        return original(packet)

    monkeypatch.setattr(device.model, "on_packet", unplug_on_first_upload)
    async with FingerprintSensor(_config(sensor_sim)) as sensor:
        await sensor_sim.control.place_synthetic(3)
        image = await sensor.capture(finger_timeout=5)
        assert sensor.reconnects == 1
    assert replugged == [True]
    assert np.array_equal(image, last_image(sensor_sim))
    # Captured again after the replug (more if a GenImg reply was retried on a busy machine).
    assert int((await sensor_sim.control.status())["captures"]) >= 2


async def test_open_on_a_hung_module_times_out_and_releases_the_port(sensor_sim: Sim) -> None:
    await sensor_sim.control.stuck(True)
    sensor = FingerprintSensor(_config(sensor_sim, timeout=0.3, retries=1))
    with pytest.raises(DeviceTimeoutError) as caught:
        await sensor.open()
    assert caught.value.command == "VfyPwd"
    assert not sensor.is_connected
    await sensor_sim.control.stuck(False)
    async with sensor:  # the same object opens once the module answers
        assert await sensor.template_count() == 0
