"""Where the feed announces model changes and each live page (SSE stream) waits for them."""

from __future__ import annotations

import asyncio
import contextlib

from central.dashboard.model import FleetModel

__all__ = ["FleetHub"]


class FleetHub:
    """The shared :class:`FleetModel` and a condition signalled when it changes."""

    def __init__(self, model: FleetModel) -> None:
        self.model = model
        self._changed = asyncio.Condition()

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_change(self, seen_version: int, *, timeout_s: float) -> bool:
        """Wait until the model's version differs from ``seen_version`` (True) or the
        timeout passes (False: the page still refreshes, ages and alerts move with time)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._changed.wait_for(lambda: self.model.version != seen_version)
            return self.model.version != seen_version
