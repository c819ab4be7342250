"""A full enrolment through the station over the real parts (mosquitto, central, the sensor and
scanner simulators on ptys, the daemon), then a scan of everything the DR wrote: its state
directory, the temporary directory, the logs and what it published (telemetry, state).

No capture image or template may be there in clear, in any form: the ISO template, the PNG,
the raw 8-bit pixels, the sensor's 4-bit packed pixels, zlib streams of the pixels; nor any
PNG at all (a preview written to disk). The sealed payload is gone once acknowledged, and the
logs and telemetry carry no personal data (names, birth date, address).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sqlite3
import tempfile
import zlib
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from PIL import Image

from dr_contracts.audit import AuditLog
from edge.biometrics.types import FingerPosition
from edge.cli import main as edge_main
from tests.station.conftest import StationWorld
from tests.station.test_e2e_workflow import scan_and_recall

PERSONAL = ["Martin", "Léa", "1988-05-17", "12 rue des Lilas", "Évry-Courcouronnes"]
SLICE = 40


def _forms(template: bytes, png: bytes) -> dict[str, list[bytes]]:
    """Every form in which a capture could be written, as needles to search for."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.uint8)
    raw = pixels.tobytes()
    nibbles = (pixels >> 4).astype(np.uint8).reshape(-1)
    packed = ((nibbles[0::2] << 4) | nibbles[1::2]).astype(np.uint8).tobytes()
    middle = pixels.shape[0] // 2 * pixels.shape[1]
    forms = {
        "template": [template[24:], template[24 : 24 + SLICE], template[-SLICE:]],
        "png": [png[i : i + SLICE] for i in (40, len(png) // 2, len(png) - 2 * SLICE)],
        "raw": [raw[middle + k * 1000 : middle + k * 1000 + SLICE] for k in range(3)],
        "packed": [packed[middle // 2 : middle // 2 + SLICE]],
    }
    for level in (1, 6, 9):
        stream = zlib.compress(raw, level)
        forms[f"zlib{level}"] = [stream[len(stream) // 2 : len(stream) // 2 + SLICE]]
    return forms


def _scan(paths: list[Path], needles: dict[str, list[bytes]]) -> list[str]:
    hits = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue  # a file removed while scanning (WAL checkpoint)
        for form, items in needles.items():
            if any(item in data for item in items):
                hits.append(f"{path.name}: {form}")
        if b"\x89PNG\r\n\x1a\n" in data:
            hits.append(f"{path.name}: a PNG image")
    return hits


def _edge_audit(world: StationWorld, number: str) -> set[str]:
    """The DR's audit trail: intact (``dr-edge audit verify``, signed heads checked with the
    device's key), without personal data; returns its event names."""
    path = world.config.device.state_dir / "audit.sqlite3"
    bundle = world.config.device.bundle_dir
    assert bundle is not None
    command = ["audit", "verify", "--file", str(path), "--public-key"]
    assert edge_main([*command, str(bundle / "device-signing.pub")]) == 0
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert [w for w in PERSONAL if w.encode() in raw] == []
    with AuditLog(path) as audit:
        entries = list(audit.entries())
    acked = [e for e in entries if e.event == "payload_deleted_on_ack"]
    assert [e.details["request_number"] for e in acked] == [number]
    return {e.event for e in entries}


def _files(*directories: Path) -> list[Path]:
    return [p for d in directories for p in sorted(d.rglob("*")) if p.is_file()]


async def _collect(
    world: StationWorld, sink: list[bytes], subscribed: asyncio.Event, received: asyncio.Event
) -> None:
    async with world.broker.client("central", identifier="privacy-probe") as client:
        await client.subscribe("dr/+/telemetry", qos=1)
        await client.subscribe("dr/+/state", qos=1)
        subscribed.set()
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                sink.append(bytes(payload))
                received.set()


async def test_full_enrolment_leaves_no_clear_biometrics(
    world: StationWorld,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp_dir))
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    caplog.set_level(logging.DEBUG)
    published: list[bytes] = []
    subscribed, received = asyncio.Event(), asyncio.Event()
    collector = asyncio.create_task(_collect(world, published, subscribed, received))
    try:
        async with asyncio.timeout(60):
            await subscribed.wait()
        pre = world.prerequest(
            surname="Martin",
            given_names="Léa",
            address_line="12 rue des Lilas",
            city="Évry-Courcouronnes",
        )
        await world.start_daemon()
        s = await world.call("start")
        view = await scan_and_recall(world, s["id"], world.qr(pre.number))
        view = await world.call(
            "documents", s["id"], checked=["photo", "proof_of_address"], erase_images=True
        )
        view = await world.capture_until(s["id"])
        assert view["step"] == "summary"
        view = await world.call("confirm", s["id"])
        number = view["request_number"]
        assert (await world.outcome(view)) == number
        async with asyncio.timeout(60):
            await received.wait()  # the link publishes its state and telemetry on connecting
        state_dir = world.config.device.state_dir
        record = world.service.enrolment_record(number)
        assert record.erase_images_after_decision  # the applicant's choice reached central
        needles: dict[str, list[bytes]] = {}
        for finger in record.captured_fingers:
            assert finger.template is not None
            assert finger.image_png is not None
            for form, items in _forms(finger.template, finger.image_png).items():
                needles.setdefault(form, []).extend(items)
        assert {f.position for f in record.captured_fingers} <= set(FingerPosition)

        # Live: the daemon is still running (WAL files as they are).
        assert _scan(_files(state_dir, temp_dir), needles) == []
        # The sealed payload was deleted on acknowledgement.
        outbox = sqlite3.connect(world.config.outbox_db)
        try:
            rows = outbox.execute("SELECT state, envelope IS NULL FROM outbox").fetchall()
        finally:
            outbox.close()
        assert rows == [("acked", 1)]

        await world.stop_daemon()
        assert _scan(_files(state_dir, temp_dir), needles) == []
        audit_events = _edge_audit(world, number)
        assert {"finger_capture", "enrolment_queued", "enrolment_sent"} <= audit_events
        assert "payload_deleted_on_ack" in audit_events
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await collector

    # Control: each needle form is found when it is written (the scan can fail).
    control = tmp_path / "control"
    control.mkdir()
    for form, items in needles.items():
        (control / form).write_bytes(b"\0" * 100 + items[0] + b"\0" * 100)
    assert len(_scan(_files(control), needles)) == len(needles)

    # Logs: neither biometric bytes (in any text form) nor personal data.
    texts = [caplog.text]
    for log_record in caplog.records:
        texts.append(repr(log_record.__dict__))
    log_text = "\n".join(texts)
    for items in needles.values():
        for item in items:
            assert item.hex() not in log_text
            assert repr(item)[2:40] not in log_text
    leaked = [word for word in PERSONAL if word in log_text]
    assert leaked == []
    # Telemetry and state: no personal data either.
    blob = b"\n".join(published)
    assert [w for w in PERSONAL if w.encode() in blob] == []
    assert all(item not in blob for items in needles.values() for item in items)
