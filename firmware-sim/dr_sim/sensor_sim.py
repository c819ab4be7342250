"""The simulated fingerprint sensor: the R30x device model behind a pty, with its controls.

Bytes from the host go through the same packet decoder as the driver's (``edge.drivers``),
then to :class:`~dr_sim.sensor_model.SensorModel`; its replies are encoded with the same codec.
Control commands (besides those of :class:`~dr_sim.serial_device.SerialDevice`)::

    place synthetic SEED | place image PATH | lift | auto SEED | auto off
    fault nofinger|imagefail|messy|fewfeatures [COUNT]
    stuck on|off
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from dr_sim.control import ControlCommandError
from dr_sim.features import FeatureEngine, IdentityEngine
from dr_sim.finger_factory import FingerFactory, LibraryFingers
from dr_sim.sensor_model import SensorModel
from dr_sim.serial_device import SerialDevice
from edge.drivers.r30x_codec import Packet, PacketDecoder, RejectReason
from edge.drivers.r30x_commands import (
    MAX_BAUD_MULTIPLIER,
    PACKET_SIZES,
    Confirmation,
    SystemParameters,
)

__all__ = ["FAULT_KINDS", "SensorSimulator"]

FAULT_KINDS: dict[str, Confirmation] = {
    "nofinger": Confirmation.NO_FINGER,
    "imagefail": Confirmation.IMAGE_FAIL,
    "messy": Confirmation.MESSY_IMAGE,
    "fewfeatures": Confirmation.TOO_FEW_FEATURES,
}

# A module drops a half-received command after this much silence.
_DEVICE_STALE_S = 1.0


class SensorSimulator(SerialDevice):
    kind = "sensor"

    def __init__(
        self,
        *,
        link: Path,
        control: Path | None = None,
        baudrate: int = 57600,
        pace: bool = False,
        seed: int = 0,
        packet_size: int = 128,
        capacity: int = 1000,
        password: int = 0,
        engine: FeatureEngine | None = None,
        fingers: FingerFactory | None = None,
        auto_finger: int | None = None,
        has_led: bool = True,
    ) -> None:
        super().__init__(link=link, control=control, baudrate=baudrate, pace=pace)
        if packet_size not in PACKET_SIZES:
            raise ValueError(f"packet size must be one of {PACKET_SIZES}")
        if baudrate % 9600 or not 1 <= baudrate // 9600 <= MAX_BAUD_MULTIPLIER:
            raise ValueError(f"baud rate must be 9600 x N, N in 1..96; got {baudrate}")
        params = SystemParameters(
            capacity=capacity,
            packet_size_code=PACKET_SIZES.index(packet_size),
            baud_multiplier=baudrate // 9600,
        )
        self.fingers = fingers or LibraryFingers()
        self.model = SensorModel(
            engine=engine or IdentityEngine(),
            rng=np.random.default_rng(seed),
            params=params,
            password=password,
            has_led=has_led,
        )
        if auto_finger is not None:
            self.model.auto_finger = self.fingers.synthetic(auto_finger)
        self.stuck = False
        self._decoder = PacketDecoder()
        self._last_rx = time.monotonic()

    def line_baudrate(self) -> int:
        return self.model.params.baudrate

    def on_unplug(self) -> None:
        self.model.power_cycle()
        self._decoder.reset()

    def on_bytes(self, data: bytes) -> None:
        if self.stuck:
            return  # a hung module: reads nothing, answers nothing
        now = time.monotonic()
        if self._decoder.pending and now - self._last_rx > _DEVICE_STALE_S:
            self._decoder.reset()
        self._last_rx = now
        for event in self._decoder.feed(data):
            if isinstance(event, Packet):
                replies = self.model.on_packet(event)
            elif event.reason is RejectReason.BAD_CHECKSUM:
                replies = self.model.on_bad_frame()
            else:
                continue
            if replies:
                self.send(b"".join(p.encode() for p in replies))

    async def command(self, words: list[str]) -> str:
        name, args = words[0], words[1:]
        model = self.model
        if name == "place":
            if len(args) != 2 or args[0] not in ("synthetic", "image"):
                raise ControlCommandError("usage: place synthetic SEED | place image PATH")
            # In a thread: preparing a finger takes a while, the line must stay served.
            if args[0] == "synthetic":
                model.finger = await asyncio.to_thread(self.fingers.synthetic, int(args[1]))
            else:
                model.finger = await asyncio.to_thread(self.fingers.image, Path(args[1]))
            return model.finger.key
        if name == "lift":
            model.finger = None
            return ""
        if name == "auto":
            if len(args) != 1:
                raise ControlCommandError("usage: auto SEED | auto off")
            model.auto_finger = (
                None
                if args[0] == "off"
                else await asyncio.to_thread(self.fingers.synthetic, int(args[0]))
            )
            return ""
        if name == "fault":
            if not 1 <= len(args) <= 2 or args[0] not in FAULT_KINDS:
                raise ControlCommandError(f"usage: fault {'|'.join(FAULT_KINDS)} [COUNT]")
            count = int(args[1]) if len(args) == 2 else 1
            model.faults.extend([FAULT_KINDS[args[0]]] * count)
            return ""
        if name == "stuck":
            if args not in (["on"], ["off"]):
                raise ControlCommandError("usage: stuck on|off")
            self.stuck = args == ["on"]
            self._decoder.reset()
            return ""
        return await super().command(words)

    def help(self) -> str:
        return (
            "place synthetic SEED | place image PATH | lift | auto SEED|off"
            f" | fault {'|'.join(FAULT_KINDS)} [COUNT] | stuck on|off | " + super().help()
        )

    def status(self) -> dict[str, object]:
        model = self.model
        finger = model.finger or model.auto_finger
        return {
            **super().status(),
            "finger": finger.key if finger else "-",
            "captures": model.captures,
            "templates": len(model.library),
            "pending_faults": len(model.faults),
            "stuck": int(self.stuck),
            "led": f"{model.led.control},{model.led.colour}",
            "packet_size": model.params.packet_size,
            "baud": model.params.baudrate,
        }
