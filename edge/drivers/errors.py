"""Exceptions of the serial drivers.

Two families, as libfprint has them: :class:`ScanRetry` means the person should present the
finger again (nothing is wrong with the device); :class:`DeviceError` means the device or the
line failed. A timeout is a :class:`DeviceTimeoutError`, also a :class:`TimeoutError`.
"""

from __future__ import annotations

import enum

__all__ = [
    "CommandFailedError",
    "DeviceError",
    "DeviceGoneError",
    "DeviceTimeoutError",
    "DriverError",
    "ProtocolError",
    "RetryReason",
    "ScanRejectedError",
    "ScanRetry",
    "ScannerError",
    "WrongPasswordError",
]


class DriverError(Exception):
    """Base of every exception raised by edge.drivers."""


class RetryReason(enum.Enum):
    """Why a capture should be tried again, with the advice shown to the agent (French)."""

    NO_FINGER = "Posez le doigt sur le capteur."
    IMAGE_FAIL = "Image illisible : reposez le doigt à plat."
    MESSY_IMAGE = "Image trop floue : nettoyez le capteur et reposez le doigt sans bouger."
    TOO_FEW_FEATURES = "Pas assez de détails : appuyez un peu plus et centrez le doigt."
    ENROL_MISMATCH = "Les deux captures ne concordent pas : reposez le même doigt."

    @property
    def advice(self) -> str:
        return self.value


class ScanRetry(DriverError):  # noqa: N818 - a request to scan again, not an error
    """The capture did not give a usable print; presenting the finger again may."""

    def __init__(self, reason: RetryReason) -> None:
        super().__init__(f"scan again: {reason.name.lower()}")
        self.reason = reason

    @property
    def advice(self) -> str:
        return self.reason.advice


class DeviceError(DriverError):
    """The device or the line failed."""

    def __init__(self, message: str, *, port: str | None = None) -> None:
        super().__init__(message if port is None else f"{port}: {message}")
        self.port = port


class DeviceTimeoutError(DeviceError, TimeoutError):
    """No valid reply within the timeout (after the configured retries)."""

    def __init__(self, *, command: str, timeout: float, attempts: int, port: str | None) -> None:
        super().__init__(
            f"no valid reply to {command} within {timeout:.3g} s ({attempts} attempt(s))",
            port=port,
        )
        self.command = command
        self.timeout = timeout
        self.attempts = attempts


class ProtocolError(DeviceError):
    """A reply that does not fit the protocol (wrong packet type, short payload...)."""


class CommandFailedError(ProtocolError):
    """The device answered a command with a failure confirmation code."""

    def __init__(self, *, command: str, code: int, port: str | None) -> None:
        super().__init__(f"{command} failed with confirmation code {code:#04x}", port=port)
        self.command = command
        self.code = code


class WrongPasswordError(DeviceError):
    """VfyPwd refused the configured password."""


class DeviceGoneError(DeviceError):
    """The device disappeared (unplugged) or cannot be opened."""


class ScannerError(DriverError):
    """Base of the QR/barcode scanner errors."""


class ScanRejectedError(ScannerError):
    """A scanned line was refused (too long, binary); the scanner keeps running."""

    def __init__(self, *, reason: str, size: int) -> None:
        super().__init__(f"scanned line rejected ({size} bytes): {reason}")
        self.reason = reason
        self.size = size
