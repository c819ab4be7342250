"""Central's configuration: a TOML file, defaults, environment overrides, strict validation.

Example (every key optional; paths relative to the file's directory)::

    [central]
    data_dir = "/var/lib/dr-central"        # holds the defaults below
    database = "sqlite:///var/lib/dr-central/central.db"   # or "postgresql://user@host/db"
    key_dir = "keys"                        # default <data_dir>/keys
    ca_dir = "ca"                           # default <data_dir>/ca

    [http]
    host = "127.0.0.1"
    port = 8480
    operator_token_file = "operator.token"  # operator API disabled when absent

    [leases]
    max_count = 100        # numbers per lease
    validity_days = 30
    max_open = 4           # open (unexpired) leases per device

    [ingest]
    max_envelope_bytes = 8388608

    [retention]            # privacy: see central.retention and docs/privacy.md
    title_record_years = 15              # templates and request kept after the card is issued
    images_after_decision_days = 90      # images erased (if asked) after issue or refusal
    rejected_after_days = 365            # refused requests purged
    abandoned_after_days = 365           # requests with no stage change purged
    unused_prerequest_after_days = 30    # pre-requests never used, after their expiry
    run_every_hours = 24                 # the periodic job in ``dr-central serve``

    [audit]
    path = "audit.sqlite3"  # default <data_dir>/audit.sqlite3 (one file per central instance)
    sign_every = 100        # sign the chain's head every N entries

    [mqtt]                 # passed as is to central.mqtt (the link's side validates it)
    [dashboard]            # passed as is to central.dashboard (operator dashboard)

Environment overrides: ``DR_CENTRAL_<KEY>`` for the ``[central]`` keys, else
``DR_CENTRAL_<SECTION>_<KEY>`` (e.g. ``DR_CENTRAL_DATABASE``, ``DR_CENTRAL_HTTP_PORT``).
Every problem is a :class:`ConfigError` naming the file (or variable) and the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final


class ConfigError(ValueError):
    """An invalid configuration value; ``source`` is the file or environment variable."""

    def __init__(self, source: str, key: str, message: str) -> None:
        super().__init__(f"{source}: {key}: {message}")
        self.source = source
        self.key = key
        self.message = message


# section -> key -> (type, default); None default = derived from data_dir or unset.
_SCHEMA: Final[dict[str, dict[str, tuple[type, object]]]] = {
    "central": {
        "data_dir": (Path, "central-data"),
        "database": (str, None),
        "key_dir": (Path, None),
        "ca_dir": (Path, None),
    },
    "http": {
        "host": (str, "127.0.0.1"),
        "port": (int, 8480),
        "operator_token_file": (Path, None),
    },
    "leases": {
        "max_count": (int, 100),
        "validity_days": (int, 30),
        "max_open": (int, 4),
    },
    "ingest": {"max_envelope_bytes": (int, 8 * 1024 * 1024)},
    "retention": {
        "title_record_years": (int, 15),
        "images_after_decision_days": (int, 90),
        "rejected_after_days": (int, 365),
        "abandoned_after_days": (int, 365),
        "unused_prerequest_after_days": (int, 30),
        "run_every_hours": (int, 24),
    },
    "audit": {"path": (Path, None), "sign_every": (int, 100)},
}
_PASSTHROUGH: Final = frozenset({"mqtt", "dashboard"})


@dataclass(frozen=True, slots=True)
class CentralConfig:
    source: str
    data_dir: Path
    database: str
    key_dir: Path
    ca_dir: Path
    http_host: str = "127.0.0.1"
    http_port: int = 8480
    operator_token_file: Path | None = None
    lease_max_count: int = 100
    lease_validity_days: int = 30
    lease_max_open: int = 4
    max_envelope_bytes: int = 8 * 1024 * 1024
    retention: Mapping[str, int] = field(default_factory=dict)  # [retention], defaults filled
    audit_path: Path | None = None
    audit_sign_every: int = 100
    mqtt: Mapping[str, Any] = field(default_factory=dict)
    dashboard: Mapping[str, Any] = field(default_factory=dict)

    def operator_token(self) -> str | None:
        """The operator API bearer token (file content), or None when not configured."""
        if self.operator_token_file is None:
            return None
        try:
            token = self.operator_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(self.source, "http.operator_token_file", str(exc)) from None
        if len(token) < 16:
            raise ConfigError(self.source, "http.operator_token_file", "token under 16 chars")
        return token


def _convert(source: str, key: str, kind: type, value: object, base: Path) -> object:
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(source, key, "expected an integer")
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(source, key, f"expected an integer, got {value!r}") from None
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(source, key, f"expected a positive integer, got {value!r}")
        if key == "http.port" and value > 65535:
            raise ConfigError(source, key, "a TCP port is 1..65535")
        return value
    if not isinstance(value, str) or not value:
        raise ConfigError(source, key, f"expected a non-empty string, got {value!r}")
    if kind is Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    return value


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    data_dir: Path | None = None,
) -> CentralConfig:
    """Read ``path`` (optional), apply ``env`` overrides, then ``data_dir`` if given."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    source = "<defaults>"
    base = Path.cwd()
    if path is not None:
        source = str(path)
        base = path.resolve().parent
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(source, "-", "configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "-", f"not valid TOML: {exc}") from None
    values: dict[str, object] = {}
    for section, content in raw.items():
        if section in _PASSTHROUGH:
            if not isinstance(content, dict):
                raise ConfigError(source, section, "expected a table")
            continue
        if section not in _SCHEMA:
            raise ConfigError(source, section, f"unknown section (known: {', '.join(_SCHEMA)})")
        if not isinstance(content, dict):
            raise ConfigError(source, section, "expected a table")
        for key, value in content.items():
            if key not in _SCHEMA[section]:
                raise ConfigError(source, f"{section}.{key}", "unknown key")
            kind = _SCHEMA[section][key][0]
            values[f"{section}.{key}"] = _convert(source, f"{section}.{key}", kind, value, base)
    for section, keys in _SCHEMA.items():
        for key, (kind, default) in keys.items():
            var = (
                f"DR_CENTRAL_{key.upper()}"
                if section == "central"
                else (f"DR_CENTRAL_{section.upper()}_{key.upper()}")
            )
            if var in env:
                values[f"{section}.{key}"] = _convert(
                    var, f"{section}.{key}", kind, env[var], Path.cwd()
                )
            elif f"{section}.{key}" not in values and default is not None:
                values[f"{section}.{key}"] = _convert(
                    source, f"{section}.{key}", kind, default, base
                )
    if data_dir is not None:
        values["central.data_dir"] = data_dir.resolve()
    root = Path(str(values["central.data_dir"]))
    database = values.get("central.database") or f"sqlite://{root / 'central.db'}"
    if not str(database).startswith(("sqlite://", "postgresql://", "postgres://")):
        raise ConfigError(source, "central.database", "sqlite://PATH or postgresql://...")
    token_file = values.get("http.operator_token_file")
    return CentralConfig(
        source=source,
        data_dir=root,
        database=str(database),
        key_dir=Path(str(values.get("central.key_dir") or root / "keys")),
        ca_dir=Path(str(values.get("central.ca_dir") or root / "ca")),
        http_host=str(values["http.host"]),
        http_port=int(str(values["http.port"])),
        operator_token_file=None if token_file is None else Path(str(token_file)),
        lease_max_count=int(str(values["leases.max_count"])),
        lease_validity_days=int(str(values["leases.validity_days"])),
        lease_max_open=int(str(values["leases.max_open"])),
        max_envelope_bytes=int(str(values["ingest.max_envelope_bytes"])),
        retention={key: int(str(values[f"retention.{key}"])) for key in _SCHEMA["retention"]},
        audit_path=Path(str(values.get("audit.path") or root / "audit.sqlite3")),
        audit_sign_every=int(str(values["audit.sign_every"])),
        mqtt=dict(raw.get("mqtt", {})),
        dashboard=dict(raw.get("dashboard", {})),
    )
