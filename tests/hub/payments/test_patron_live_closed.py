"""The patron page says, live, whether paid requests are open: a phone left on the page sees them close when the
venue's box stops (released, or silent past the hub's stale_after_s) and open again when it starts, without a
reload; the Request buttons follow, and a screen reader hears each change (an aria-live region). Headless
chromium against a real hub charging through the fake Stripe; the box is a device token driving the hub's
registry as a box does."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from djamms_edge.hub import api_payments
from tests.browser import PageWatch, check_layout, chromium_page, save_screenshot
from tests.hub.payments.conftest import STAND_IN_BOX, Paying, PayingFactory, register_box

CLOSED_TEXT = "Nothing is playing at the venue right now, so requests are closed."


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the page does not depend on the store; one backend keeps the suite fast


async def expect_closed(page: Page) -> None:
    await expect(page.locator("#closed")).to_be_visible()
    await expect(page.locator("#closed")).to_contain_text(CLOSED_TEXT)
    await expect(page.locator("#reopened")).to_be_hidden()
    for button in await page.locator("button.choose").all():
        await expect(button).to_be_disabled()


async def expect_open(page: Page) -> None:
    await expect(page.locator("#closed")).to_be_hidden()
    await expect(page.locator("#reopened")).to_have_text("The music is on: requests are open again.")
    for button in await page.locator("button.choose").all():
        await expect(button).to_be_enabled()


async def release(p: Paying) -> None:
    status, body = await p.hub.call("POST", f"/api/v1/venues/{p.venue}/players/release", {"deviceId": STAND_IN_BOX},
                                    headers=p.hub.device(p.venue, STAND_IN_BOX))
    assert (status, body["status"]) == (200, "released"), body


async def test_requests_open_and_close_on_the_page_as_the_box_starts_and_stops(
        start_paying: PayingFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # The page re-reads what the feed does not announce (a box gone silent) every KEEPALIVE_S (15 s); sooner here.
    monkeypatch.setattr(api_payments, "KEEPALIVE_S", 0.5)
    async with start_paying(playing=False) as p, chromium_page() as page:
        watch = PageWatch(page, p.hub.url)
        await page.goto(f"{p.hub.url}/v/{p.venue}")
        await check_layout(page)
        await expect_closed(page)  # as rendered, before any script ran: no box plays
        assert await page.locator("#requests-state").get_attribute("aria-live") == "polite"
        await save_screenshot(page, "patron-requests-closed.png")

        await register_box(p.hub, p.venue, STAND_IN_BOX)  # the box starts: the feed's master change opens them
        await expect_open(page)
        await page.get_by_role("button", name="Request Born to Run by Bruce Springsteen").click()
        await expect(page.locator("#confirm-pay")).to_be_enabled()
        await save_screenshot(page, "patron-requests-reopened.png")

        await release(p)  # the box stops (hands its lease back): closed at once, even the open confirmation
        await expect_closed(page)
        await expect(page.locator("#confirm-pay")).to_be_disabled()

        await register_box(p.hub, p.venue, STAND_IN_BOX)
        await expect_open(page)
        await page.locator("#search").fill("abba")  # search results follow the state too
        await expect(page.locator("button.choose")).to_have_count(2)
        p.hub.clock.advance(p.hub.config.registry.stale_after_s + 1)  # the box went silent: no change announces it
        await expect_closed(page)
        await page.locator("#search").fill("")
        await expect(page.locator("button.choose")).to_have_count(4)
        await expect_closed(page)
        status, _ = await p.checkout("aaaaaaaaaa1")
        assert status == 409  # the page and the hub agree
        watch.assert_clean()
