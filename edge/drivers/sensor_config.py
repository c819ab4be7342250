"""Configuration of the fingerprint sensor driver."""

from __future__ import annotations

from dataclasses import dataclass

from edge.drivers.r30x_codec import DEFAULT_ADDRESS
from edge.drivers.r30x_commands import MAX_BAUD_MULTIPLIER, PACKET_SIZES

__all__ = ["SensorConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorConfig:
    """Where and how to talk to an R30x-family module.

    ``packet_size`` None means "as the module reports it" (ReadSysPara); a value (32, 64, 128 or
    256) is written to the module with SetSysPara at handshake.
    """

    port: str
    baudrate: int = 57600
    address: int = DEFAULT_ADDRESS
    password: int = 0
    packet_size: int | None = None
    timeout: float = 2.0  # for each reply / data packet; host libraries use 1-2 s
    retries: int = 2  # further attempts after a lost, corrupted or timed-out reply
    finger_poll_interval: float = 0.05  # between two GenImg while waiting for a finger
    reconnect_timeout: float = 10.0  # how long to wait for an unplugged module to return
    reconnect_poll_interval: float = 0.1

    def __post_init__(self) -> None:
        if self.baudrate % 9600 or not 1 <= self.baudrate // 9600 <= MAX_BAUD_MULTIPLIER:
            raise ValueError(f"baud rate must be 9600 x N, N in 1..96; got {self.baudrate}")
        if not 0 <= self.address <= 0xFFFFFFFF:
            raise ValueError(f"address must be a 32-bit value, got {self.address:#x}")
        if not 0 <= self.password <= 0xFFFFFFFF:
            raise ValueError("password must be a 32-bit value")
        if self.packet_size is not None and self.packet_size not in PACKET_SIZES:
            raise ValueError(f"packet size must be one of {PACKET_SIZES}, got {self.packet_size}")
        if self.timeout <= 0 or self.retries < 0:
            raise ValueError("timeout must be positive and retries non-negative")

    @property
    def byte_time(self) -> float:
        """Seconds one byte takes on the line (8N1: 10 bits)."""
        return 10 / self.baudrate

    @property
    def quiet_time(self) -> float:
        """Silence after which an interrupted transfer is known to be over: four 256-byte
        packets' worth of line time, and at least 50 ms (USB-serial adapters batch bytes)."""
        return max(0.05, 4 * 265 * self.byte_time)
