"""The fleet as operators see it: a pure model fed with link events, plus threshold alerts.

No I/O here: the MQTT feed (:mod:`central.dashboard.feed`) calls ``on_*`` with messages it
has authenticated, the web app reads :meth:`FleetModel.snapshot`. Time comes from an
injected clock (seconds since the Unix epoch), so alerts are unit-tested without waiting.

Privacy: the model keeps device ids, counters, codes and times only; never a pre-request
number, a name, or anything biometric (an acknowledgement's numbers are not stored).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from central.dashboard.departments import department_of
from dr_contracts.messages import DeviceState, Telemetry

__all__ = [
    "ALERT_KINDS",
    "Alert",
    "Clock",
    "DeviceView",
    "FleetModel",
    "Thresholds",
]

Clock = Callable[[], float]
HOUR_S: Final = 3600
# Enrolment ids remembered to count a re-sent enrolment (same acknowledgement) once.
_SEEN_ENROLMENTS_MAX: Final = 200_000

AlertKind = Literal["offline", "silent", "backlog", "stale_queue", "disk", "sensor", "rejections"]
ALERT_KINDS: Final[tuple[AlertKind, ...]] = (
    "offline",
    "silent",
    "backlog",
    "stale_queue",
    "disk",
    "sensor",
    "rejections",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """When a device needs an operator's attention (``[dashboard]`` configuration keys)."""

    offline_after_s: float = 300.0  # offline (last will or clean stop) for longer than this
    silent_after_s: float = 180.0  # online but no telemetry for longer than this
    backlog_depth: int = 20  # enrolments waiting in the device's outbox
    pending_age_s: float = 3600.0  # age of the oldest enrolment not yet acknowledged
    disk_free_min_bytes: int = 1 << 30
    rejections_max: int = 3  # rejected or forged messages from one device ...
    rejections_window_s: float = 900.0  # ... within this window
    sensor_ok: frozenset[str] = frozenset({"ready"})
    history_hours: int = 24  # enrolments per hour kept for the chart

    def __post_init__(self) -> None:
        for name in (
            "offline_after_s",
            "silent_after_s",
            "pending_age_s",
            "rejections_window_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.backlog_depth < 1 or self.rejections_max < 1 or self.disk_free_min_bytes < 0:
            raise ValueError("backlog_depth and rejections_max must be >= 1")
        if not 1 <= self.history_hours <= 24 * 14:
            raise ValueError("history_hours must be 1..336")


@dataclass(frozen=True, slots=True)
class Alert:
    """One condition over its threshold. ``value``/``limit`` are in the kind's unit."""

    kind: AlertKind
    device_id: str
    value: float
    limit: float
    message_fr: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "device_id": self.device_id,
            "value": self.value,
            "limit": self.limit,
            "message": self.message_fr,
        }


@dataclass
class DeviceView:
    """What is known about one device. Times are clock seconds; ``*_ms`` are sender times."""

    device_id: str
    registry: str = "unknown"  # central's registry: active, revoked, or unknown (not listed)
    status: Literal["online", "offline", "unknown"] = "unknown"
    status_since: float | None = None
    state_sent_ms: int = -1
    session: bytes = b""
    version: str = ""
    last_seen: float | None = None
    telemetry_at: float | None = None
    telemetry_sent_ms: int = -1
    queue_depth: int | None = None
    oldest_pending_age_s: float | None = None
    sensor: str = ""
    disk_free_bytes: int | None = None
    device_alerts: tuple[str, ...] = ()
    rejected_at: deque[float] = field(default_factory=deque)
    department: str = field(init=False)

    def __post_init__(self) -> None:
        self.department = department_of(self.device_id)


def _duration_fr(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * HOUR_S:
        return f"{seconds // 60} min"
    return f"{seconds // HOUR_S} h {seconds % HOUR_S // 60:02d}"


SENSOR_FR: Final = {"ready": "prêt", "absent": "non connecté", "error": "en erreur"}


def _gib(size: float) -> str:
    return f"{size / (1 << 30):.1f} Gio".replace(".", ",")


class FleetModel:
    """Devices, enrolment and rejection counts, request stages; alerts from thresholds."""

    def __init__(self, *, thresholds: Thresholds | None = None, clock: Clock = time.time) -> None:
        self.thresholds = thresholds or Thresholds()
        self._clock = clock
        self.devices: dict[str, DeviceView] = {}
        # hour (epoch seconds // 3600) -> department -> enrolments acknowledged
        self._hours: dict[int, Counter[str]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.rejections: Counter[str] = Counter()  # kind (rejection code / message reason)
        self.request_stages: dict[str, int] = {}
        self.enrolments_total = 0
        self.feed_connected = False  # the dashboard's own MQTT connection is up
        self.version = 0  # bumped on every change: the web app pushes when it moves

    # -- events ---------------------------------------------------------------------------
    def _device(self, device_id: str) -> DeviceView:
        view = self.devices.get(device_id)
        if view is None:
            view = self.devices[device_id] = DeviceView(device_id)
        return view

    def _changed(self) -> None:
        self.version += 1

    def on_state(self, device_id: str, state: DeviceState, *, sent_at_ms: int) -> None:
        """A retained ``dr/<id>/state`` (``online``, or ``offline`` from the last will)."""
        view = self._device(device_id)
        if sent_at_ms < view.state_sent_ms and state.session != view.session:
            # An older connection's will arriving after the new connection's "online".
            return
        now = self._clock()
        if state.status != view.status:
            view.status_since = now
        view.status = state.status
        view.state_sent_ms = sent_at_ms
        view.session = state.session
        view.version = state.version or view.version
        if state.status == "online":
            view.last_seen = now  # a last will is the broker speaking, not the device
        self._changed()

    def on_telemetry(self, device_id: str, telemetry: Telemetry, *, sent_at_ms: int) -> None:
        view = self._device(device_id)
        if sent_at_ms <= view.telemetry_sent_ms:
            return  # out of order or replayed: keep the newer figures
        now = self._clock()
        view.telemetry_sent_ms = sent_at_ms
        view.telemetry_at = now
        view.last_seen = now
        view.queue_depth = telemetry.queue_depth
        view.oldest_pending_age_s = (
            None
            if telemetry.oldest_pending_age_s is None
            else float(telemetry.oldest_pending_age_s)
        )
        view.sensor = telemetry.sensor
        view.version = telemetry.version or view.version
        view.disk_free_bytes = telemetry.disk_free_bytes
        view.device_alerts = telemetry.alerts
        if view.status == "unknown":
            view.status, view.status_since = "online", now
        self._changed()

    def on_enrolment_acked(self, device_id: str, enrolment_id: str, *, at: datetime) -> None:
        """Central acknowledged an enrolment (counted once per enrolment id)."""
        if enrolment_id in self._seen:
            return
        self._seen[enrolment_id] = None
        while len(self._seen) > _SEEN_ENROLMENTS_MAX:
            self._seen.popitem(last=False)
        hour = int(at.timestamp()) // HOUR_S
        if hour <= self._current_hour() - self.thresholds.history_hours:
            return
        self._hours.setdefault(hour, Counter())[self._device(device_id).department] += 1
        self.enrolments_total += 1
        self._trim_hours()
        self._changed()

    def on_rejection(self, device_id: str, kind: str) -> None:
        """An enrolment central refused (``kind`` = rejection code) or a message dropped as
        forged/malformed/replayed by the dashboard (``kind`` = ``message_<reason>``)."""
        self.rejections[kind] += 1
        view = self._device(device_id)
        view.rejected_at.append(self._clock())
        self._expire_rejections(view, self._clock())
        self._changed()

    def set_registry(self, states: Mapping[str, str]) -> None:
        """Central's device registry (device id -> ``active`` / ``revoked``)."""
        changed = False
        for device_id, state in states.items():
            view = self._device(device_id)
            if view.registry != state:
                view.registry, changed = state, True
        if changed or not states.keys() <= self.devices.keys():
            self._changed()

    def set_feed_connected(self, connected: bool) -> None:
        """Whether the figures are live (else they are as of the disconnection)."""
        if connected != self.feed_connected:
            self.feed_connected = connected
            self._changed()

    def set_request_stages(self, counts: Mapping[str, int]) -> None:
        counts = dict(sorted(counts.items()))
        if counts != self.request_stages:
            self.request_stages = counts
            self._changed()

    # -- derived --------------------------------------------------------------------------
    def _current_hour(self) -> int:
        return int(self._clock()) // HOUR_S

    def _trim_hours(self) -> None:
        oldest = self._current_hour() - self.thresholds.history_hours
        for hour in [h for h in self._hours if h <= oldest]:
            del self._hours[hour]

    def _expire_rejections(self, view: DeviceView, now: float) -> None:
        horizon = now - self.thresholds.rejections_window_s
        while view.rejected_at and view.rejected_at[0] < horizon:
            view.rejected_at.popleft()

    def pending_age(self, view: DeviceView, *, now: float) -> float | None:
        """Age of the device's oldest pending enrolment now (it kept ageing since reported)."""
        if view.oldest_pending_age_s is None or view.telemetry_at is None:
            return None
        return view.oldest_pending_age_s + max(0.0, now - view.telemetry_at)

    def alerts(self) -> list[Alert]:
        """Every device condition over its threshold, sorted by kind then device."""
        t, now = self.thresholds, self._clock()
        found: list[Alert] = []
        for _, view in sorted(self.devices.items()):
            if view.registry == "revoked":
                continue  # refused by the broker anyway: nothing for the operator to do
            found.extend(self._device_alerts(view, t, now))
        order = {kind: i for i, kind in enumerate(ALERT_KINDS)}
        found.sort(key=lambda a: (order[a.kind], a.device_id))
        return found

    def _device_alerts(self, view: DeviceView, t: Thresholds, now: float) -> list[Alert]:
        found: list[Alert] = []
        did = view.device_id
        if view.status == "offline" and view.status_since is not None:
            away = now - view.status_since
            if away > t.offline_after_s:
                found.append(
                    Alert(
                        "offline",
                        did,
                        away,
                        t.offline_after_s,
                        f"Hors ligne depuis {_duration_fr(away)}",
                    )
                )
        if view.status == "online":
            quiet = now - (
                view.telemetry_at if view.telemetry_at is not None else view.status_since or now
            )
            if quiet > t.silent_after_s:
                found.append(
                    Alert(
                        "silent",
                        did,
                        quiet,
                        t.silent_after_s,
                        f"En ligne mais sans télémétrie depuis {_duration_fr(quiet)}",
                    )
                )
        if view.queue_depth is not None and view.queue_depth > t.backlog_depth:
            found.append(
                Alert(
                    "backlog",
                    did,
                    view.queue_depth,
                    t.backlog_depth,
                    f"{view.queue_depth} dossiers en attente d'envoi (seuil {t.backlog_depth})",
                )
            )
        age = self.pending_age(view, now=now)
        if age is not None and age > t.pending_age_s:
            found.append(
                Alert(
                    "stale_queue",
                    did,
                    age,
                    t.pending_age_s,
                    f"Dossier le plus ancien non transmis depuis {_duration_fr(age)}",
                )
            )
        if view.disk_free_bytes is not None and view.disk_free_bytes < t.disk_free_min_bytes:
            found.append(
                Alert(
                    "disk",
                    did,
                    view.disk_free_bytes,
                    t.disk_free_min_bytes,
                    f"Espace disque libre faible : {_gib(view.disk_free_bytes)}",
                )
            )
        if view.sensor and view.sensor not in t.sensor_ok and view.status == "online":
            found.append(
                Alert(
                    "sensor",
                    did,
                    0,
                    0,
                    f"Capteur d'empreintes {SENSOR_FR.get(view.sensor, view.sensor)}",
                )
            )
        self._expire_rejections(view, now)
        if len(view.rejected_at) >= t.rejections_max:
            count = len(view.rejected_at)
            found.append(
                Alert(
                    "rejections",
                    did,
                    count,
                    t.rejections_max,
                    f"{count} messages refusés ou falsifiés en "
                    f"{_duration_fr(t.rejections_window_s)}",
                )
            )
        return found

    def hourly(self) -> list[dict[str, Any]]:
        """Enrolments per hour over ``history_hours`` (oldest first, empty hours included)."""
        current = self._current_hour()
        rows = []
        for hour in range(current - self.thresholds.history_hours + 1, current + 1):
            counts = self._hours.get(hour, Counter())
            rows.append(
                {
                    "start": datetime.fromtimestamp(hour * HOUR_S, UTC).isoformat(),
                    "total": sum(counts.values()),
                    "departments": dict(sorted(counts.items())),
                }
            )
        return rows

    def by_department(self) -> dict[str, int]:
        """Enrolments per department over the chart's window."""
        self._trim_hours()
        total: Counter[str] = Counter()
        for counts in self._hours.values():
            total.update(counts)
        return dict(sorted(total.items()))

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, JSON-ready (ids, counts, codes and times only)."""
        now = self._clock()
        devices = []
        for device_id, view in sorted(self.devices.items()):
            age = self.pending_age(view, now=now)
            devices.append(
                {
                    "id": device_id,
                    "department": view.department,
                    "registry": view.registry,
                    "status": view.status,
                    "status_for_s": None if view.status_since is None else now - view.status_since,
                    "last_seen_s": None if view.last_seen is None else now - view.last_seen,
                    "queue_depth": view.queue_depth,
                    "oldest_pending_age_s": age,
                    "sensor": view.sensor,
                    "version": view.version,
                    "disk_free_bytes": view.disk_free_bytes,
                    "device_alerts": list(view.device_alerts),
                }
            )
        online = sum(1 for v in self.devices.values() if v.status == "online")
        return {
            "now": datetime.fromtimestamp(now, UTC).isoformat(),
            "version": self.version,
            "feed_connected": self.feed_connected,
            "summary": {
                "devices": len(self.devices),
                "online": online,
                "offline": sum(1 for v in self.devices.values() if v.status == "offline"),
                "enrolments": sum(self.by_department().values()),
            },
            "devices": devices,
            "alerts": [a.to_dict() for a in self.alerts()],
            "hourly": self.hourly(),
            "departments": self.by_department(),
            "rejections": dict(self.rejections.most_common()),
            "request_stages": dict(self.request_stages),
            "thresholds": {
                "offline_after_s": self.thresholds.offline_after_s,
                "backlog_depth": self.thresholds.backlog_depth,
                "pending_age_s": self.thresholds.pending_age_s,
            },
        }
