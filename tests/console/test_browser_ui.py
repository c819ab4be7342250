"""The agent console in headless Chromium, over fake ports (the real-parts run is in
tests/station/test_e2e_browser.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Page, expect

from edge.console.app import create_app
from tests.fixtures.station import StationKit, adult

NUMBER = "AB12CD34EF"


@pytest.fixture
async def console_url(kit: StationKit) -> AsyncIterator[str]:
    kit.agents.provision("agent1", name="Agent Un", password="correct horse battery")
    status = {
        "device_id": "dr-91228-01",
        "link": {"online": True},
        "queue": {"depth": 0, "alert": False},
        "sensor": "ready",
        "sensor_fr": "prêt",
        "numbers_free": 3,
    }
    app = create_app(kit.station, kit.agents, status=lambda: status)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def sign_in(page: Page, url: str) -> None:
    await page.goto(url)
    await page.get_by_test_id("agent-id").fill("agent1")
    await page.get_by_test_id("password").fill("correct horse battery")
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("home-view")).to_be_visible()


@pytest.mark.browser
async def test_enrolment_in_the_browser(
    page: Page, console_url: str, kit: StationKit, tmp_path: Path
) -> None:
    kit.central.prerequests[NUMBER] = adult(NUMBER)
    await sign_in(page, console_url)
    await expect(page.get_by_test_id("link-status")).to_have_text("Lien : en ligne")
    await page.get_by_test_id("new-session").click()
    await page.get_by_test_id("prerequest-number").fill("xx")
    await page.get_by_test_id("prerequest-submit").click()
    await expect(page.get_by_test_id("message")).to_contain_text("10 caractères")
    await page.get_by_test_id("prerequest-number").fill("ab12-cd34-ef")
    await page.get_by_test_id("prerequest-submit").click()
    await expect(page.get_by_test_id("holder")).to_contain_text("Dupont")
    await page.get_by_test_id("documents-submit").click()
    await expect(page.get_by_test_id("message")).to_contain_text("Pièces manquantes")
    await page.get_by_test_id("doc-photo").check()
    await page.get_by_test_id("doc-proof_of_address").check()
    await page.get_by_test_id("documents-submit").click()
    await expect(page.get_by_test_id("finger-current")).to_contain_text("index droit")
    kit.sensor.put(11, 20)
    await page.get_by_test_id("capture").click()
    await expect(page.get_by_test_id("quality-value")).to_have_text("20 / 100")
    await expect(page.get_by_test_id("advice")).to_contain_text("Appuyez plus fort.")
    await expect(page.get_by_test_id("preview")).to_be_visible()
    outcome = page.get_by_test_id("capture-outcome")
    kit.sensor.put(11)
    await page.get_by_test_id("capture").click()
    await expect(page.get_by_test_id("finger-current")).to_contain_text("essai 3 sur 3")
    kit.sensor.put(11)
    await page.get_by_test_id("capture").click()
    await expect(outcome).to_have_text("index droit : Empreinte enregistrée.")
    await expect(page.get_by_test_id("finger-current")).to_contain_text("index gauche")
    kit.sensor.put(22)
    await page.get_by_test_id("capture").click()
    await expect(outcome).to_contain_text("index gauche : Première capture")
    kit.sensor.put(22)
    await page.get_by_test_id("capture").click()
    await expect(page.get_by_test_id("step-summary")).to_be_visible()
    await expect(page.get_by_test_id("summary")).to_contain_text("index gauche")
    await page.get_by_test_id("confirm").click()
    await expect(page.get_by_test_id("step-done")).to_be_visible()
    number = await page.get_by_test_id("request-number").inner_text()
    assert number == kit.sink.drafts[0].request_number
    await page.screenshot(path=str(tmp_path / "done.png"))
