"""The ``[dashboard]`` table of central's configuration.

::

    [dashboard]
    accounts_file = "operators.json"   # default <data_dir>/operators.json (0600)
    secure_cookie = true               # false only for plain-HTTP tests on 127.0.0.1
    refresh_s = 2                      # pages are refreshed at least this often ...
    min_push_s = 1                     # ... and at most this often
    max_failures = 5                   # failed sign-ins before a lockout ...
    lockout_s = 900                    # ... of this long
    session_idle_s = 1800
    # thresholds (central.dashboard.model.Thresholds): offline_after_s, silent_after_s,
    # backlog_depth, pending_age_s, disk_free_min_bytes, rejections_max,
    # rejections_window_s, history_hours, sensor_ok = ["ready"]

An empty or absent table leaves the dashboard off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from central.dashboard.model import Thresholds

__all__ = ["DashboardSettings", "DashboardSettingsError"]

_THRESHOLD_FIELDS: Final = {f.name: f for f in dataclasses.fields(Thresholds)}


class DashboardSettingsError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"dashboard.{key}: {message}")
        self.key = key


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardSettings:
    accounts_file: Path
    thresholds: Thresholds = field(default_factory=Thresholds)
    secure_cookie: bool = True
    refresh_s: float = 2.0
    min_push_s: float = 1.0
    max_failures: int = 5
    failure_window_s: float = 900.0
    lockout_s: float = 900.0
    session_idle_s: float = 1800.0
    session_lifetime_s: float = 12 * 3600.0

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any], *, base_dir: Path, data_dir: Path
    ) -> DashboardSettings:
        """Validate a ``[dashboard]`` table (relative paths from ``base_dir``)."""
        own: dict[str, Any] = {}
        limits: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "accounts_file":
                if not isinstance(value, str) or not value:
                    raise DashboardSettingsError(key, "expected a path")
                path = Path(value).expanduser()
                own[key] = path if path.is_absolute() else base_dir / path
            elif key == "secure_cookie":
                if not isinstance(value, bool):
                    raise DashboardSettingsError(key, "expected true or false")
                own[key] = value
            elif key == "sensor_ok":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise DashboardSettingsError(key, "expected a list of sensor states")
                limits[key] = frozenset(value)
            elif key in _THRESHOLD_FIELDS or key in _OWN_NUMBERS:
                kind = int if key in _INTEGERS else float
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise DashboardSettingsError(key, "expected a number")
                if kind is int and not isinstance(value, int):
                    raise DashboardSettingsError(key, "expected an integer")
                (limits if key in _THRESHOLD_FIELDS else own)[key] = kind(value)
            else:
                raise DashboardSettingsError(key, "unknown key")
        own.setdefault("accounts_file", data_dir / "operators.json")
        try:
            settings = cls(thresholds=Thresholds(**limits), **own)
        except ValueError as exc:
            raise DashboardSettingsError("-", str(exc)) from None
        return settings

    def __post_init__(self) -> None:
        for name in _OWN_NUMBERS:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


_OWN_NUMBERS: Final = frozenset(
    {
        "refresh_s",
        "min_push_s",
        "max_failures",
        "failure_window_s",
        "lockout_s",
        "session_idle_s",
        "session_lifetime_s",
    }
)
_INTEGERS: Final = frozenset(
    {"max_failures", "backlog_depth", "disk_free_min_bytes", "rejections_max", "history_hours"}
)
