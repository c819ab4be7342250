"""Serial drivers of the DR station's devices.

- Fingerprint sensor (R30x / ZFM / AS608 UART protocol): :class:`FingerprintSensor` with
  :class:`SensorConfig`; layers: ``r30x_commands`` (declarations), ``r30x_codec`` (sans-IO
  packets), ``r30x_image`` (4-bit images), ``serial_link`` (asyncio transport), ``sensor``
  (requests, retries, reconnect).
- QR / barcode scanner: :class:`QrScanner` with :class:`ScannerConfig` (``scanner_codec`` is
  its sans-IO line decoder).
- Exceptions (``errors``): :class:`ScanRetry` (present the finger again, with French advice)
  versus :class:`DeviceError` and its subclasses (the device or the line failed).
"""

from edge.drivers.errors import (
    CommandFailedError,
    DeviceError,
    DeviceGoneError,
    DeviceTimeoutError,
    DriverError,
    ProtocolError,
    RetryReason,
    ScannerError,
    ScanRejectedError,
    ScanRetry,
    WrongPasswordError,
)
from edge.drivers.r30x_commands import SystemParameters
from edge.drivers.scanner import QrScanner, ScannerConfig
from edge.drivers.sensor import FingerprintSensor, LedColour, LedMode, SearchHit
from edge.drivers.sensor_config import SensorConfig

__all__ = [
    "CommandFailedError",
    "DeviceError",
    "DeviceGoneError",
    "DeviceTimeoutError",
    "DriverError",
    "FingerprintSensor",
    "LedColour",
    "LedMode",
    "ProtocolError",
    "QrScanner",
    "RetryReason",
    "ScanRejectedError",
    "ScanRetry",
    "ScannerConfig",
    "ScannerError",
    "SearchHit",
    "SensorConfig",
    "SystemParameters",
    "WrongPasswordError",
]
