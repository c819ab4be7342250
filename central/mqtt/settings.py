"""Settings of central's MQTT side."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from central.pki import validate_common_name

__all__ = ["CentralLinkSettings"]


def _default_instance() -> str:
    return f"central-{socket.gethostname()}-{os.getpid()}"[:64]


@dataclass(frozen=True, slots=True, kw_only=True)
class CentralLinkSettings:
    """Broker address, central's TLS identity, and how the MQTT side behaves.

    ``instance``: the MQTT client id of this central process; several instances share the
    work through ``$share/<share_group>/...`` subscriptions. ``workers``: messages handled at
    once (service calls run in threads). ``replay_window_s``: RPCs and telemetry whose time
    is further than this from central's clock are refused (device clocks must be NTP-synced).
    """

    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    instance: str = field(default_factory=_default_instance)
    share_group: str = "central"
    workers: int = 8
    max_batch: int = 32  # enrolments ingested in one database transaction, at most
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    replay_window_s: float = 300.0
    fleet_interval_s: float = 10.0
    device_cache_s: float = 5.0  # revocations by another process are seen within this delay
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 10.0

    def __post_init__(self) -> None:
        validate_common_name(self.share_group)
        if self.workers < 1 or self.max_batch < 1:
            raise ValueError("workers and max_batch must be >= 1")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1-65535, got {self.port}")
