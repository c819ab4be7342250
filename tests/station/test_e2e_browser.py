"""A whole enrolment in headless Chromium against the simulators, central and the daemon."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from edge.biometrics.types import FingerPosition as P
from tests.station.conftest import AGENT, FINGERS, PASSWORD, StationWorld

STEP_TIMEOUT_MS = 30_000  # a capture goes through the serial link and the extractor


@pytest.mark.browser
async def test_whole_enrolment_in_the_console(world: StationWorld, page: Page) -> None:
    pre = world.prerequest(surname="Navigateur", given_names="Inès")
    daemon = await world.start_daemon()
    await page.goto(daemon.url)
    await page.get_by_test_id("agent-id").fill(AGENT)
    await page.get_by_test_id("password").fill(PASSWORD)
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("link-status")).to_have_text("Lien : en ligne")
    await page.get_by_test_id("new-session").click()

    # Step 2: the agent clicks "scan", the citizen presents the QR code to the scanner.
    await page.get_by_test_id("scan-qr").click()
    await expect(page.get_by_test_id("message")).to_contain_text("Présentez le QR code")
    holder = page.get_by_test_id("holder")
    qr = world.qr(pre.number)
    while not await holder.is_visible():
        await world.scanner.control.scan(qr)
        try:
            await expect(holder).to_be_visible(timeout=500)
        except AssertionError:
            continue
    await expect(holder).to_contain_text("Navigateur")

    # Step 3: documents.
    await page.get_by_test_id("doc-photo").check()
    await page.get_by_test_id("doc-proof_of_address").check()
    await page.get_by_test_id("documents-submit").click()

    # Step 4: fingers, with the live preview and quality meter after each capture.
    current = page.get_by_test_id("finger-current")
    summary = page.get_by_test_id("step-summary")
    previews = 0
    for _ in range(20):
        if await summary.is_visible():
            break
        text = await current.inner_text()
        position = next(p for p, name in _NAMES.items() if name in text)
        await world.place(FINGERS[position])
        await page.get_by_test_id("capture").click()
        await expect(page.get_by_test_id("message")).not_to_contain_text(
            "Capture en cours", timeout=STEP_TIMEOUT_MS
        )
        await expect(page.get_by_test_id("message")).to_be_hidden()
        if await summary.is_visible():
            break
        await expect(page.get_by_test_id("quality-meter")).not_to_have_attribute("value", "0")
        await expect(page.get_by_test_id("preview")).to_be_visible()
        previews += 1
    await expect(summary).to_be_visible()
    assert previews >= 1

    # Step 5 and 6: confirm; the request number and the receipt.
    await page.get_by_test_id("confirm").click()
    number = page.get_by_test_id("request-number")
    await expect(number).to_have_text(re_number(), timeout=STEP_TIMEOUT_MS)
    shown = await number.inner_text()
    assert (await world.outcome({"request_number": shown})) == shown
    async with page.expect_popup() as popup:
        await page.get_by_test_id("receipt-link").click()
    receipt = await popup.value
    assert receipt.url.startswith("blob:")


def re_number() -> re.Pattern[str]:
    return re.compile(r"^[0-9A-Z]{12}$")


_NAMES = {
    P.RIGHT_INDEX: "index droit",
    P.LEFT_INDEX: "index gauche",
    P.RIGHT_MIDDLE: "majeur droit",
    P.LEFT_MIDDLE: "majeur gauche",
    P.RIGHT_RING: "annulaire droit",
    P.LEFT_RING: "annulaire gauche",
}
