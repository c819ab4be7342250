"""Central's operator dashboard: the DR fleet live, fed by MQTT, shown over SSE (docs/dashboard.md).

Pieces: :mod:`model` (pure fleet model + threshold alerts), :mod:`feed` (authenticated MQTT
subscriber), :mod:`hub` (change notification), :mod:`app` (aiohttp routes, sign-in,
SSE), :mod:`accounts` and :mod:`sessions` (operators), :mod:`settings` (``[dashboard]``).

``dr-central serve`` calls :func:`attach_dashboard` when the configuration has a
``[dashboard]`` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from central.dashboard.app import PREFIX, build_dashboard_app
from central.dashboard.feed import DashboardFeed, FeedSettings, FleetSource
from central.dashboard.hub import FleetHub
from central.dashboard.model import FleetModel, Thresholds
from central.dashboard.settings import DashboardSettings

if TYPE_CHECKING:
    from central.config import CentralConfig

logger = logging.getLogger(__name__)

__all__ = [
    "PREFIX",
    "DashboardFeed",
    "DashboardSettings",
    "FeedSettings",
    "FleetHub",
    "FleetModel",
    "Thresholds",
    "attach_dashboard",
    "build_dashboard_app",
    "mount_dashboard",
]


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("dashboard feed stopped", exc_info=task.exception())


def mount_dashboard(
    app: web.Application,
    *,
    source: FleetSource,
    settings: DashboardSettings,
    feed_settings: FeedSettings,
) -> FleetHub:
    """Mount ``/tableau/`` on ``app`` and run the MQTT feed while ``app`` runs."""
    hub = FleetHub(FleetModel(thresholds=settings.thresholds))
    feed = DashboardFeed(feed_settings, hub=hub, source=source)

    async def run_feed(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(feed.run())
        task.add_done_callback(_report_failure)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(run_feed)
    app.add_subapp(PREFIX, build_dashboard_app(hub, settings))
    return hub


def attach_dashboard(app: web.Application, *, service: FleetSource, config: CentralConfig) -> None:
    """``dr-central serve``: the dashboard from ``[dashboard]``, the broker from ``[mqtt]``."""
    from central.mqtt import link_settings

    source = Path(config.source)
    base = source.resolve().parent if source.is_file() else Path.cwd()
    settings = DashboardSettings.from_mapping(
        config.dashboard, base_dir=base, data_dir=config.data_dir
    )
    link = link_settings(config)
    feed_settings = FeedSettings(
        host=link.host,
        port=link.port,
        ca_file=link.ca_file,
        cert_file=link.cert_file,
        key_file=link.key_file,
        client_id=f"{link.instance}-tableau"[:64],
    )
    mount_dashboard(app, source=service, settings=settings, feed_settings=feed_settings)
