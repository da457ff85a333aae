"""Amounts as people read them: the smallest unit in the store, the currency's own units on every page."""

from __future__ import annotations

import pytest

from djamms_edge.hub.payments.money import ZERO_DECIMAL, amount_text, price_text
from djamms_edge.hub.store.base import VenuePrice
from djamms_edge.hub.web.console_pages import span_text


@pytest.mark.parametrize(("price", "amount", "text"), [
    (VenuePrice(250, "usd"), "2.50", "2.50 USD"),
    (VenuePrice(5, "eur"), "0.05", "0.05 EUR"),
    (VenuePrice(500, "jpy"), "500", "500 JPY"),  # no minor unit: not 5.00
    (VenuePrice(1500, "KRW"), "1500", "1500 KRW"),
    (VenuePrice(0, "eur"), "0.00", "free"),
    (VenuePrice(0, "jpy"), "0", "free"),
])
def test_a_price_in_the_currencys_own_units(price: VenuePrice, amount: str, text: str) -> None:
    assert (amount_text(price), price_text(price)) == (amount, text)


@pytest.mark.parametrize(("seconds", "text"), [
    (1800, "30 min"), (5400, "1 h 30 min"), (7200, "2 h"), (90, "1 min 30 s"), (45.4, "45 s"), (0, "0 s"),
])
def test_a_span_of_a_hub_setting(seconds: float, text: str) -> None:
    assert span_text(seconds) == text


def test_every_currency_the_hub_offers_stripe_is_one_its_amounts_can_say() -> None:
    """The zero-decimal list and Stripe's currencies agree: each zero-decimal one is offered, each offered one is
    three lower-case letters, and none of Stripe's three-decimal currencies is (a price here has 0 or 2 decimals)."""
    from djamms_edge.hub.payments.stripe_provider import CURRENCIES

    assert ZERO_DECIMAL <= CURRENCIES
    assert all(len(c) == 3 and c.isascii() and c.islower() for c in CURRENCIES)
    assert not CURRENCIES & {"bhd", "jod", "kwd", "omr", "tnd"}
