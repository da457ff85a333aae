"""Amounts as people read them: a price is stored in the currency's smallest unit, as Stripe takes it."""

from __future__ import annotations

from djamms_edge.hub.store.base import VenuePrice

# ISO 4217 currencies without minor units (Stripe's list): their amounts are whole units (500 JPY is 500).
ZERO_DECIMAL = frozenset(["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                          "xaf", "xof", "xpf"])

PROVIDER_NAMES = {"stripe": "Stripe", "free": "no payment provider"}  # as staff read them


def decimals(currency: str) -> int:
    """Digits after the point in an amount of ``currency``: 2 for eur (250 is 2.50), 0 for jpy."""
    return 0 if currency.lower() in ZERO_DECIMAL else 2


def amount_text(price: VenuePrice) -> str:
    """The amount without the currency: "2.50", "500"."""
    places = decimals(price.currency)
    return f"{price.price_minor / 10 ** places:.{places}f}"


def price_text(price: VenuePrice) -> str:
    """The price as the patron reads it: "2.50 EUR", "500 JPY", "free"."""
    return "free" if price.price_minor == 0 else f"{amount_text(price)} {price.currency.upper()}"
