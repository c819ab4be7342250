"""Central's view of the fleet, from device state and telemetry (for the retained summary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dr_contracts.messages import DeviceState, Telemetry

__all__ = ["FleetView"]


@dataclass
class FleetView:
    """Latest known state and telemetry of each device; ``version`` bumps on every change."""

    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 0

    def _entry(self, device_id: str) -> dict[str, Any]:
        return self.devices.setdefault(device_id, {"status": "unknown"})

    def on_state(self, device_id: str, state: DeviceState, *, at_ms: int) -> None:
        entry = self._entry(device_id)
        entry.update(status=state.status, version=state.version, state_at_ms=at_ms)
        self.version += 1

    def on_telemetry(self, device_id: str, telemetry: Telemetry, *, at_ms: int) -> None:
        entry = self._entry(device_id)
        entry.update(
            queue_depth=telemetry.queue_depth,
            oldest_pending_age_s=telemetry.oldest_pending_age_s,
            sensor=telemetry.sensor,
            disk_free_bytes=telemetry.disk_free_bytes,
            alerts=list(telemetry.alerts),
            telemetry_at_ms=at_ms,
        )
        self.version += 1

    def on_revoked(self, device_id: str) -> None:
        self._entry(device_id)["status"] = "revoked"
        self.version += 1

    def summary(self) -> dict[str, dict[str, Any]]:
        return {device_id: dict(entry) for device_id, entry in sorted(self.devices.items())}
