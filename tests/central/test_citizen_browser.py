"""The citizen's tracking page in headless Chromium, over a real HTTP server (SQLite store)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from central.http import build_app
from central.keyring import CentralKeyring
from central.models import Stage
from central.service import CentralService
from dr_contracts.acks import Ack
from dr_contracts.identifiers import format_request_number
from tests.fixtures.central import CentralKit, ManualClock


@pytest.mark.browser
async def test_citizen_follows_a_request(tmp_path: Path, page: Page) -> None:
    CentralKeyring.create(tmp_path / "keys")
    clock = ManualClock()
    service = CentralService.open(
        database=f"sqlite://{tmp_path / 'c.db'}", key_dir=tmp_path / "keys", clock=clock
    )
    kit = CentralKit(service, clock, tmp_path / "keys", "sqlite", random.Random(3))
    try:
        kit.add_device("dr-91228-01")
        ack = service.ingest(kit.enrolment(), device_id="dr-91228-01")
        assert isinstance(ack, Ack)
        service.advance_status(ack.request_number, Stage.UNDER_REVIEW)
        printed = format_request_number(ack.request_number)
        async with TestServer(build_app(service)) as server:
            await page.goto(str(server.make_url("/")))
            await page.get_by_label("Numéro de demande").fill(printed[:-1] + "?")
            await page.get_by_role("button", name="Rechercher").click()
            await expect(page.locator("#erreur")).to_contain_text("bon format")
            typo = printed[:-1] + ("0" if printed[-1] != "0" else "1")
            await page.get_by_label("Numéro de demande").fill(typo)
            await page.get_by_role("button", name="Rechercher").click()
            await expect(page.locator("#erreur")).to_contain_text("erreur de frappe")
            await page.get_by_label("Numéro de demande").fill(printed.lower())
            await page.get_by_role("button", name="Rechercher").click()
            await expect(page.locator("#etat")).to_contain_text("En cours d'instruction")
            await expect(page.locator("table")).to_contain_text("Demande reçue")
    finally:
        service.close()
