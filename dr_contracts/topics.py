"""The MQTT topic tree shared by DR devices, central and the broker's ACL (docs/mqtt.md).

::

    dr/<device-id>/state         device -> all      retained; last will marks it offline
    dr/<device-id>/telemetry     device -> central  periodic health figures
    dr/<device-id>/rpc           device -> central  requests (MQTT 5 response topic + corr. data)
    dr/<device-id>/rpc/reply     central -> device  replies
    dr/<device-id>/enrolments    device -> central  sealed enrolment envelopes (QoS 1)
    dr/<device-id>/acks          central -> device  acknowledgements / rejections (QoS 1)
    central/fleet                central -> all     retained fleet summary (dashboards)

Central consumes device topics through shared subscriptions (``$share/central/...``) so that
several central instances split the load; each message is handled by one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ACKS",
    "CENTRAL_ROOT",
    "DEVICE_LEAVES",
    "DEVICE_PUBLISHES",
    "DEVICE_ROOT",
    "DEVICE_SUBSCRIBES",
    "ENROLMENTS",
    "FLEET",
    "RPC",
    "RPC_REPLY",
    "SHARE_GROUP",
    "STATE",
    "TELEMETRY",
    "DeviceTopic",
    "device_topic",
    "parse_device_topic",
    "shared",
    "validate_device_level",
]

DEVICE_ROOT: Final = "dr"
CENTRAL_ROOT: Final = "central"
STATE: Final = "state"
TELEMETRY: Final = "telemetry"
RPC: Final = "rpc"
RPC_REPLY: Final = "rpc/reply"
ENROLMENTS: Final = "enrolments"
ACKS: Final = "acks"
FLEET: Final = f"{CENTRAL_ROOT}/fleet"
SHARE_GROUP: Final = "central"

DEVICE_PUBLISHES: Final = (STATE, TELEMETRY, RPC, ENROLMENTS)
DEVICE_SUBSCRIBES: Final = (RPC_REPLY, ACKS)
DEVICE_LEAVES: Final = DEVICE_PUBLISHES + DEVICE_SUBSCRIBES
_LEAVES: Final = frozenset(DEVICE_LEAVES)

# One topic level, also a certificate CN and an ACL username: no wildcard, separator, '$' or '%'.
_LEVEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_device_level(device_id: str) -> str:
    """Return ``device_id`` if it can be a topic level; raise ``ValueError`` otherwise."""
    if not _LEVEL.fullmatch(device_id):
        raise ValueError(f"invalid device id for a topic level: {device_id!r}")
    return device_id


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed ``dr/<device-id>/<leaf>`` topic."""

    device_id: str
    leaf: str

    def __post_init__(self) -> None:
        validate_device_level(self.device_id)
        if self.leaf not in _LEAVES:
            raise ValueError(f"unknown device topic leaf {self.leaf!r}")

    def __str__(self) -> str:
        return f"{DEVICE_ROOT}/{self.device_id}/{self.leaf}"


def device_topic(device_id: str, leaf: str) -> str:
    """``dr/<device_id>/<leaf>``, validated."""
    return str(DeviceTopic(device_id, leaf))


def parse_device_topic(topic: str) -> DeviceTopic:
    """Split ``dr/<device-id>/<leaf>``; raise ``ValueError`` for anything else."""
    root, sep, rest = topic.partition("/")
    device_id, sep2, leaf = rest.partition("/")
    if root != DEVICE_ROOT or not sep or not sep2:
        raise ValueError(f"not a device topic: {topic!r}")
    return DeviceTopic(device_id, leaf)


def shared(leaf: str, *, group: str = SHARE_GROUP) -> str:
    """Shared-subscription filter ``$share/<group>/dr/+/<leaf>`` (one consumer per message)."""
    if leaf not in _LEAVES:
        raise ValueError(f"unknown device topic leaf {leaf!r}")
    return f"$share/{group}/{DEVICE_ROOT}/+/{leaf}"
