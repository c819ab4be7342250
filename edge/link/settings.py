"""Settings of the edge link (loaded by the station's configuration, or built by tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dr_contracts.topics import validate_device_level
from edge.queue.backoff import Backoff

__all__ = ["LinkSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSettings:
    """Where the broker is, who we are, and the link's timings.

    ``session_expiry_s``: how long the broker keeps our session (subscriptions and the QoS 1
    acks sent while we were away) after a disconnect. ``inflight_window``: enrolments
    published and not yet acknowledged by central, at most. ``reconnect``: jittered backoff
    between connection attempts (reset after a successful connection).
    """

    device_id: str
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    version: str = "0.1.0"
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86400
    connect_timeout_s: float = 10.0
    rpc_timeout_s: float = 5.0
    telemetry_interval_s: float = 60.0
    inflight_window: int = 16
    idle_poll_s: float = 5.0  # upper bound on waiting for new outbox rows when not woken
    reconnect: Backoff = field(
        default_factory=lambda: Backoff(initial_s=0.2, factor=2.0, maximum_s=30.0, jitter=0.5)
    )

    def __post_init__(self) -> None:
        validate_device_level(self.device_id)
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1-65535, got {self.port}")
        if self.inflight_window < 1:
            raise ValueError("inflight_window must be >= 1")
        for name in ("rpc_timeout_s", "telemetry_interval_s", "connect_timeout_s", "idle_poll_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
