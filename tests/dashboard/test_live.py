"""The dashboard feed over the real parts: mosquitto, central's service and MQTT link, and
devices as child processes with their certificates and keys (signed state with a last will,
signed telemetry, sealed enrolments)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from central.dashboard import DashboardFeed, FleetHub, FleetModel, Thresholds
from tests.fixtures.dashboard import WAIT_S, DashboardWorld

pytestmark = pytest.mark.parametrize("central_database", ["sqlite"], indirect=True)


async def until(hub: FleetHub, condition: Callable[[FleetModel], bool]) -> None:
    """Wait (on the hub's change notifications) until ``condition(model)`` holds."""
    async with asyncio.timeout(WAIT_S):
        while not condition(hub.model):
            await hub.wait_change(hub.model.version, timeout_s=WAIT_S)


def field(model: FleetModel, device_id: str, name: str) -> object:
    """A device's field, or None while the device has not been seen yet (no KeyError race)."""
    view = model.devices.get(device_id)
    return None if view is None else getattr(view, name)


def status(model: FleetModel, device_id: str) -> str | None:
    view = model.devices.get(device_id)
    return None if view is None else view.status


async def test_feed_follows_state_telemetry_acks_forgeries_and_last_will(
    dashboard_world: DashboardWorld,
) -> None:
    world = dashboard_world
    hub = FleetHub(FleetModel(thresholds=Thresholds(backlog_depth=5)))
    feed = DashboardFeed(world.feed_settings(), hub=hub, source=world.kit.service)
    link = world.central_link()
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(feed.run()), tg.create_task(link.run())]
        async with asyncio.timeout(WAIT_S):
            await feed.wait_connected()
            await link.wait_connected()
        evry = await world.start_device("dr-91228-01")
        marseille = await world.start_device("dr-13055-01")
        await until(hub, lambda m: status(m, "dr-91228-01") == status(m, "dr-13055-01") == "online")

        await marseille.telemetry(depth=12, age_s=900, disk=30 << 30)
        await until(hub, lambda m: field(m, "dr-13055-01", "queue_depth") == 12)
        assert [(a.kind, a.device_id) for a in hub.model.alerts()] == [("backlog", "dr-13055-01")]

        await world.enrol(evry)
        await until(hub, lambda m: m.enrolments_total == 1)
        assert hub.model.by_department() == {"91": 1}
        await until(hub, lambda m: m.request_stages.get("received") == 1)  # polled from the store

        await world.enrol(evry, forged=True)  # central refuses it: counted by code
        await until(hub, lambda m: m.rejections.get("bad_signature") == 1)
        await evry.command("forge")  # telemetry under another key: dropped, counted
        await until(hub, lambda m: m.rejections.get("message_bad_signature") == 1)
        assert hub.model.devices["dr-91228-01"].queue_depth is None  # nothing forged shown

        await evry.kill()  # no DISCONNECT: the broker publishes the last will
        await until(hub, lambda m: status(m, "dr-91228-01") == "offline")
        assert status(hub.model, "dr-13055-01") == "online"
        await marseille.command("stop")  # a clean stop says offline itself
        await until(hub, lambda m: status(m, "dr-13055-01") == "offline")
        for task in tasks:
            task.cancel()


async def test_revoked_device_messages_are_counted_not_shown(
    dashboard_world: DashboardWorld,
) -> None:
    world = dashboard_world
    hub = FleetHub(FleetModel())
    # No key cache: the revocation applies to the very next message.
    feed = DashboardFeed(world.feed_settings(key_cache_s=0), hub=hub, source=world.kit.service)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(feed.run())
        async with asyncio.timeout(WAIT_S):
            await feed.wait_connected()
        device = await world.start_device("dr-75056-01")
        await device.telemetry(depth=1)
        await until(hub, lambda m: field(m, "dr-75056-01", "queue_depth") == 1)
        world.kit.service.revoke_device("dr-75056-01")
        await device.telemetry(depth=9)
        await until(hub, lambda m: m.rejections.get("message_unknown_sender") == 1)
        assert hub.model.devices["dr-75056-01"].queue_depth == 1
        await until(hub, lambda m: field(m, "dr-75056-01", "registry") == "revoked")
        assert hub.model.alerts() == []
        task.cancel()


async def test_feed_reconnects_after_a_broker_restart(dashboard_world: DashboardWorld) -> None:
    world = dashboard_world
    hub = FleetHub(FleetModel())
    feed = DashboardFeed(world.feed_settings(), hub=hub, source=world.kit.service)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(feed.run())
        await until(hub, lambda m: m.feed_connected)
        device = await world.start_device("dr-69123-01")
        await until(hub, lambda m: status(m, "dr-69123-01") == "online")
        await device.kill()
        await until(hub, lambda m: status(m, "dr-69123-01") == "offline")
        world.broker.stop()
        await until(hub, lambda m: not m.feed_connected)  # the page says the figures are stale
        hub.model.devices.clear()  # forget, to see the retained state come back
        world.broker.start()
        await until(hub, lambda m: m.feed_connected and status(m, "dr-69123-01") == "offline")
        task.cancel()
