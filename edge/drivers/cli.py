"""``dr-edge sensor ...`` and ``dr-edge scanner ...``: talk to the devices from a shell.

    dr-edge sensor info --port /dev/ttyUSB0
    dr-edge sensor capture --port /dev/ttyUSB0 -o finger.png
    dr-edge scanner listen --port /dev/ttyACM0

Messages for the operator are in French; failures exit non-zero with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from edge.drivers.errors import DriverError, ScanRejectedError, ScanRetry
from edge.drivers.r30x_commands import IMAGE_DPI
from edge.drivers.scanner import QrScanner, ScannerConfig
from edge.drivers.sensor import FingerprintSensor
from edge.drivers.sensor_config import SensorConfig

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``sensor`` and ``scanner`` commands to ``dr-edge``."""
    sensor = subparsers.add_parser("sensor", help="fingerprint sensor (R30x / ZFM / AS608)")
    sensor_sub = sensor.add_subparsers(dest="sensor_command", required=True, metavar="ACTION")

    def sensor_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
        p.add_argument("--baud", type=int, default=57600)
        p.add_argument("--password", type=lambda s: int(s, 0), default=0)
        p.add_argument("--address", type=lambda s: int(s, 0), default=0xFFFFFFFF)
        p.add_argument("--timeout", type=float, default=2.0, help="reply timeout (s)")

    info = sensor_sub.add_parser("info", help="handshake and print the module's parameters")
    sensor_options(info)
    info.set_defaults(func=_sensor_info)

    capture = sensor_sub.add_parser("capture", help="wait for a finger and save its image")
    sensor_options(capture)
    capture.add_argument("-o", "--output", type=Path, required=True, help="PNG file to write")
    capture.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a finger")
    capture.add_argument("--packet-size", type=int, choices=(32, 64, 128, 256))
    capture.set_defaults(func=_sensor_capture)

    scanner = subparsers.add_parser("scanner", help="QR / barcode scanner")
    scanner_sub = scanner.add_subparsers(dest="scanner_command", required=True, metavar="ACTION")
    listen = scanner_sub.add_parser("listen", help="print each scanned payload")
    listen.add_argument("--port", required=True)
    listen.add_argument("--baud", type=int, default=9600)
    listen.add_argument("--count", type=int, help="stop after this many payloads")
    listen.set_defaults(func=_scanner_listen)


def _sensor_config(args: argparse.Namespace, **extra: Any) -> SensorConfig:
    return SensorConfig(
        port=args.port,
        baudrate=args.baud,
        password=args.password,
        address=args.address,
        timeout=args.timeout,
        **extra,
    )


def _run(coro: Any) -> int:
    try:
        result: int = asyncio.run(coro)
    except ScanRetry as exc:
        print(f"Capture à refaire : {exc.advice}", file=sys.stderr)
        return 3
    except (DriverError, ValueError) as exc:
        print(f"Erreur du périphérique : {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _sensor_info(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with FingerprintSensor(_sensor_config(args)) as sensor:
            p = sensor.parameters
            count = await sensor.template_count()
        print(f"port: {args.port}")
        print(f"system id: {p.system_id:#06x}  status: {p.status:#06x}")
        print(f"address: {p.address:#010x}  baud: {p.baudrate}  packet size: {p.packet_size}")
        print(f"security level: {p.security_level}  templates: {count} / {p.capacity}")
        return 0

    return _run(run())


def _sensor_capture(args: argparse.Namespace) -> int:
    async def run() -> int:
        config = _sensor_config(args, packet_size=args.packet_size)
        async with FingerprintSensor(config) as sensor:
            print("Posez le doigt sur le capteur…", file=sys.stderr)
            image = await sensor.capture(finger_timeout=args.wait)
        Image.fromarray(image).save(args.output, dpi=(IMAGE_DPI, IMAGE_DPI))
        print(f"{args.output}: {image.shape[1]}x{image.shape[0]} px, {IMAGE_DPI} dpi")
        return 0

    return _run(run())


def _scanner_listen(args: argparse.Namespace) -> int:
    async def run() -> int:
        seen = 0

        def rejected(exc: ScanRejectedError) -> None:
            print(f"Lecture refusée : {exc.reason} ({exc.size} octets)", file=sys.stderr)

        config = ScannerConfig(port=args.port, baudrate=args.baud)
        async with (
            QrScanner(config) as scanner,
            contextlib.aclosing(scanner.payloads(on_rejected=rejected)) as payloads,
        ):
            print(f"En attente de lecture sur {args.port}…", file=sys.stderr, flush=True)
            async for payload in payloads:
                print(payload, flush=True)
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
        return 0

    return _run(run())
