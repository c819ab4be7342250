"""The DR daemon's configuration: a TOML file, defaults, validation and environment overrides.

Every value has a default except the device id; a wrong value raises :class:`ConfigError`
naming the key and the file. An environment variable ``DR_EDGE_<SECTION>_<KEY>`` (upper case)
overrides the file, e.g. ``DR_EDGE_CONSOLE_PORT=8081``; ``DR_EDGE_STATE_DIR`` (set by the
systemd unit) stands for ``DR_EDGE_DEVICE_STATE_DIR``.

Example (``dr-edge.toml``)::

    [device]
    id = "dr-91228-01"
    mairie = "Mairie d'Évry-Courcouronnes"
    state_dir = "/var/lib/dr-edge"
    bundle_dir = "/etc/dr-edge/device"   # written by `dr-central device provision --out`

    [sensor]
    port = "/dev/ttyUSB0"
    baud = 57600

    [scanner]
    port = "/dev/ttyACM0"

    [console]
    port = 8080

    [link]
    host = "central.example"
    port = 8883
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEVICE_ID_RE = re.compile(r"^dr-\d[0-9AB]\d{3}-\d{2}$")
ENV_PREFIX = "DR_EDGE_"


class ConfigError(ValueError):
    """A configuration value is missing or wrong; carries the file and the dotted key."""

    def __init__(self, message: str, *, key: str, file: Path | None) -> None:
        where = f"{file}: " if file is not None else ""
        super().__init__(f"{where}{key}: {message}")
        self.key = key
        self.file = file
        self.reason = message


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSection:
    id: str = ""
    mairie: str = "Mairie"
    mairie_address: str = ""
    state_dir: Path = Path("/var/lib/dr-edge")
    bundle_dir: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorSection:
    port: str = ""  # empty: no sensor configured (the console says so)
    baud: int = 57600
    capture_timeout: float = 20.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ScannerSection:
    port: str = ""
    baud: int = 9600


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSection:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSection:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8883
    rpc_timeout: float = 5.0
    reconnect_max: float = 30.0  # seconds, upper bound of the jittered reconnect backoff
    ack_timeout: float = 60.0  # seconds before an unacknowledged enrolment is sent again


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySection:
    attempts_per_finger: int = 3
    min_quality: int = 30
    min_age_years: int = 12
    lockout_failures: int = 5
    lockout_minutes: float = 15.0
    agent_session_hours: float = 10.0
    session_resume_hours: float = 4.0  # an unfinished session older than this is aborted
    lease_low_water: int = 5
    retention_days: float = 90.0  # finished sessions and receipt copies kept on the station
    lease_count: int = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeConfig:
    device: DeviceSection = field(default_factory=DeviceSection)
    sensor: SensorSection = field(default_factory=SensorSection)
    scanner: ScannerSection = field(default_factory=ScannerSection)
    console: ConsoleSection = field(default_factory=ConsoleSection)
    link: LinkSection = field(default_factory=LinkSection)
    policy: PolicySection = field(default_factory=PolicySection)
    source: Path | None = None

    @property
    def station_db(self) -> Path:
        return self.device.state_dir / "station.sqlite3"

    @property
    def outbox_db(self) -> Path:
        return self.device.state_dir / "outbox.sqlite3"

    @property
    def receipts_dir(self) -> Path:
        return self.device.state_dir / "receipts"


_SECTIONS: dict[str, type[Any]] = {
    "device": DeviceSection,
    "sensor": SensorSection,
    "scanner": ScannerSection,
    "console": ConsoleSection,
    "link": LinkSection,
    "policy": PolicySection,
}


def _coerce(raw: object, *, annotation: str, key: str, file: Path | None) -> object:
    """Converts one TOML (or environment string) value to the field's type."""
    try:
        if annotation == "bool":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in {
                "1",
                "true",
                "yes",
                "on",
                "0",
                "false",
                "no",
                "off",
            }:
                return raw.lower() in {"1", "true", "yes", "on"}
            raise ConfigError(f"expected true or false, got {raw!r}", key=key, file=file)
        if annotation == "int":
            if isinstance(raw, bool):
                raise ConfigError(f"expected an integer, got {raw!r}", key=key, file=file)
            if isinstance(raw, int):
                return raw
            if isinstance(raw, str):
                return int(raw)
            raise ConfigError(f"expected an integer, got {raw!r}", key=key, file=file)
        if annotation == "float":
            if isinstance(raw, bool):
                raise ConfigError(f"expected a number, got {raw!r}", key=key, file=file)
            if isinstance(raw, int | float):
                return float(raw)
            if isinstance(raw, str):
                return float(raw)
            raise ConfigError(f"expected a number, got {raw!r}", key=key, file=file)
        if annotation in {"Path", "Path | None"}:
            if not isinstance(raw, str) or not raw:
                raise ConfigError(f"expected a path, got {raw!r}", key=key, file=file)
            path = Path(raw).expanduser()
            if not path.is_absolute() and file is not None:
                path = file.parent / path  # relative paths are relative to the config file
            return path
        if annotation == "str":
            if not isinstance(raw, str):
                raise ConfigError(f"expected a string, got {raw!r}", key=key, file=file)
            return raw
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"cannot read {raw!r} as {annotation}", key=key, file=file) from exc
    raise AssertionError(f"unhandled field type {annotation}")


def _build_section(
    name: str, table: Mapping[str, object], env: Mapping[str, str], file: Path | None
) -> object:
    cls = _SECTIONS[name]
    known = {f.name: f for f in fields(cls)}
    for key in table:
        if key not in known:
            raise ConfigError("unknown key", key=f"{name}.{key}", file=file)
    values: dict[str, object] = {}
    for fname, f in known.items():
        dotted = f"{name}.{fname}"
        env_name = f"{ENV_PREFIX}{name}_{fname}".upper()
        if env_name in env:
            values[fname] = _coerce(env[env_name], annotation=str(f.type), key=dotted, file=None)
        elif fname in table:
            values[fname] = _coerce(table[fname], annotation=str(f.type), key=dotted, file=file)
    return cls(**values)


def _validate(config: EdgeConfig) -> None:
    file = config.source
    if not DEVICE_ID_RE.match(config.device.id):
        raise ConfigError(
            f"expected a device id like dr-91228-01, got {config.device.id!r}",
            key="device.id",
            file=file,
        )
    try:
        if not ipaddress.ip_address(config.console.host).is_loopback:
            raise ConfigError(
                "the agent console listens on the loopback interface only",
                key="console.host",
                file=file,
            )
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        if config.console.host != "localhost":
            raise ConfigError(
                f"expected a loopback address, got {config.console.host!r}",
                key="console.host",
                file=file,
            ) from exc
    for key, port in (("console.port", config.console.port), ("link.port", config.link.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"port out of range: {port}", key=key, file=file)
    for key, baud in (("sensor.baud", config.sensor.baud), ("scanner.baud", config.scanner.baud)):
        if baud <= 0 or (baud % 9600 != 0 and baud not in {1200, 2400, 4800, 19200, 38400}):
            raise ConfigError(f"unsupported baud rate {baud}", key=key, file=file)
    p = config.policy
    positive = {
        "policy.attempts_per_finger": p.attempts_per_finger,
        "policy.lockout_failures": p.lockout_failures,
        "policy.lease_count": p.lease_count,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"must be at least 1, got {value}", key=key, file=file)
    if not 0 <= p.min_quality <= 100:
        raise ConfigError(
            f"must be 0-100, got {p.min_quality}", key="policy.min_quality", file=file
        )
    if p.attempts_per_finger < 2:
        raise ConfigError(
            "two captures of a finger are compared: at least 2 attempts",
            key="policy.attempts_per_finger",
            file=file,
        )


def load_config(path: Path | None, *, env: Mapping[str, str] | None = None) -> EdgeConfig:
    """Reads, validates and returns the configuration (``path=None``: defaults + environment)."""
    environ = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError("configuration file not found", key="-", file=path) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", key="-", file=path) from exc
    if "DR_EDGE_STATE_DIR" in environ and "DR_EDGE_DEVICE_STATE_DIR" not in environ:
        # The systemd unit's StateDirectory= (Environment=DR_EDGE_STATE_DIR=...).
        environ = {**environ, "DR_EDGE_DEVICE_STATE_DIR": environ["DR_EDGE_STATE_DIR"]}
    for name in data:
        if name not in _SECTIONS:
            raise ConfigError("unknown section", key=name, file=path)
    sections: dict[str, object] = {}
    for name in _SECTIONS:
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError("expected a table", key=name, file=path)
        sections[name] = _build_section(name, table, environ, path)
    config = EdgeConfig(**sections, source=path)  # type: ignore[arg-type]
    _validate(config)
    return config


def with_overrides(config: EdgeConfig, **sections: object) -> EdgeConfig:
    """A copy of ``config`` with whole sections replaced (tests and the demo use it)."""
    return replace(config, **sections)  # type: ignore[arg-type]
