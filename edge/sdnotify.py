"""systemd's service notification protocol (sd_notify) and a watchdog fed from the event loop.

The protocol is one datagram per notification, ``KEY=VALUE`` lines, sent to the Unix socket
named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Outside systemd the
variable is unset and every call is a cheap no-op, so the daemon runs the same way everywhere.

The watchdog pings come from a task on the daemon's own event loop, never from a thread: if the
loop hangs (a blocking call, a busy loop), the pings stop and systemd restarts the service
after ``WatchdogSec``. That is the whole point of feeding it from the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from typing import Final

log = logging.getLogger(__name__)

# systemd recommends pinging at half the watchdog interval so that one late ping is not fatal.
WATCHDOG_PING_FRACTION: Final = 0.5


class SystemdNotifier:
    """Sends sd_notify messages; a no-op when not started by systemd."""

    def __init__(self, *, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        if path.startswith("@"):
            path = "\0" + path[1:]
        self._address = path or None
        self._socket: socket.socket | None = None
        if self._address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never block the event loop: if nobody drains the socket (a stuck or absent
            # systemd), the send fails with EAGAIN and is logged, which is what we want.
            self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` fields (``ready=1`` becomes ``READY=1``); True if sent."""
        if self._socket is None or self._address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:
            # Losing a notification must never take the daemon down; systemd will notice.
            log.warning("sd_notify failed: %s", exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify(ready=1)
        return self.notify(ready=1, status=status)

    def status(self, text: str) -> bool:
        return self.notify(status=text)

    def stopping(self) -> bool:
        return self.notify(stopping=1)

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog period systemd asks for, in seconds, or None if there is no watchdog.

    ``$WATCHDOG_PID``, when set, must be this process: a child that inherited the variables
    must not feed its parent's watchdog.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and int(pid) != os.getpid():
        return None
    value = int(usec)
    if value <= 0:
        raise ValueError(f"WATCHDOG_USEC must be positive, got {usec!r}")
    return value / 1_000_000


async def feed_watchdog(notifier: SystemdNotifier, *, interval: float) -> None:
    """Ping the watchdog from the event loop until cancelled.

    Run it in the daemon's TaskGroup. ``interval`` is the watchdog period; pings go out at
    :data:`WATCHDOG_PING_FRACTION` of it.
    """
    period = interval * WATCHDOG_PING_FRACTION
    while True:
        notifier.watchdog()
        await asyncio.sleep(period)
