"""Serial link: capture + image upload time against the line rate.

Runs ``dr-sim sensor --pace`` in its own process (the module paces its output at the baud
rate, as a UART would) and, over its pty, times:

- **theory**: every byte of the exchange (GenImg and UpImage commands, acks, data packets),
  10 bits a byte (8N1), at the baud rate, one after the other;
- **baseline**: a minimal blocking host (pyserial) that writes UpImage and reads the exact
  number of bytes expected: what the simulated line itself delivers;
- **driver**: ``FingerprintSensor.capture()`` (GenImg + UpImage + unpacking).

Efficiency = theory / measured (1.0 = the line is never idle). Goal: >= 0.90 with 256-byte
packets.

    python -m bench serial_rate [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import serial

from edge.drivers.r30x_codec import OVERHEAD, encode_packet
from edge.drivers.r30x_commands import COMMANDS, IMAGE_BYTES, PacketId
from edge.drivers.sensor import FingerprintSensor
from edge.drivers.sensor_config import SensorConfig

BAUDS = (57600, 921600)
PACKET_SIZE = 256


def _exchange_bytes(packet_size: int) -> tuple[int, int]:
    """(bytes of UpImage alone, bytes of GenImg + UpImage) on the wire, both directions."""
    packets = -(-IMAGE_BYTES // packet_size)
    command = OVERHEAD + 1
    ack = OVERHEAD + 1
    upload = command + ack + IMAGE_BYTES + packets * OVERHEAD
    return upload, upload + command + ack


async def _start_sim(directory: Path, baud: int) -> tuple[asyncio.subprocess.Process, Path]:
    link = directory / f"sensor-{baud}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dr_sim.cli",
        "sensor",
        "--link",
        str(link),
        "--baud",
        str(baud),
        "--pace",
        "--packet-size",
        str(PACKET_SIZE),
        "--auto-finger",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    async with asyncio.timeout(120):
        await process.stdout.readline()  # the banner: the link exists
    return process, link


def _raw_capture(port: str, baud: int, expected: int) -> tuple[float, float]:
    """Blocking minimal host: GenImg then UpImage, reading exactly the expected bytes.

    Returns (capture time, upload time)."""
    with serial.Serial(port, baud, timeout=30) as line:
        start = time.perf_counter()
        line.write(encode_packet(PacketId.COMMAND, COMMANDS.GEN_IMG.encode_params()))
        line.read(OVERHEAD + 1)
        middle = time.perf_counter()
        line.write(encode_packet(PacketId.COMMAND, COMMANDS.UP_IMAGE.encode_params()))
        got = len(line.read(expected))
        end = time.perf_counter()
    if got != expected:
        raise RuntimeError(f"raw upload got {got} of {expected} bytes")
    return end - start, end - middle


async def _driver_runs(port: str, baud: int, runs: int) -> tuple[list[float], list[float]]:
    captures, uploads = [], []
    config = SensorConfig(port=port, baudrate=baud, timeout=2.0)
    async with FingerprintSensor(config) as sensor:
        await sensor.capture(finger_timeout=30)  # warm-up (finger generation, caches)
        for _ in range(runs):
            start = time.perf_counter()
            await sensor.capture(finger_timeout=30)
            captures.append(time.perf_counter() - start)
            start = time.perf_counter()
            await sensor.upload_image()
            uploads.append(time.perf_counter() - start)
    return captures, uploads


async def _measure(baud: int, runs: int) -> dict[str, float]:
    upload_bytes, capture_bytes = _exchange_bytes(PACKET_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        process, link = await _start_sim(Path(tmp), baud)
        try:
            expected = upload_bytes - 2 * (OVERHEAD + 1)  # what the host reads after its write
            await asyncio.to_thread(_raw_capture, str(link), baud, expected)  # warm-up
            raw = [
                await asyncio.to_thread(_raw_capture, str(link), baud, expected)
                for _ in range(runs)
            ]
            captures, uploads = await _driver_runs(str(link), baud, runs)
        finally:
            process.terminate()
            await process.communicate()
    byte_time = 10 / baud
    return {
        "theory_upload": upload_bytes * byte_time,
        "theory_capture": capture_bytes * byte_time,
        "raw_capture": statistics.median(r[0] for r in raw),
        "raw_upload": statistics.median(r[1] for r in raw),
        "driver_upload": statistics.median(uploads),
        "driver_capture": statistics.median(captures),
    }


def main(argv: list[str]) -> None:
    runs = 1 if "--quick" in argv else 3
    upload_bytes, capture_bytes = _exchange_bytes(PACKET_SIZE)
    print(
        f"Capture (GenImg + UpImage) and upload (UpImage) of a 256x288 4-bit image, "
        f"{PACKET_SIZE}-byte packets: {capture_bytes:,} / {upload_bytes:,} bytes on the wire; "
        f"simulator paced at the baud rate in its own process; median of {runs} run(s).\n"
    )
    print(
        "| baud | step | line time (theory) | baseline: raw pyserial host | driver "
        "| line efficiency (theory / driver) | baseline / driver |"
    )
    print("|---|---|---|---|---|---|---|")
    for baud in BAUDS:
        r = asyncio.run(_measure(baud, runs))
        for step in ("upload", "capture"):
            theory, raw, driver = (r[f"{k}_{step}"] for k in ("theory", "raw", "driver"))
            print(
                f"| {baud} | {step} | {theory:.3f} s | {raw:.3f} s | {driver:.3f} s "
                f"| {theory / driver:.1%} | {raw / driver:.2f} |",
                flush=True,
            )
    print(
        "\nCapture includes the module's image acquisition (GenImg), which is not line time: "
        "the simulator renders a synthetic impression (~0.1 s; a real R307 takes ~0.5 s). "
        "The baseline host pays it too."
    )


if __name__ == "__main__":
    main(sys.argv[1:])
