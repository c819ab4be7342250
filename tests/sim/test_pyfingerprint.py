"""An unmodified host library from PyPI (pyfingerprint 1.5) drives the simulator.

pyfingerprint writes one byte per write call, reads replies byte by byte with a 2 s timeout,
reads ReadSysPara before Store and Search and searches the whole library: the simulator must
satisfy all of it. The library is blocking: it runs in a thread while the simulator runs in
the test's event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from dr_sim.sensor_sim import SensorSimulator
from PIL import Image
from pyfingerprint.pyfingerprint import PyFingerprint

from tests.fixtures.sim import SimHandle, last_image

Sim = SimHandle[SensorSimulator]


def _close(finger: PyFingerprint) -> None:
    finger._PyFingerprint__serial.close()  # the library only closes in __del__


def _enrol(port: str) -> tuple[int, tuple[int, int], int]:
    finger = PyFingerprint(port, 57600, 0xFFFFFFFF, 0x00000000)
    try:
        assert finger.verifyPassword()
        assert finger.getTemplateCount() == 0
        while not finger.readImage():
            pass
        finger.convertImage(0x01)
        assert finger.searchTemplate() == (-1, -1)
        assert finger.readImage()
        finger.convertImage(0x02)
        assert finger.compareCharacteristics() > 0
        assert finger.createTemplate()
        position = finger.storeTemplate()
        assert finger.readImage()
        finger.convertImage(0x01)
        found = finger.searchTemplate()
        return position, found, finger.getTemplateCount()
    finally:
        _close(finger)


async def test_enrol_and_search(sensor_sim: Sim) -> None:
    await sensor_sim.control.place_synthetic(3)
    position, (page, score), count = await asyncio.to_thread(_enrol, sensor_sim.port)
    assert position == 0
    assert page == 0
    assert score >= sensor_sim.device.model.engine.threshold
    assert count == 1
    assert set(sensor_sim.device.model.library) == {0}


def _download(port: str, path: Path) -> None:
    finger = PyFingerprint(port, 57600, 0xFFFFFFFF, 0x00000000)
    try:
        assert finger.verifyPassword()
        assert finger.readImage()
        finger.downloadImage(str(path))
    finally:
        _close(finger)


async def test_download_image(sensor_sim: Sim, tmp_path: Path) -> None:
    await sensor_sim.control.place_synthetic(3)
    path = tmp_path / "finger.bmp"
    await asyncio.to_thread(_download, sensor_sim.port, path)
    with Image.open(path) as picture:
        pixels = np.asarray(picture.convert("L"))
    assert np.array_equal(pixels, last_image(sensor_sim))


def _templates_and_settings(port: str) -> dict[str, object]:
    finger = PyFingerprint(port, 57600, 0xFFFFFFFF, 0x00000000)
    try:
        assert finger.verifyPassword()
        assert finger.readImage()
        finger.convertImage(0x01)
        characteristics = finger.downloadCharacteristics(0x01)
        # Upload to buffer 2 (the library verifies by downloading it back).
        uploaded = finger.uploadCharacteristics(0x02, characteristics)
        stored = [finger.storeTemplate(10), finger.storeTemplate(300, 0x02)]
        index = finger.getTemplateIndex(0)
        index1 = finger.getTemplateIndex(1)
        finger.loadTemplate(300, 0x01)
        score = finger.compareCharacteristics()
        finger.setMaxPacketSize(32)
        finger.setSecurityLevel(5)
        params = finger.getSystemParameters()
        deleted = finger.deleteTemplate(10)
        count_after_delete = finger.getTemplateCount()
        cleared = finger.clearDatabase()
        return {
            "length": len(characteristics),
            "uploaded": uploaded,
            "stored": stored,
            "index": [i for i, used in enumerate(index) if used],
            "index1": [i for i, used in enumerate(index1) if used],
            "score": score,
            "packet_size": finger.getMaxPacketSize(),
            "security": params[3],
            "deleted": deleted,
            "count_after_delete": count_after_delete,
            "cleared": cleared,
            "count": finger.getTemplateCount(),
            "random": finger.generateRandomNumber(),
        }
    finally:
        _close(finger)


async def test_templates_library_and_settings(sensor_sim: Sim) -> None:
    await sensor_sim.control.place_synthetic(4)
    result = await asyncio.to_thread(_templates_and_settings, sensor_sim.port)
    assert result["length"] == 512
    assert result["uploaded"] is True
    assert result["stored"] == [10, 300]
    assert result["index"] == [10]
    assert result["index1"] == [300 - 256]
    assert isinstance(result["score"], int)
    assert result["score"] > 0
    assert result["packet_size"] == 32
    assert result["security"] == 5
    assert result["deleted"] is True
    assert result["count_after_delete"] == 1
    assert result["cleared"] is True
    assert result["count"] == 0
    assert isinstance(result["random"], int)


def _no_finger(port: str) -> bool:
    finger = PyFingerprint(port, 57600, 0xFFFFFFFF, 0x00000000)
    try:
        assert finger.verifyPassword()
        return bool(finger.readImage())
    finally:
        _close(finger)


async def test_no_finger(sensor_sim: Sim) -> None:
    assert await asyncio.to_thread(_no_finger, sensor_sim.port) is False
