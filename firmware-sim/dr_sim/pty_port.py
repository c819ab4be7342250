"""A pseudo-terminal standing in for a USB-serial device, with plug and unplug.

``plug()`` opens a pty pair in raw mode and points ``link`` (a symlink) at its slave, as udev
points /dev/serial/by-id/... at /dev/ttyUSB0. ``unplug()`` removes the link and closes both
ends: a host reading the slave gets an I/O error, as when a USB adapter is pulled out.
The simulator keeps its own slave descriptor open while plugged, so that a host closing and
reopening the port does not hang up the pty.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import tty
from collections.abc import Callable
from pathlib import Path

__all__ = ["PtyPort"]

_log = logging.getLogger(__name__)


class PtyPort:
    def __init__(self, link: Path, *, on_bytes: Callable[[bytes], None]) -> None:
        self.link = link
        self._on_bytes = on_bytes
        self._master: int | None = None
        self._slave: int | None = None
        self.slave_name: str | None = None
        self._writable: asyncio.Future[None] | None = None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> str:
        """Create the pty and the link; returns the slave's path."""
        if self._master is not None:
            raise RuntimeError("already plugged")
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        name = os.ttyname(slave)
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(name)
        os.replace(tmp, self.link)  # atomic: a host never sees a half-made link
        self._master, self._slave, self.slave_name = master, slave, name
        asyncio.get_running_loop().add_reader(master, self._read_ready)
        return name

    def unplug(self) -> None:
        master, slave = self._master, self._slave
        if master is None:
            return
        self._master = self._slave = None
        loop = asyncio.get_running_loop()
        loop.remove_reader(master)
        loop.remove_writer(master)
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)  # wake a blocked write: it sees the unplug
        with contextlib.suppress(FileNotFoundError):
            if self.link.is_symlink() and os.readlink(self.link) == self.slave_name:
                self.link.unlink()
        os.close(master)
        if slave is not None:
            os.close(slave)

    def _read_ready(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO: no slave open (cannot happen while we hold one, but be safe).
            if exc.errno != errno.EIO:
                _log.warning("pty read failed: %s", exc)
            return
        if data:
            self._on_bytes(data)

    async def write(self, data: bytes) -> None:
        """Write everything, waiting while the host does not read; silently lost if the
        port is unplugged meanwhile (as bytes on a pulled cable)."""
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            master = self._master
            if master is None:
                return
            try:
                written = os.write(master, view)
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()
                self._writable = writable
                loop.add_writer(master, _resolve, writable)
                try:
                    await writable
                finally:
                    self._writable = None
                    if self._master == master:
                        loop.remove_writer(master)
                continue
            except OSError as exc:
                _log.warning("pty write failed: %s", exc)
                return
            view = view[written:]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
