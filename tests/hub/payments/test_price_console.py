"""A venue owner sets the request price on the console's rules page (headless chromium), on a hub charging
through the fake Stripe: the price is typed in the currency's own units, whole yen included, and patrons are
charged exactly that."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser import PageWatch, chromium_page, save_screenshot
from tests.hub.payments.conftest import SONGS, Paying, PayingFactory


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the page does not depend on the store; one backend keeps the suite fast


async def save_price(page: Page, amount: str, currency: str) -> None:
    await page.get_by_label("Currency").fill(currency)
    await page.get_by_label("Price", exact=True).fill(amount)
    await page.get_by_role("button", name="Save price").click()
    await expect(page.get_by_role("status")).to_contain_text("Price saved.")


async def charged(p: Paying) -> tuple[int, str]:
    """What the hub asks Stripe for when a patron requests a song now."""
    status, body = await p.checkout(SONGS[2]["videoId"])
    assert status == 201, body
    session = p.stripe.sessions[p.session_of(body["checkoutUrl"])]
    return session["amount_total"], session["currency"]


async def test_the_owner_sets_the_price_in_the_currencys_own_units(start_paying: PayingFactory) -> None:
    async with start_paying() as p, chromium_page() as page:  # the venue starts at 2.50 USD
        watch = PageWatch(page, p.hub.url)
        await page.goto(f"{p.hub.url}/v/{p.venue}")
        await page.evaluate("token => djamms.setToken(token)", p.hub.user_token("staff", p.venue))
        await page.goto(f"{p.hub.url}/console/{p.venue}/rules")
        await expect(page.get_by_label("Price", exact=True)).to_have_value("2.50")
        await expect(page.get_by_label("Currency")).to_have_value("USD")
        await expect(page.locator("#price-hint")).to_contain_text("by card on their phone, through Stripe")
        await expect(page.get_by_label("Requests per artist within 30 min")).to_be_visible()
        await expect(page.locator("#artist-limit-hint")).to_have_text("Empty: the hub's default, 3.")

        await save_price(page, "500", "JPY")  # yen have no cents: 500 is 500 yen, not 50,000
        await expect(page.get_by_label("Price", exact=True)).to_have_value("500")
        assert await charged(p) == (500, "jpy")
        await page.goto(f"{p.hub.url}/v/{p.venue}")
        await expect(page.locator("#price")).to_have_text("Each request costs 500 JPY.")

        await page.goto(f"{p.hub.url}/console/{p.venue}/rules")
        await expect(page.get_by_label("Price", exact=True)).to_have_value("500")  # as saved, not 5.00
        await save_price(page, "2.5", "eur")
        await expect(page.get_by_label("Price", exact=True)).to_have_value("2.50")
        await expect(page.get_by_label("Currency")).to_have_value("EUR")
        assert await charged(p) == (250, "eur")
        await save_screenshot(page, "console-price-stripe.png")

        # The field suggests the currencies Stripe takes, with their names; one it does not take is refused by
        # the hub, in words, and the field is marked and focused. Patrons still pay the saved price.
        options = page.locator("#currency-options option")
        assert await options.count() > 100
        await expect(page.locator('#currency-options option[value="CHF"]')).to_have_attribute("label", "Swiss Franc")
        assert await page.locator('#currency-options option[value="XYZ"]').count() == 0
        currency = page.get_by_label("Currency")
        await currency.fill("XYZ")
        await page.get_by_label("Price", exact=True).fill("3")
        await page.get_by_role("button", name="Save price").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "Stripe does not take the currency XYZ: pick one of its currencies (such as EUR, GBP, USD or JPY)")
        await expect(currency).to_have_attribute("aria-invalid", "true")
        await expect(currency).to_be_focused()
        await save_screenshot(page, "console-price-currency-refused.png")
        assert await charged(p) == (250, "eur")
        await save_price(page, "3", "GBP")
        await expect(currency).not_to_have_attribute("aria-invalid", "true")
        assert await charged(p) == (300, "gbp")
        watch.assert_clean(allow=("400 (Bad Request)",))  # the refused currency
