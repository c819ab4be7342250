"""``dr-sim``: run a simulated device behind a pseudo-terminal.

    dr-sim sensor  --link /tmp/dr-sensor  [--control /tmp/dr-sensor.ctl] [--auto-finger 7]
    dr-sim scanner --link /tmp/dr-scanner [--control /tmp/dr-scanner.ctl]
    dr-sim ctl /tmp/dr-sensor.ctl place synthetic 7

The device serves until SIGINT or SIGTERM, then removes its link and control socket.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from dr_sim.control import ControlError, control_command
from dr_sim.features import BiometricsEngine, FeatureEngine, IdentityEngine
from dr_sim.scanner_sim import EOLS, ScannerSimulator
from dr_sim.sensor_sim import SensorSimulator
from dr_sim.serial_device import SerialDevice

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dr-sim", description="DR hardware simulator")
    sub = parser.add_subparsers(dest="device", required=True, metavar="DEVICE")

    def common(p: argparse.ArgumentParser, baud: int) -> None:
        p.add_argument("--link", type=Path, required=True, help="symlink to create to the pty")
        p.add_argument("--control", type=Path, help="Unix socket for control commands")
        p.add_argument("--baud", type=int, default=baud, help=f"line rate (default {baud})")
        p.add_argument("--pace", action="store_true", help="pace output at the line rate")
        p.add_argument("-v", "--verbose", action="store_true")

    sensor = sub.add_parser("sensor", help="R30x fingerprint sensor")
    common(sensor, 57600)
    sensor.add_argument("--seed", type=int, default=0, help="seed of the device's randomness")
    sensor.add_argument(
        "--auto-finger",
        type=int,
        metavar="SEED",
        help="a synthetic finger is on the sensor at every capture (a fresh impression each time)",
    )
    sensor.add_argument("--packet-size", type=int, default=128, choices=(32, 64, 128, 256))
    sensor.add_argument("--capacity", type=int, default=1000, help="template library size")
    sensor.add_argument("--password", type=lambda s: int(s, 0), default=0)
    sensor.add_argument(
        "--matcher",
        choices=("identity", "biometrics"),
        default="identity",
        help="features: by finger identity (fast), or edge.biometrics",
    )
    sensor.add_argument("--no-led", action="store_true", help="a module without LED ring")

    scanner = sub.add_parser("scanner", help="QR / barcode scanner")
    common(scanner, 9600)
    scanner.add_argument("--eol", choices=sorted(EOLS), default="crlf")

    ctl = sub.add_parser("ctl", help="send one control command to a running simulator")
    ctl.add_argument("socket", type=Path)
    ctl.add_argument("words", nargs="+")
    return parser


def _make_device(args: argparse.Namespace) -> SerialDevice:
    if args.device == "scanner":
        return ScannerSimulator(
            link=args.link, control=args.control, baudrate=args.baud, pace=args.pace, eol=args.eol
        )
    engine: FeatureEngine = BiometricsEngine() if args.matcher == "biometrics" else IdentityEngine()
    return SensorSimulator(
        link=args.link,
        control=args.control,
        baudrate=args.baud,
        pace=args.pace,
        seed=args.seed,
        packet_size=args.packet_size,
        capacity=args.capacity,
        password=args.password,
        engine=engine,
        auto_finger=args.auto_finger,
        has_led=not args.no_led,
    )


async def _serve(device: SerialDevice) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, device.stop)

    def announce(slave: str) -> None:
        control = f", control {device.control_path}" if device.control_path else ""
        print(f"{device.kind}: {device.link} -> {slave}{control}", flush=True)

    await device.run(announce=announce)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "ctl":
        try:
            print(control_command(args.socket, *args.words))
        except (ControlError, OSError) as exc:
            print(f"dr-sim: {exc}", file=sys.stderr)
            return 1
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        device = _make_device(args)
    except (ValueError, ImportError, OSError) as exc:
        print(f"dr-sim: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
