"""The payment provider interface: the only things the hub asks of Stripe (or of nothing, when free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from djamms_edge.hub.store.base import Song


class PaymentError(Exception):
    """The provider could not be reached or refused the call; the message is safe to log and show staff."""


class PriceRefused(PaymentError):
    """The provider will not charge the venue's price (too small or too large for it, a currency it does not
    take): a setting for staff to change, not an outage that trying again mends."""


class InvalidWebhook(Exception):
    """A webhook that is not provably the provider's (bad or missing signature, stale timestamp, bad body)."""


@dataclass(frozen=True, slots=True)
class CheckoutOrder:
    request_id: str
    venue_id: str
    amount_minor: int
    currency: str
    description: str
    success_url: str
    cancel_url: str
    expires_at_s: int
    # What the request is, kept with the provider's checkout: a hub restored from a backup taken before the
    # checkout began rebuilds the request from it (payments/reconcile.py). Never the patron's address.
    song: Song | None = None
    requester_id: str | None = None


@dataclass(frozen=True, slots=True)
class Checkout:
    ref: str  # the provider's id of the checkout
    url: str  # where the patron pays


@dataclass(frozen=True, slots=True)
class VerifiedPayment:
    """A payment the provider itself says succeeded (never what a client claims)."""

    payment_ref: str  # one per payment: a payment is used for one request only
    amount_minor: int
    currency: str
    checkout_ref: str | None = None
    request_id: str | None = None  # set when the hub created the checkout
    venue_id: str | None = None
    song: Song | None = None  # what the hub's checkout was for (CheckoutOrder.song), when it said
    requester_id: str | None = None


class PaymentProvider(Protocol):
    name: str
    currencies: frozenset[str]  # ISO 4217 codes, lower case, that it charges in

    async def create_checkout(self, order: CheckoutOrder) -> Checkout: ...

    def webhook_payment(self, payload: bytes, signature: str | None) -> VerifiedPayment | None:
        """The payment a signed webhook reports; None for events that report no completed payment.
        InvalidWebhook unless the signature proves the provider sent it, recently."""
        ...

    async def verify(self, ref: str) -> VerifiedPayment | None:
        """Ask the provider about a checkout or payment id; None when it is unknown or not paid."""
        ...

    async def paid_checkouts(self, since_s: int) -> list[VerifiedPayment]:
        """Every checkout created since ``since_s`` (Unix time) and paid, as the provider itself says, oldest first
        (so rebuilt requests queue in the order their patrons began paying): what a hub restored from a backup
        replays (payments/reconcile.py). PaymentError when it cannot be asked."""
        ...

    async def refunded(self, payment_ref: str) -> str | None:
        """The id of a refund that gives this payment back (succeeded or under way), None if there is none.
        PaymentError when the provider cannot be asked."""
        ...

    async def refund(self, payment_ref: str, amount_minor: int, idempotency_key: str) -> str:
        """Refund a payment (the same key never refunds twice); the provider's refund id."""
        ...

    async def close(self) -> None: ...
