"""The simulated R30x module: a sans-IO device model.

``SensorModel.on_packet(packet)`` takes one decoded packet from the host and returns the packets
to send back (an acknowledgement, then data packets for UpImage / UpChar). It holds what a real
module holds: an image buffer, two character buffers, a flash library of templates, the system
parameters and the password. Commands and reply layouts come from ``edge.drivers``; every
acknowledgement has its command's fixed length, whatever the confirmation code.

What the finger on the glass looks like is the business of a :class:`FingerSource`; which
outcome the next captures have can be forced (faults) by the control channel.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from dr_sim.features import FeatureEngine, FeatureFailure
from edge.drivers.r30x_codec import Packet
from edge.drivers.r30x_commands import (
    COMMANDS,
    IMAGE_BYTES,
    MAX_SET_BAUD_MULTIPLIER,
    Command,
    Confirmation,
    PacketId,
    SysParam,
    SystemParameters,
    command_by_code,
)
from edge.drivers.r30x_image import pack_image, unpack_image

__all__ = ["CaptureFault", "FingerSource", "LedState", "PlacedFinger", "SensorModel"]

_log = logging.getLogger(__name__)

# Codes a module sends before the password is verified (not in the public table).
_PASSWORD_REQUIRED = 0x21


class FingerSource(Protocol):
    """``dr_sim.fingers.FingerSource``: each capture is a fresh (288, 256) uint8 impression."""

    def capture(self, rng: np.random.Generator) -> NDArray[np.uint8]: ...


@dataclass(frozen=True, slots=True)
class PlacedFinger:
    """A finger on the glass and the key that names it (for the identity feature engine)."""

    source: FingerSource
    key: str


class CaptureFault:
    """Forced capture outcomes, by the confirmation code they produce and the command that
    reports it."""

    NO_FINGER = Confirmation.NO_FINGER  # GenImg
    IMAGE_FAIL = Confirmation.IMAGE_FAIL  # GenImg
    MESSY_IMAGE = Confirmation.MESSY_IMAGE  # Img2Tz
    TOO_FEW_FEATURES = Confirmation.TOO_FEW_FEATURES  # Img2Tz


_GEN_IMG_FAULTS = frozenset({Confirmation.NO_FINGER, Confirmation.IMAGE_FAIL})


@dataclass(slots=True)
class _Download:
    """A DownChar / DownImage in progress: data packets from the host."""

    command: Command
    buffer: int
    data: bytearray = field(default_factory=bytearray)


@dataclass(slots=True)
class LedState:
    control: int = 0
    speed: int = 0
    colour: int = 0
    count: int = 0


class SensorModel:
    def __init__(
        self,
        *,
        engine: FeatureEngine,
        rng: np.random.Generator,
        params: SystemParameters | None = None,
        password: int = 0,
        has_led: bool = True,
    ) -> None:
        self.engine = engine
        self.rng = rng
        self.params = params or SystemParameters()
        self.password = password
        self.has_led = has_led
        self.library: dict[int, bytes] = {}  # flash: survives a power cycle
        self.finger: PlacedFinger | None = None
        self.auto_finger: PlacedFinger | None = None
        self.faults: collections.deque[Confirmation] = collections.deque()
        self.captures = 0
        self.led = LedState()
        self._handlers: dict[int, Callable[[Command, tuple[int, ...]], list[Packet]]] = {
            c.code: h
            for c, h in (
                (COMMANDS.GEN_IMG, self._gen_img),
                (COMMANDS.IMG2TZ, self._img2tz),
                (COMMANDS.MATCH, self._match),
                (COMMANDS.SEARCH, self._search),
                (COMMANDS.HI_SPEED_SEARCH, self._search),
                (COMMANDS.REG_MODEL, self._reg_model),
                (COMMANDS.STORE, self._store),
                (COMMANDS.LOAD_CHAR, self._load_char),
                (COMMANDS.UP_CHAR, self._up_char),
                (COMMANDS.DOWN_CHAR, self._down),
                (COMMANDS.UP_IMAGE, self._up_image),
                (COMMANDS.DOWN_IMAGE, self._down),
                (COMMANDS.DELET_CHAR, self._delet_char),
                (COMMANDS.EMPTY, self._empty),
                (COMMANDS.SET_SYS_PARA, self._set_sys_para),
                (COMMANDS.READ_SYS_PARA, self._read_sys_para),
                (COMMANDS.SET_PWD, self._set_pwd),
                (COMMANDS.VFY_PWD, self._vfy_pwd),
                (COMMANDS.GET_RANDOM_CODE, self._random_code),
                (COMMANDS.SET_ADDER, self._set_adder),
                (COMMANDS.TEMPLATE_NUM, self._template_num),
                (COMMANDS.READ_INDEX_TABLE, self._read_index_table),
                (COMMANDS.AURA_LED_CONFIG, self._led),
            )
        }
        self.power_cycle()

    def power_cycle(self) -> None:
        """What an unplug loses: RAM buffers and the password check (not the flash)."""
        self.image: NDArray[np.uint8] | None = None
        self.image_key: str | None = None
        self.buffers: dict[int, bytes | None] = {1: None, 2: None}
        self.verified = self.password == 0
        self._pending_quality: Confirmation | None = None
        self._download: _Download | None = None

    # entry points ---------------------------------------------------------------------
    def on_packet(self, packet: Packet) -> list[Packet]:
        if packet.address != self.params.address:
            return []  # addressed to another module on the bus
        if packet.packet_id in (PacketId.DATA, PacketId.END_DATA):
            self._on_data(packet)
            return []
        if packet.packet_id is not PacketId.COMMAND or not packet.payload:
            return []
        self._download = None  # a command ends any transfer the host abandoned
        command = command_by_code(packet.payload[0])
        if command is None:
            return [self._raw_ack(Confirmation.RECEIVE_ERROR)]
        if len(packet.payload) < 1 + command.params.size:
            return [self._ack(command, Confirmation.RECEIVE_ERROR)]
        if not self.verified and command is not COMMANDS.VFY_PWD:
            return [self._ack(command, _PASSWORD_REQUIRED)]
        return self._handlers[command.code](command, command.decode_params(packet.payload))

    def on_bad_frame(self) -> list[Packet]:
        """A frame with a bad checksum: the module answers "packet receive error"."""
        if self._download is not None:
            self._download = None  # the transfer is lost; the host starts again
            return []
        return [self._raw_ack(Confirmation.RECEIVE_ERROR)]

    # helpers --------------------------------------------------------------------------
    def _packet(self, packet_id: PacketId, payload: bytes) -> Packet:
        return Packet(packet_id, payload, self.params.address)

    def _raw_ack(self, code: int) -> Packet:
        return self._packet(PacketId.ACK, bytes([code]))

    def _ack(self, command: Command, code: int, *fields: int | bytes) -> Packet:
        body = command.reply.pack(*fields) if fields else bytes(command.reply.size)
        return self._packet(PacketId.ACK, bytes([code]) + body)

    def _data(self, data: bytes) -> list[Packet]:
        size = self.params.packet_size
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        return [
            self._packet(PacketId.END_DATA if i == len(chunks) - 1 else PacketId.DATA, c)
            for i, c in enumerate(chunks)
        ]

    def _valid_buffer(self, buffer: int) -> bool:
        return buffer in self.buffers

    # commands -------------------------------------------------------------------------
    def _gen_img(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        fault = self.faults.popleft() if self.faults else None
        if fault in _GEN_IMG_FAULTS:
            assert fault is not None
            return [self._ack(command, fault)]
        finger = self.finger or self.auto_finger
        if finger is None:
            return [self._ack(command, Confirmation.NO_FINGER)]
        self.image = finger.source.capture(self.rng)
        self.image_key = finger.key
        self._pending_quality = fault  # messy / too few features: reported by Img2Tz
        self.captures += 1
        return [self._ack(command, Confirmation.OK)]

    def _img2tz(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        (buffer,) = params
        if not self._valid_buffer(buffer):
            return [self._ack(command, Confirmation.BAD_REGISTER)]
        if self.image is None or self.image_key is None:
            return [self._ack(command, Confirmation.NO_VALID_IMAGE)]
        if self._pending_quality is not None:
            code, self._pending_quality = self._pending_quality, None
            return [self._ack(command, code)]
        features = self.engine.extract(self.image, finger_key=self.image_key, rng=self.rng)
        if isinstance(features, FeatureFailure):
            return [self._ack(command, features.code)]
        self.buffers[buffer] = features
        return [self._ack(command, Confirmation.OK)]

    def _match(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        a, b = self.buffers[1], self.buffers[2]
        score = 0 if a is None or b is None else self.engine.score(a, b)
        if score < self.engine.threshold:
            return [self._ack(command, Confirmation.NO_MATCH, 0)]
        return [self._ack(command, Confirmation.OK, score)]

    def _search(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        buffer, start, count = params
        probe = self.buffers.get(buffer)
        if probe is None:
            return [self._ack(command, Confirmation.NOT_FOUND, 0, 0)]
        end = min(start + count, self.params.capacity)
        best_page, best = 0, -1
        for page in sorted(p for p in self.library if start <= p < end):
            score = self.engine.score(probe, self.library[page])
            if score > best:
                best_page, best = page, score
        if best < self.engine.threshold:
            return [self._ack(command, Confirmation.NOT_FOUND, 0, 0)]
        return [self._ack(command, Confirmation.OK, best_page, min(best, 0xFFFF))]

    def _reg_model(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        a, b = self.buffers[1], self.buffers[2]
        if a is None or b is None or self.engine.score(a, b) < self.engine.threshold:
            return [self._ack(command, Confirmation.MERGE_FAILED)]
        merged = self.engine.merge(a, b)
        self.buffers[1] = self.buffers[2] = merged
        return [self._ack(command, Confirmation.OK)]

    def _store(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        buffer, page = params
        if not self._valid_buffer(buffer):
            return [self._ack(command, Confirmation.BAD_REGISTER)]
        if page >= self.params.capacity:
            return [self._ack(command, Confirmation.BAD_PAGE)]
        template = self.buffers[buffer]
        if template is None:
            return [self._ack(command, Confirmation.TEMPLATE_READ_ERROR)]
        self.library[page] = template
        return [self._ack(command, Confirmation.OK)]

    def _load_char(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        buffer, page = params
        if not self._valid_buffer(buffer):
            return [self._ack(command, Confirmation.BAD_REGISTER)]
        if page >= self.params.capacity:
            return [self._ack(command, Confirmation.BAD_PAGE)]
        if page not in self.library:
            return [self._ack(command, Confirmation.TEMPLATE_READ_ERROR)]
        self.buffers[buffer] = self.library[page]
        return [self._ack(command, Confirmation.OK)]

    def _up_char(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        (buffer,) = params
        template = self.buffers.get(buffer)
        if template is None:
            return [self._ack(command, Confirmation.TEMPLATE_UPLOAD_ERROR)]
        return [self._ack(command, Confirmation.OK), *self._data(template)]

    def _up_image(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        if self.image is None:
            return [self._ack(command, Confirmation.IMAGE_UPLOAD_ERROR)]
        return [self._ack(command, Confirmation.OK), *self._data(pack_image(self.image))]

    def _down(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        buffer = params[0] if params else 0
        if command is COMMANDS.DOWN_CHAR and not self._valid_buffer(buffer):
            return [self._ack(command, Confirmation.BAD_REGISTER)]
        self._download = _Download(command, buffer)
        return [self._ack(command, Confirmation.OK)]

    def _on_data(self, packet: Packet) -> None:
        download = self._download
        if download is None:
            return
        download.data += packet.payload
        if packet.packet_id is not PacketId.END_DATA:
            return
        self._download = None
        data = bytes(download.data)
        if download.command is COMMANDS.DOWN_CHAR:
            self.buffers[download.buffer] = data
        elif len(data) == IMAGE_BYTES:
            self.image = unpack_image(data)
            self.image_key = "image:" + hashlib.sha256(data).hexdigest()
            self._pending_quality = None
        else:
            _log.warning("DownImage of %d bytes ignored (expected %d)", len(data), IMAGE_BYTES)

    def _delet_char(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        page, count = params
        if page + count > self.params.capacity:
            return [self._ack(command, Confirmation.BAD_PAGE)]
        for p in range(page, page + count):
            self.library.pop(p, None)
        return [self._ack(command, Confirmation.OK)]

    def _empty(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        self.library.clear()
        return [self._ack(command, Confirmation.OK)]

    def _set_sys_para(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        number, value = params
        fields = {
            SysParam.BAUD: ("baud_multiplier", range(1, MAX_SET_BAUD_MULTIPLIER + 1)),
            SysParam.SECURITY_LEVEL: ("security_level", range(1, 6)),
            SysParam.PACKET_SIZE: ("packet_size_code", range(4)),
        }
        if number not in fields or value not in fields[SysParam(number)][1]:
            return [self._ack(command, Confirmation.BAD_REGISTER)]
        name = fields[SysParam(number)][0]
        reply = self._ack(command, Confirmation.OK)  # sent with the old settings
        self.params = dataclasses.replace(self.params, **{name: value})
        return [reply]

    def _read_sys_para(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        return [self._ack(command, Confirmation.OK, *self.params.fields())]

    def _set_pwd(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        (self.password,) = params
        return [self._ack(command, Confirmation.OK)]

    def _vfy_pwd(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        (password,) = params
        self.verified = password == self.password
        code = Confirmation.OK if self.verified else Confirmation.WRONG_PASSWORD
        return [self._ack(command, code)]

    def _random_code(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        return [self._ack(command, Confirmation.OK, int(self.rng.integers(0, 2**32)))]

    def _set_adder(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        (address,) = params
        self.params = dataclasses.replace(self.params, address=address)
        return [self._ack(command, Confirmation.OK)]  # from the new address, as modules do

    def _template_num(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        return [self._ack(command, Confirmation.OK, len(self.library))]

    def _read_index_table(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        (index,) = params
        if index > 3:
            return [self._ack(command, Confirmation.BAD_REGISTER)]
        bitmap = bytearray(32)
        for page in self.library:
            offset = page - index * 256
            if 0 <= offset < 256:
                bitmap[offset // 8] |= 1 << (offset % 8)
        return [self._ack(command, Confirmation.OK, bytes(bitmap))]

    def _led(self, command: Command, params: tuple[int, ...]) -> list[Packet]:
        if not self.has_led:
            return [self._ack(command, Confirmation.BAD_REGISTER)]
        control, speed, colour, count = params
        self.led = LedState(control, speed, colour, count)
        return [self._ack(command, Confirmation.OK)]
