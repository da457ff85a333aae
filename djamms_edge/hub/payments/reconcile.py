"""``djamms-hub payments reconcile``: give a hub restored from a backup back every request patrons paid for since.

A backup holds what the hub knew when it was taken; the payment provider holds every payment. Each checkout
paid since a time goes through the hub's own path for a provider-verified payment (``PaymentFlow.confirm``:
the amount must be the venue's price, a payment queues one request, a replay changes nothing). A checkout
whose request the store no longer has (it began after the backup) is first rebuilt from what the hub put in
the checkout itself when it began it (the song and the patron's id: ``CheckoutOrder.song``), which is as
trustworthy as the checkout: the provider reports it, and only the hub writes it. Checkouts made before the
hub did that (or whose venue or price no longer match) are listed for a refund by hand.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from djamms_edge.hub.payments.flow import PaymentFlow
from djamms_edge.hub.payments.money import price_text
from djamms_edge.hub.payments.provider import VerifiedPayment
from djamms_edge.hub.store.base import Payment, PaymentReused, VenuePrice

log = logging.getLogger(__name__)
NO_ADDRESS = ""  # a rebuilt request's client address: the patron's address is never given to the provider


@dataclass(frozen=True, slots=True)
class ByHand:
    """A payment the hub cannot turn into its request: refund it in the provider's dashboard."""

    payment_ref: str
    checkout_ref: str | None
    amount: str  # as people read it: "2.50 USD"
    why: str


@dataclass
class Reconciled:
    rebuilt: list[str] = field(default_factory=list)  # request ids queued by this run
    already: int = 0  # requests the store had (a replay: nothing changed)
    # Paid, refused by the venue's rules (the hub refunds them), or refunded at the provider already.
    refused: list[str] = field(default_factory=list)
    by_hand: list[ByHand] = field(default_factory=list)
    not_ours: int = 0  # checkouts of the provider's account this hub did not make

    def summary(self) -> str:
        return (f"rebuilt {len(self.rebuilt)}, already there {self.already}, refused/refunded {len(self.refused)}, "
                f"by hand {len(self.by_hand)}" + (f", not this hub's {self.not_ours}" if self.not_ours else ""))


async def reconcile(flow: PaymentFlow, since_s: int) -> Reconciled:
    """Replay every checkout paid since ``since_s`` (Unix time) into the store. PaymentError when the provider
    cannot be asked; StoreUnavailable when the store cannot be written."""
    assert flow.provider is not None, "a hub that takes no payments has nothing to reconcile"
    result = Reconciled()
    for paid in await flow.provider.paid_checkouts(since_s):
        await _one(flow, paid, result)
    return result


async def _one(flow: PaymentFlow, paid: VerifiedPayment, result: Reconciled) -> None:
    if paid.request_id is None or paid.venue_id is None:
        result.not_ours += 1
        return
    store, provider = flow.store, flow.provider
    assert provider is not None
    payment = await store.get_payment(paid.request_id)
    if payment is None and paid.checkout_ref is not None:
        payment = await store.payment_by_checkout(paid.checkout_ref)
    if payment is None or payment.status == "awaiting_payment":
        # Queued after the backup and given back since (refused, removed by staff, the venue closed, or from
        # Stripe's dashboard): queueing it again would play a song its patron was refunded for.
        refund_id = await provider.refunded(paid.payment_ref)
        if refund_id is not None:
            log.info("venue %s: payment %s was refunded (%s); its request is not queued again", paid.venue_id,
                     paid.payment_ref, refund_id)
            result.refused.append(paid.request_id)
            return
    if payment is None:
        why = await _rebuild(flow, paid)
        if why is not None:
            result.by_hand.append(ByHand(paid.payment_ref, paid.checkout_ref,
                                         price_text(VenuePrice(paid.amount_minor, paid.currency.lower())), why))
            return
    outcome = await flow.confirm(paid)
    if outcome is None:
        result.by_hand.append(ByHand(paid.payment_ref, paid.checkout_ref,
                                     price_text(VenuePrice(paid.amount_minor, paid.currency.lower())),
                                     "the hub will not take it for its request (the log above says why)"))
    elif outcome.replayed:
        result.already += 1
    elif outcome.accepted:
        log.info("venue %s: request %s (payment %s) is back in the queue", paid.venue_id, outcome.request_id,
                 paid.payment_ref)
        result.rebuilt.append(outcome.request_id)
    else:
        log.info("venue %s: request %s (payment %s) was refused: %s; the hub refunds it", paid.venue_id,
                 outcome.request_id, paid.payment_ref, outcome.error)
        result.refused.append(outcome.request_id)


async def _rebuild(flow: PaymentFlow, paid: VerifiedPayment) -> str | None:
    """Record the payment of a checkout the store lost, as the checkout began; else why it cannot be."""
    assert paid.request_id is not None and paid.venue_id is not None and flow.provider is not None
    if paid.song is None:
        return "its checkout names no song (made before the hub recorded songs with checkouts)"
    price = await flow.store.get_venue_price(paid.venue_id)
    if price is None:
        return (f"venue {paid.venue_id!r} is not on this hub (opened after the backup; if it is another hub's on "
                "the same Stripe account, leave it)")
    if (paid.amount_minor, paid.currency.lower()) != (price.price_minor, price.currency):
        return f"the venue's price is now {price_text(price)}"
    # PaymentReused: the provider's webhook (it retries them) recorded it meanwhile; confirm finds that one.
    with contextlib.suppress(PaymentReused):
        await flow.store.create_payment(Payment(
            paid.request_id, paid.venue_id, flow.provider.name, price.price_minor, price.currency, paid.song,
            paid.requester_id, NO_ADDRESS, "awaiting_payment", flow.now_ms(), checkout_ref=paid.checkout_ref))
    return None
