"""The dashboard in headless Chromium, live from the real broker and central: several
simulated devices (child processes with certificates and signed messages); one is killed
(its last will fires) and turns offline on the page; alerts appear when thresholds are
crossed; enrolments and rejections show up in the charts and tables."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from central.dashboard import DashboardSettings, Thresholds, mount_dashboard
from tests.fixtures.dashboard import OPERATOR, OPERATOR_PASSWORD, WAIT_S, DashboardWorld

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("central_database", ["sqlite"], indirect=True),
]

TIMEOUT_MS = WAIT_S * 1000
# Set to a file path to keep a screenshot of the dashboard (for reviewing how it reads).
SCREENSHOT_ENV = "DR_DASHBOARD_SCREENSHOT"


@pytest.fixture
async def dashboard_url(dashboard_world: DashboardWorld) -> AsyncIterator[str]:
    world = dashboard_world
    world.accounts()
    settings = DashboardSettings(
        accounts_file=world.directory / "operators.json",
        secure_cookie=False,  # plain HTTP on 127.0.0.1 in the test
        refresh_s=0.5,
        min_push_s=0.1,
        thresholds=Thresholds(offline_after_s=1, backlog_depth=5),
    )
    app = web.Application()
    mount_dashboard(
        app, source=world.kit.service, settings=settings, feed_settings=world.feed_settings()
    )
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/tableau/"
    finally:
        await runner.cleanup()


@pytest.fixture
async def page(chromium: Browser) -> Page:
    page = await chromium.new_page(viewport={"width": 1400, "height": 1100}, locale="fr-FR")
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def sign_in(page: Page, url: str, *, password: str = OPERATOR_PASSWORD) -> None:
    await page.goto(url)
    await page.locator("#identifiant").fill(OPERATOR)
    await page.locator("#mot_de_passe").fill(password)
    await page.get_by_role("button", name="Se connecter").click()


def row(page: Page, device_id: str) -> str:
    return f'#stations tr[data-device="{device_id}"]'


async def test_fleet_live_in_the_browser(
    dashboard_world: DashboardWorld, dashboard_url: str, page: Page
) -> None:
    world = dashboard_world
    link = world.central_link()
    async with asyncio.TaskGroup() as tg:
        link_task = tg.create_task(link.run())
        async with asyncio.timeout(WAIT_S):
            await link.wait_connected()
        evry = await world.start_device("dr-91228-01")
        marseille = await world.start_device("dr-13055-01", version="1.4.3")
        cayenne = await world.start_device("dr-97302-01")

        await sign_in(page, dashboard_url, password="pas le bon mot de passe")
        await expect(page.locator("#erreur")).to_contain_text("mot de passe incorrect")
        await sign_in(page, dashboard_url)
        await expect(page.locator("#direct")).to_contain_text("En direct")
        for device_id in ("dr-91228-01", "dr-13055-01", "dr-97302-01"):
            await expect(page.locator(row(page, device_id))).to_have_attribute(
                "data-status", "online"
            )
        await expect(page.locator("#alertes li.vide")).to_have_text("Aucune alerte.")

        # Telemetry shows up; the backlog alert appears only once its threshold is crossed.
        await marseille.telemetry(depth=3, age_s=120)
        await expect(page.locator(row(page, "dr-13055-01") + " td:nth-child(5)")).to_have_text("3")
        await expect(page.locator("#alertes li[data-kind]")).to_have_count(0)
        await marseille.telemetry(depth=14, age_s=5400, disk=12 << 30)
        backlog = page.locator('#alertes li[data-kind="backlog"][data-device="dr-13055-01"]')
        await expect(backlog).to_contain_text("14 dossiers en attente")
        await cayenne.telemetry(depth=0, sensor="error", disk=800 << 20)
        await expect(
            page.locator('#alertes li[data-kind="sensor"][data-device="dr-97302-01"]')
        ).to_be_visible()

        # Real enrolments ingested by central: the chart and the counts move.
        await world.enrol(evry)
        await world.enrol(evry)
        await world.enrol(cayenne)
        await expect(page.locator("#n-dossiers")).to_have_text("3")
        await expect(page.locator('#departements tr[data-key="91"] td.nombre')).to_have_text("2")
        await expect(page.locator('#departements tr[data-key="973"] td.nombre')).to_have_text("1")
        await expect(page.locator('#graphique-heures rect[data-department="91"]')).to_have_count(1)
        await expect(page.locator('#statuts tr[data-key="received"] td.nombre')).to_have_text("3")
        await world.enrol(cayenne, forged=True)
        await expect(page.locator('#rejets tr[data-key="bad_signature"] td.nombre')).to_have_text(
            "1"
        )

        # Killed without DISCONNECT: the last will turns it offline, then the alert comes.
        await evry.kill()
        await expect(page.locator(row(page, "dr-91228-01"))).to_have_attribute(
            "data-status", "offline"
        )
        await expect(page.locator(row(page, "dr-91228-01") + " .etat")).to_have_text("Hors ligne")
        await expect(
            page.locator('#alertes li[data-kind="offline"][data-device="dr-91228-01"]')
        ).to_be_visible()
        await expect(page.locator("#n-hors-ligne")).to_have_text("1")
        await expect(page.locator(row(page, "dr-13055-01"))).to_have_attribute(
            "data-status", "online"
        )

        # Operators see ids, counts and codes: no pre-request number reaches the page.
        content = await page.content()
        assert world.prerequest_numbers
        for number in world.prerequest_numbers:
            assert number not in content
        if target := os.environ.get(SCREENSHOT_ENV):
            await page.screenshot(path=Path(target), full_page=True)

        # Signing out ends the live view.
        await page.get_by_role("button", name="Se déconnecter").click()
        await expect(page.locator("#identifiant")).to_be_visible()
        link_task.cancel()
