"""sd_notify and the watchdog, against a real notify socket and a real daemon-like process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.sdnotify import SystemdNotifier, watchdog_interval

PERIOD_S = 0.2

# A tiny daemon: READY, a watchdog fed from its loop, and on SIGUSR1 a blocking call that hangs
# the loop (announced first, so the test knows from when on pings must stop).
CHILD = textwrap.dedent(
    """
    import asyncio, signal, time
    from edge.sdnotify import SystemdNotifier, feed_watchdog, watchdog_interval

    async def main():
        notifier = SystemdNotifier()
        loop = asyncio.get_running_loop()
        def hang():
            notifier.status("hung")
            time.sleep(3600)
        loop.add_signal_handler(signal.SIGUSR1, hang)
        notifier.ready(status="up")
        await feed_watchdog(notifier, interval=watchdog_interval())

    asyncio.run(main())
    """
)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(10)
    yield sock
    sock.close()


def _recv(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_notifier_is_a_noop_outside_systemd() -> None:
    notifier = SystemdNotifier(environ={})
    assert not notifier.enabled
    assert notifier.ready() is False


def test_ready_and_status_reach_the_socket(notify_socket: socket.socket) -> None:
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.getsockname()})
    assert notifier.ready(status="capteur prêt")
    assert _recv(notify_socket) == {"READY": "1", "STATUS": "capteur prêt"}
    notifier.close()


def test_abstract_socket_address(tmp_path: Path) -> None:
    name = f"dr-test-{os.getpid()}-{tmp_path.name}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": "@" + name})
        notifier.stopping()
        assert _recv(sock) == {"STOPPING": "1"}
        notifier.close()
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected


def test_watchdog_interval_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="WATCHDOG_USEC"):
        watchdog_interval({"WATCHDOG_USEC": "0"})


def test_a_hung_loop_stops_the_watchdog_pings(notify_socket: socket.socket) -> None:
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify_socket.getsockname(),
        "WATCHDOG_USEC": str(int(PERIOD_S * 1e6)),
    }
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env)
    try:
        assert _recv(notify_socket) == {"READY": "1", "STATUS": "up"}
        for _ in range(3):
            assert _recv(notify_socket) == {"WATCHDOG": "1"}
        child.send_signal(signal.SIGUSR1)
        while (message := _recv(notify_socket)) != {"STATUS": "hung"}:
            assert message == {"WATCHDOG": "1"}
        # From here the loop is blocked: systemd would see no ping for many periods.
        notify_socket.settimeout(PERIOD_S * 5)
        with pytest.raises(TimeoutError):
            notify_socket.recv(4096)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_an_undrained_socket_never_blocks_the_caller(notify_socket: socket.socket) -> None:
    # Nobody reads: the kernel queue fills up, and sends must fail fast instead of blocking.
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": notify_socket.getsockname()})
    results = [notifier.watchdog() for _ in range(2000)]
    notifier.close()
    assert results[0] is True
    assert False in results
