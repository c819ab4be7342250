"""Client of an R30x / ZFM / AS608 fingerprint module: requests, timeouts, retries, reconnect.

One exchange at a time (a lock): discard stale input, write the command, wait for its
acknowledgement (and its data packets). A lost, corrupted or timed-out reply, or a "packet
receive error" confirmation, is retried ``config.retries`` times; an unplugged module is
reopened (and the handshake replayed) for up to ``config.reconnect_timeout`` seconds, inside the
same call, so the daemon never restarts for it.

Typical use::

    async with FingerprintSensor(SensorConfig(port="/dev/ttyUSB0")) as sensor:
        image = await sensor.capture(finger_timeout=30)   # (288, 256) uint8
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from edge.drivers.errors import (
    CommandFailedError,
    DeviceError,
    DeviceGoneError,
    DeviceTimeoutError,
    ProtocolError,
    RetryReason,
    ScanRetry,
    WrongPasswordError,
)
from edge.drivers.r30x_codec import Packet, PacketDecoder, Rejected, RejectReason, encode_packet
from edge.drivers.r30x_commands import (
    COMMANDS,
    IMAGE_BYTES,
    PACKET_SIZES,
    Command,
    Confirmation,
    PacketId,
    SysParam,
    SystemParameters,
)
from edge.drivers.r30x_image import pack_image, unpack_image
from edge.drivers.sensor_config import SensorConfig
from edge.drivers.serial_link import DecodingLink, Opener, open_link, serial_opener

__all__ = ["FingerprintSensor", "LedColour", "LedMode", "SearchHit"]

_log = logging.getLogger(__name__)

# Confirmation codes that mean "present the finger again", not "the device failed".
_RETRY_REASONS: dict[int, RetryReason] = {
    Confirmation.NO_FINGER: RetryReason.NO_FINGER,
    Confirmation.IMAGE_FAIL: RetryReason.IMAGE_FAIL,
    Confirmation.MESSY_IMAGE: RetryReason.MESSY_IMAGE,
    Confirmation.TOO_FEW_FEATURES: RetryReason.TOO_FEW_FEATURES,
    Confirmation.NO_VALID_IMAGE: RetryReason.IMAGE_FAIL,
    Confirmation.MERGE_FAILED: RetryReason.ENROL_MISMATCH,
}

_Event = Packet | Rejected

# A module that vanishes again after every reopen is broken, not being replugged.
_MAX_REPLUGS_PER_CALL = 3


@dataclass(frozen=True, slots=True)
class SearchHit:
    page: int
    score: int


class LedMode:
    """AuraLedConfig control codes (R503 LED ring)."""

    BREATHING = 1
    FLASHING = 2
    ON = 3
    OFF = 4
    FADE_IN = 5
    FADE_OUT = 6


class LedColour:
    RED = 1
    BLUE = 2
    PURPLE = 3


@dataclass(frozen=True, slots=True)
class _Reply:
    code: int
    fields: tuple[int | bytes, ...]


class _AttemptFailedError(Exception):
    """One attempt of an exchange failed in a way a retry may cure."""


class FingerprintSensor:
    """Driver of one module. Use as an async context manager, or ``open()`` / ``close()``."""

    def __init__(self, config: SensorConfig, *, opener: Opener | None = None) -> None:
        self.config = config
        self._opener = opener or serial_opener(baudrate=config.baudrate)
        self._link: DecodingLink[_Event] | None = None
        self._lock = asyncio.Lock()
        self._params: SystemParameters | None = None
        self.reconnects = 0

    # lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> FingerprintSensor:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> SystemParameters:
        """Open the port and run the handshake (VfyPwd, ReadSysPara)."""
        async with self._lock:
            return await self._connect()

    async def close(self) -> None:
        async with self._lock:
            link, self._link = self._link, None
            if link is not None:
                await link.close()

    @property
    def is_connected(self) -> bool:
        """Whether the port is open (False once the module is unplugged, until a call
        reopens it): for the station's sensor-state telemetry."""
        return self._link is not None and self._link.is_open

    @property
    def parameters(self) -> SystemParameters:
        """The module's parameters as read at the last handshake."""
        if self._params is None:
            raise DeviceError("sensor is not open", port=self.config.port)
        return self._params

    async def _connect(self) -> SystemParameters:
        link = await open_link(
            self.config.port,
            PacketDecoder(),
            opener=self._opener,
            stale_after=max(0.2, 64 * self.config.byte_time),
        )
        self._link = link
        try:
            return await self._handshake()
        except BaseException:
            self._link = None
            await link.close()
            raise

    async def _handshake(self) -> SystemParameters:
        reply = await self._exchange(COMMANDS.VFY_PWD, self.config.password, reconnect=False)
        if reply.code == Confirmation.WRONG_PASSWORD:
            raise WrongPasswordError("the module refused the password", port=self.config.port)
        self._check(COMMANDS.VFY_PWD, reply)
        params = await self._read_sys_params()
        wanted = self.config.packet_size
        if wanted is not None and wanted != params.packet_size:
            code = PACKET_SIZES.index(wanted)
            reply = await self._exchange(
                COMMANDS.SET_SYS_PARA, SysParam.PACKET_SIZE, code, reconnect=False
            )
            self._check(COMMANDS.SET_SYS_PARA, reply)
            params = await self._read_sys_params()
        self._params = params
        return params

    async def _read_sys_params(self) -> SystemParameters:
        reply = await self._exchange(COMMANDS.READ_SYS_PARA, reconnect=False)
        self._check(COMMANDS.READ_SYS_PARA, reply)
        try:
            return SystemParameters.from_fields(reply.fields)
        except ValueError as exc:
            raise ProtocolError(f"bad ReadSysPara reply: {exc}", port=self.config.port) from exc

    async def _reconnect(self) -> None:
        """Reopen the port of a module that went away, waiting for it to come back."""
        old, self._link = self._link, None
        if old is not None:
            await old.close()
        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.reconnect_timeout
        last: Exception | None = None
        while True:
            try:
                await self._connect()
            except (DeviceGoneError, DeviceTimeoutError) as exc:
                last = exc
            else:
                self.reconnects += 1
                _log.info("%s: sensor reconnected", cfg.port)
                return
            if loop.time() >= deadline:
                raise DeviceGoneError(
                    f"not back after {cfg.reconnect_timeout:.3g} s ({last})", port=cfg.port
                )
            await asyncio.sleep(cfg.reconnect_poll_interval)

    # exchanges ------------------------------------------------------------------------
    async def _ensure_link(self, *, reconnect: bool) -> DecodingLink[_Event]:
        link = self._link
        if link is not None and link.is_open:
            return link
        if not reconnect:
            raise DeviceGoneError("link lost", port=self.config.port)
        await self._reconnect()
        assert self._link is not None
        return self._link

    def _send(self, link: DecodingLink[_Event], packet_id: PacketId, payload: bytes) -> None:
        link.send(encode_packet(packet_id, payload, address=self.config.address))

    async def _next_packet(self, link: DecodingLink[_Event], *, in_transfer: bool) -> Packet:
        """The next packet; in a transfer a rejected frame means data was lost."""
        while True:
            try:
                async with asyncio.timeout(self.config.timeout):
                    event = await link.receive()
            except TimeoutError:
                raise _AttemptFailedError("timeout") from None
            if isinstance(event, Packet):
                return event
            if in_transfer and event.reason is not RejectReason.GARBAGE:
                raise _AttemptFailedError(f"data lost: {event.reason.value}")

    async def _attempt(
        self,
        link: DecodingLink[_Event],
        command: Command,
        params: tuple[int, ...],
        *,
        upload: int | None,
        download: bytes | None,
    ) -> tuple[_Reply, bytes]:
        link.discard_input()
        self._send(link, PacketId.COMMAND, command.encode_params(*params))
        ack = await self._next_packet(link, in_transfer=False)
        if ack.packet_id is not PacketId.ACK or not ack.payload:
            raise _AttemptFailedError(f"unexpected packet {ack.packet_id.name}")
        code = ack.payload[0]
        if code == Confirmation.RECEIVE_ERROR:
            raise _AttemptFailedError("module reports a receive error")
        body = ack.payload[1:]
        if len(body) < command.reply.size:
            if code == Confirmation.OK:
                raise _AttemptFailedError(f"short {command.name} reply")
            body = body.ljust(command.reply.size, b"\0")
        reply = _Reply(code, command.reply.unpack(body[: command.reply.size]))
        if code != Confirmation.OK:
            return reply, b""
        if download is not None:
            size = self.parameters.packet_size
            chunks = [download[i : i + size] for i in range(0, len(download), size)] or [b""]
            for i, chunk in enumerate(chunks):
                last = i == len(chunks) - 1
                self._send(link, PacketId.END_DATA if last else PacketId.DATA, chunk)
            return reply, b""
        if upload is None:
            return reply, b""
        data = bytearray()
        while True:
            packet = await self._next_packet(link, in_transfer=True)
            if packet.packet_id not in (PacketId.DATA, PacketId.END_DATA):
                raise _AttemptFailedError(f"{packet.packet_id.name} packet inside a data transfer")
            data += packet.payload
            if packet.packet_id is PacketId.END_DATA:
                break
        if upload and len(data) != upload:
            raise _AttemptFailedError(f"transfer of {len(data)} bytes, expected {upload}")
        return reply, bytes(data)

    async def _drain(self, link: DecodingLink[_Event]) -> None:
        """Wait for the rest of an interrupted transfer to pass, then forget it."""
        loop = asyncio.get_running_loop()
        # Bounded: a module that streams garbage for ever is a failure, not a reason to hang.
        deadline = loop.time() + max(5.0, 20 * self.config.timeout)
        while loop.time() < deadline:
            try:
                async with asyncio.timeout(self.config.quiet_time):
                    await link.receive()
            except TimeoutError:
                break
            except DeviceGoneError:
                return  # the next attempt reopens the port
        link.discard_input()

    async def _exchange_full(
        self,
        command: Command,
        *params: int,
        upload: int | None = None,
        download: bytes | None = None,
        reconnect: bool = True,
    ) -> tuple[_Reply, bytes]:
        attempts = 1 + self.config.retries
        why = ""
        attempt = replugs = 0
        while attempt < attempts:
            link = await self._ensure_link(reconnect=reconnect)
            try:
                return await self._attempt(link, command, params, upload=upload, download=download)
            except DeviceGoneError:
                replugs += 1
                if not reconnect or replugs > _MAX_REPLUGS_PER_CALL:
                    raise
                # A replug is not a failed attempt: reopen (bounded by reconnect_timeout).
                _log.warning("%s: %s: device gone, reconnecting", self.config.port, command.name)
                await self._reconnect()
                continue
            except _AttemptFailedError as exc:
                attempt += 1
                why = str(exc)
                _log.info(
                    "%s: %s attempt %d/%d failed: %s",
                    self.config.port,
                    command.name,
                    attempt,
                    attempts,
                    why,
                )
                # Let the rest of a late or interrupted answer pass, so that it is not taken
                # for the answer to the next attempt (the protocol has no sequence numbers).
                if link.is_open:
                    await self._drain(link)
        if why == "timeout":
            raise DeviceTimeoutError(
                command=command.name,
                timeout=self.config.timeout,
                attempts=attempts,
                port=self.config.port,
            )
        raise ProtocolError(f"{command.name}: {why} ({attempts} attempt(s))", port=self.config.port)

    async def _exchange(self, command: Command, *params: int, reconnect: bool = True) -> _Reply:
        reply, _ = await self._exchange_full(command, *params, reconnect=reconnect)
        return reply

    def _check(self, command: Command, reply: _Reply) -> None:
        if reply.code == Confirmation.OK:
            return
        reason = _RETRY_REASONS.get(reply.code)
        if reason is not None:
            raise ScanRetry(reason)
        raise CommandFailedError(command=command.name, code=reply.code, port=self.config.port)

    async def _command(self, command: Command, *params: int) -> _Reply:
        async with self._lock:
            reply = await self._exchange(command, *params)
        self._check(command, reply)
        return reply

    # public commands ------------------------------------------------------------------
    async def handshake(self) -> SystemParameters:
        """VfyPwd then ReadSysPara (again); returns the module's parameters."""
        async with self._lock:
            await self._ensure_link(reconnect=True)
            return await self._handshake()

    async def read_system_parameters(self) -> SystemParameters:
        reply = await self._command(COMMANDS.READ_SYS_PARA)
        self._params = SystemParameters.from_fields(reply.fields)
        return self._params

    async def gen_img(self) -> None:
        """Capture an image into the module's image buffer (raises :class:`ScanRetry`
        ``NO_FINGER`` when nothing is on the sensor)."""
        await self._command(COMMANDS.GEN_IMG)

    async def wait_for_finger(self, *, finger_timeout: float | None = None) -> None:
        """Poll GenImg until a finger gives an image.

        Raises :class:`ScanRetry` (``NO_FINGER``) if none came within ``finger_timeout`` s, or
        ``IMAGE_FAIL`` when the module could not capture.
        """
        loop = asyncio.get_running_loop()
        deadline = None if finger_timeout is None else loop.time() + finger_timeout
        while True:
            try:
                await self.gen_img()
            except ScanRetry as exc:
                if exc.reason is not RetryReason.NO_FINGER:
                    raise
                if deadline is not None and loop.time() >= deadline:
                    raise
                await asyncio.sleep(self.config.finger_poll_interval)
            else:
                return

    async def upload_image(self) -> NDArray[np.uint8]:
        """UpImage: the module's image buffer as a (288, 256) uint8 array (values k * 17)."""
        async with self._lock:
            reply, data = await self._exchange_full(COMMANDS.UP_IMAGE, upload=IMAGE_BYTES)
        self._check(COMMANDS.UP_IMAGE, reply)
        return unpack_image(data)

    async def download_image(self, image: NDArray[np.uint8]) -> None:
        """DownImage: put a (288, 256) uint8 image into the module's image buffer."""
        data = pack_image(image)
        async with self._lock:
            reply, _ = await self._exchange_full(COMMANDS.DOWN_IMAGE, download=data)
        self._check(COMMANDS.DOWN_IMAGE, reply)

    async def capture(self, *, finger_timeout: float | None = None) -> NDArray[np.uint8]:
        """Wait for a finger, then upload its image.

        Returns
        -------
        image : (288, 256) ndarray of uint8

        Raises :class:`ScanRetry` for retry-worthy outcomes (no finger within ``finger_timeout``,
        image failure) and :class:`DeviceError` subclasses for failures.
        """
        for _ in range(_MAX_REPLUGS_PER_CALL):
            reconnects = self.reconnects
            await self.wait_for_finger(finger_timeout=finger_timeout)
            try:
                return await self.upload_image()
            except CommandFailedError:
                # Replugged between GenImg and UpImage: the module lost its image buffer.
                # Capture again rather than fail (only then: otherwise it is a real failure).
                if self.reconnects == reconnects:
                    raise
        raise DeviceGoneError("replugged during every capture", port=self.config.port)

    async def image_to_template(self, buffer: int = 1) -> None:
        """Img2Tz: features of the image buffer into char buffer 1 or 2 (:class:`ScanRetry`
        for a messy image or too few features)."""
        _check_buffer(buffer)
        await self._command(COMMANDS.IMG2TZ, buffer)

    async def register_model(self) -> None:
        """RegModel: merge char buffers 1 and 2 (:class:`ScanRetry` ``ENROL_MISMATCH`` if they
        are not the same finger)."""
        await self._command(COMMANDS.REG_MODEL)

    async def store(self, page: int, *, buffer: int = 1) -> None:
        _check_buffer(buffer)
        await self._command(COMMANDS.STORE, buffer, page)

    async def load(self, page: int, *, buffer: int = 1) -> None:
        _check_buffer(buffer)
        await self._command(COMMANDS.LOAD_CHAR, buffer, page)

    async def search(
        self, *, buffer: int = 1, start: int = 0, count: int | None = None
    ) -> SearchHit | None:
        """Search the library for char buffer ``buffer``; None when nothing matches."""
        _check_buffer(buffer)
        if count is None:
            count = self.parameters.capacity - start
        async with self._lock:
            reply = await self._exchange(COMMANDS.SEARCH, buffer, start, count)
        if reply.code == Confirmation.NOT_FOUND:
            return None
        self._check(COMMANDS.SEARCH, reply)
        page, score = reply.fields
        assert isinstance(page, int)
        assert isinstance(score, int)
        return SearchHit(page, score)

    async def match(self) -> int:
        """Match char buffers 1 and 2: the score, 0 when they do not match."""
        async with self._lock:
            reply = await self._exchange(COMMANDS.MATCH)
        if reply.code == Confirmation.NO_MATCH:
            return 0
        self._check(COMMANDS.MATCH, reply)
        score = reply.fields[0]
        assert isinstance(score, int)
        return score

    async def template_count(self) -> int:
        reply = await self._command(COMMANDS.TEMPLATE_NUM)
        count = reply.fields[0]
        assert isinstance(count, int)
        return count

    async def used_pages(self) -> set[int]:
        """Pages of the library holding a template (ReadIndexTable over the capacity)."""
        used: set[int] = set()
        for index_page in range((self.parameters.capacity + 255) // 256):
            reply = await self._command(COMMANDS.READ_INDEX_TABLE, index_page)
            bitmap = reply.fields[0]
            assert isinstance(bitmap, bytes)
            for i, byte in enumerate(bitmap):
                used.update(index_page * 256 + i * 8 + b for b in range(8) if byte >> b & 1)
        return used

    async def delete(self, page: int, count: int = 1) -> None:
        await self._command(COMMANDS.DELET_CHAR, page, count)

    async def empty(self) -> None:
        await self._command(COMMANDS.EMPTY)

    async def upload_template(self, buffer: int = 1) -> bytes:
        """UpChar: the bytes of a char buffer."""
        _check_buffer(buffer)
        async with self._lock:
            reply, data = await self._exchange_full(COMMANDS.UP_CHAR, buffer, upload=0)
        self._check(COMMANDS.UP_CHAR, reply)
        return data

    async def download_template(self, data: bytes, *, buffer: int = 1) -> None:
        """DownChar: load bytes (from :meth:`upload_template`) into a char buffer."""
        _check_buffer(buffer)
        async with self._lock:
            reply, _ = await self._exchange_full(COMMANDS.DOWN_CHAR, buffer, download=data)
        self._check(COMMANDS.DOWN_CHAR, reply)

    async def led(
        self, *, mode: int, colour: int = LedColour.BLUE, speed: int = 0x80, count: int = 0
    ) -> None:
        """AuraLedConfig (modules with an LED ring, e.g. R503). Modules without one answer
        with a failure code: :class:`CommandFailedError`."""
        await self._command(COMMANDS.AURA_LED_CONFIG, mode, speed, colour, count)


def _check_buffer(buffer: int) -> None:
    if buffer not in (1, 2):
        raise ValueError(f"char buffer must be 1 or 2, got {buffer}")
