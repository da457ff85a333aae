"""The hub's side of paying for a request: checkouts, verified payments, and refunds of refused ones.

A request at a venue that charges is queued only after the provider itself says it was paid (a signed
webhook, or the hub asking the provider): a client's word (a paymentId) is checked, never trusted. The
amount and currency must be the venue's price, and one provider payment queues one request at most.
A paid request refused afterwards (rules at payment time, the box's measured length, staff removal) is
refunded by ``run_refunds``, once: the provider call carries an idempotency key per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from djamms_edge.hub.config import PaymentsConfig
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.payments.free import FreeProvider
from djamms_edge.hub.payments.money import PROVIDER_NAMES, price_text
from djamms_edge.hub.payments.provider import (
    CheckoutOrder,
    InvalidWebhook,
    PaymentError,
    PaymentProvider,
    PriceRefused,
    VerifiedPayment,
)
from djamms_edge.hub.rules import paid_request_refusal
from djamms_edge.hub.store.base import (
    DeviceError,
    HubStore,
    PaidRequest,
    Payment,
    PaymentReused,
    RequestOutcome,
    RequestRules,
    Song,
    StoreUnavailable,
    UnknownVenue,
    VenuePrice,
)

log = logging.getLogger(__name__)
REFUND_BATCH = 20
UNPAID_KEPT_MS = 86_400_000  # an unpaid checkout is kept a day past its expiry (a late webhook still finds it)
UNPAID_SWEEP_S = 3600.0
UNPLAYED_REASON = "The venue closed before your song could play."
PAYMENTS_REPORTER = "payments"  # the "device" a payments problem is reported under on the staff dashboard
RulesFor = Callable[[str, Song], Awaitable[RequestRules]]  # a venue's rules for a song (HubService.rules_for)


def provider_from_config(config: PaymentsConfig) -> PaymentProvider | None:
    """The provider venues with a price pay through; None when the hub takes no money (provider = free)."""
    if config.provider != "stripe":
        return None
    from djamms_edge.hub.payments.stripe_provider import StripeProvider  # only hubs that charge load stripe

    return StripeProvider(config.stripe_secret_key, config.stripe_webhook_secret, config.stripe_api_base)


@dataclass(frozen=True, slots=True)
class CheckoutStarted:
    request_id: str
    status: str  # awaiting_payment, or the request's own status when nothing was to be paid
    checkout_url: str | None
    price: VenuePrice
    error: str | None = None


class PaymentFlow:
    def __init__(self, config: PaymentsConfig, store: HubStore, rules_for: RulesFor, now_ms: Callable[[], int],
                 provider: PaymentProvider | None) -> None:
        self.config = config
        self.store = store
        self.rules_for = rules_for
        self.now_ms = now_ms
        self.free = FreeProvider()
        self.provider = provider
        self._refunds_wanted = asyncio.Event()

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()

    async def price(self, venue_id: str) -> VenuePrice:
        price = await self.store.get_venue_price(venue_id)
        if price is None:
            raise UnknownVenue(f"unknown venue {venue_id!r}")
        return price

    def check_price(self, price: VenuePrice) -> None:
        """A price staff may set: a currency the provider charges in (on a hub without one, only 0 in any)."""
        if self.provider is None:
            if price.price_minor > 0:
                raise ApiError(409, "this hub takes no payments (hub.payments.provider = free): the price must be 0",
                               "price")
            return
        if price.currency not in self.provider.currencies:
            name = PROVIDER_NAMES.get(self.provider.name, self.provider.name)
            raise ApiError(400, f"{name} does not take the currency {price.currency.upper()}: pick one of its"
                                " currencies (such as EUR, GBP, USD or JPY)", "currency")

    def _charging(self, price: VenuePrice) -> PaymentProvider:
        if self.provider is None:
            raise ApiError(503, "the venue charges but no payment provider is configured", "price",
                           headers={"Retry-After": "60"})
        return self.provider

    # --- a patron pays through the provider's checkout ---------------------------------------------

    async def start_checkout(self, venue_id: str, song: Song, requester_id: str | None, client: str,
                             page_url: str) -> CheckoutStarted:
        """A request held ``awaiting_payment`` and the provider's page to pay it on; or, at a free venue,
        the request itself. Songs the rules refuse anyway are refused before anyone pays."""
        price = await self.price(venue_id)
        request_id = str(uuid.uuid4())
        if price.price_minor == 0:
            outcome = await self.submit(PaidRequest(venue_id, song, "free-" + request_id, requester_id, client,
                                                    request_id))
            return CheckoutStarted(outcome.request_id, outcome.status, None, price, outcome.error)
        provider = self._charging(price)
        refusal = paid_request_refusal(song.duration, 0, await self.rules_for(venue_id, song))
        if refusal is not None:
            raise ApiError(422, refusal, "song.duration")
        now_ms = self.now_ms()
        await self.store.create_payment(Payment(request_id, venue_id, provider.name, price.price_minor, price.currency,
                                                song, requester_id, client, "awaiting_payment", now_ms))
        order = CheckoutOrder(
            request_id, venue_id, price.price_minor, price.currency, f"{song.title} — {song.artist}",
            success_url=f"{page_url}?request={request_id}", cancel_url=f"{page_url}?cancelled={request_id}",
            expires_at_s=now_ms // 1000 + self.config.checkout_ttl_s, song=song, requester_id=requester_id,
        )
        try:
            checkout = await provider.create_checkout(order)
        except PriceRefused as exc:
            await self._price_refused(venue_id, price, str(exc))
            raise ApiError(502, "Paying for songs does not work at this venue right now: the payment service will not "
                           "take its price. The staff have been told.", None) from None
        except PaymentError as exc:
            log.warning("venue %s: checkout for request %s failed: %s", venue_id, request_id, exc)
            raise ApiError(502, "The payment service did not answer; please try again.", None) from None
        await self.store.set_checkout(request_id, checkout.ref, checkout.url)
        return CheckoutStarted(request_id, "awaiting_payment", checkout.url, price)

    async def _price_refused(self, venue_id: str, price: VenuePrice, why: str) -> None:
        """Tell the venue's staff on their dashboard (once a day per price): only they can change the price."""
        name = self._charging(price).name
        provider = PROVIDER_NAMES.get(name, name)
        log.error("venue %s: %s will not charge its price %s: %s", venue_id, provider, price_text(price), why)
        now_ms = self.now_ms()
        day = time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000))
        message = (f"Patrons cannot pay: {provider} will not charge the price {price_text(price)} ({why}). "
                   "Change it on the Rules page.")
        report = DeviceError(venue_id, PAYMENTS_REPORTER, f"price-refused-{price.price_minor}-{price.currency}-{day}",
                             message, None, now_ms)
        with contextlib.suppress(StoreUnavailable):  # the patron's answer does not wait on the store
            await self.store.report_device_error(report, now_ms)

    async def webhook(self, payload: bytes, signature: str | None) -> str:
        """A provider's webhook: ``queued``/``refused``/``ignored``; InvalidWebhook if not provably its own."""
        if self.provider is None:
            raise InvalidWebhook("no payment provider is configured")
        verified = self.provider.webhook_payment(payload, signature)
        if verified is None:
            return "ignored"
        outcome = await self.confirm(verified)
        if outcome is None:
            return "ignored"
        return "queued" if outcome.accepted else "refused"

    async def confirm(self, verified: VerifiedPayment) -> RequestOutcome | None:
        """Queue the request a verified payment paid for; None when it pays for nothing of ours (unknown
        checkout, wrong amount or currency, a payment already used). Safe to repeat: a replay changes nothing."""
        payment = None
        if verified.request_id is not None:
            payment = await self.store.get_payment(verified.request_id)
        if payment is None and verified.checkout_ref is not None:
            payment = await self.store.payment_by_checkout(verified.checkout_ref)
        if payment is None:
            log.warning("payment %s names no request of this hub; ignored", verified.payment_ref)
            return None
        if (verified.checkout_ref is not None and payment.checkout_ref != verified.checkout_ref) or (
                verified.venue_id is not None and verified.venue_id != payment.venue_id):
            log.warning("payment %s does not belong to request %s; ignored", verified.payment_ref, payment.request_id)
            return None
        if (verified.amount_minor, verified.currency.lower()) != (payment.amount_minor, payment.currency):
            log.warning("request %s: paid %d %s but the price was %d %s; not queued", payment.request_id,
                        verified.amount_minor, verified.currency, payment.amount_minor, payment.currency)
            return None
        try:
            await self.store.mark_payment_paid(payment.request_id, verified.payment_ref, self.now_ms())
        except PaymentReused:
            log.warning("payment %s was already used for another request; request %s not queued",
                        verified.payment_ref, payment.request_id)
            return None
        return await self.submit(PaidRequest(payment.venue_id, payment.song, verified.payment_ref,
                                             payment.requester_id, payment.client_address, payment.request_id))

    async def submit(self, request: PaidRequest) -> RequestOutcome:
        rules = await self.rules_for(request.venue_id, request.song)
        outcome = await self.store.submit_paid_request(request, rules, self.now_ms())
        if not outcome.accepted:
            self._refunds_wanted.set()  # a paid request refused at payment time: refund it now, not next round
        return outcome

    # --- a client names a payment (REST and the reference's endpoint) -------------------------------

    async def verified_request(self, venue_id: str, payment_id: str, song: Song, requester_id: str | None,
                               client: str, price: VenuePrice) -> RequestOutcome:
        """The request a client-named payment pays for, once the provider confirms it was paid in full."""
        provider = self._charging(price)
        try:
            verified = await provider.verify(payment_id)
        except PaymentError as exc:
            log.warning("venue %s: could not verify payment %s: %s", venue_id, payment_id, exc)
            raise ApiError(503, "The payment service did not answer; please try again.", "paymentId",
                           headers={"Retry-After": "10"}) from None
        if verified is None:
            raise ApiError(402, "This payment was not found or is not complete.", "paymentId")
        if verified.venue_id is not None and verified.venue_id != venue_id:
            raise ApiError(402, "This payment was made at another venue.", "paymentId")
        if (verified.amount_minor, verified.currency.lower()) != (price.price_minor, price.currency):
            raise ApiError(402, "The amount paid is not this venue's price.", "paymentId")
        if verified.request_id is not None and await self.store.get_payment(verified.request_id) is not None:
            outcome = await self.confirm(verified)  # paid through our own checkout: that request, nothing new
            if outcome is None:
                raise ApiError(402, "This payment cannot be used for a request.", "paymentId")
            return outcome
        request_id = str(uuid.uuid4())
        # The same payment again (PaymentReused): the store answers with the request it already paid for.
        with contextlib.suppress(PaymentReused):
            await self.store.create_payment(Payment(
                request_id, venue_id, provider.name, verified.amount_minor, price.currency, song, requester_id,
                client, "paid", self.now_ms(), payment_ref=verified.payment_ref))
        return await self.submit(PaidRequest(venue_id, song, verified.payment_ref, requester_id, client, request_id))

    # --- refunds --------------------------------------------------------------------------------------

    async def refund_round(self) -> int:
        """Send every refund due to its provider; returns how many were refunded this round."""
        refunded = 0
        for payment in await self.store.refunds_due(self.now_ms(), REFUND_BATCH):
            provider = self.provider if self.provider is not None and payment.provider == self.provider.name else None
            if provider is None or payment.payment_ref is None:
                await self._refund_failed(payment, f"no {payment.provider} provider configured to refund through")
                continue
            try:
                refund_id = await provider.refund(payment.payment_ref, payment.amount_minor,
                                                  "refund-" + payment.request_id)
            except PaymentError as exc:
                await self._refund_failed(payment, str(exc))
                continue
            await self.store.record_refund(payment.request_id, "refunded", refund_id, None, None, self.now_ms())
            log.info("venue %s: request %s refunded (%d %s, %s)", payment.venue_id, payment.request_id,
                     payment.amount_minor, payment.currency, refund_id)
            refunded += 1
        return refunded

    async def _refund_failed(self, payment: Payment, reason: str) -> None:
        wait_s = min(self.config.refund_retry_max_s, self.config.refund_interval_s * 2 ** payment.refund_attempts)
        now_ms = self.now_ms()
        log.warning("venue %s: refund of request %s failed (attempt %d, next in %.0f s): %s", payment.venue_id,
                    payment.request_id, payment.refund_attempts + 1, wait_s, reason)
        await self.store.record_refund(payment.request_id, "failed", None, reason[:500], now_ms + round(wait_s * 1000),
                                       now_ms)

    async def refuse_unplayed(self) -> int:
        """Paid requests no box played within ``unplayed_refund_after_h`` of being queued (the venue closed, or
        its boxes were off): refused, so this round refunds them. Returns how many."""
        if self.config.unplayed_refund_after_h <= 0:
            return 0
        now_ms = self.now_ms()
        refused = 0
        for venue_id, request_id in await self.store.unplayed_paid(
                now_ms - round(self.config.unplayed_refund_after_h * 3_600_000), REFUND_BATCH):
            outcome = await self.store.refuse_request(venue_id, request_id, UNPLAYED_REASON, now_ms)
            if outcome.changed:
                log.info("venue %s: paid request %s was not played in time; refunding it", venue_id, request_id)
                refused += 1
        return refused

    async def drop_unpaid(self) -> int:
        """Forget checkouts nobody paid (abandoned on the provider's page), once they can no longer be paid."""
        dropped = await self.store.drop_unpaid(self.now_ms() - self.config.checkout_ttl_s * 1000 - UNPAID_KEPT_MS)
        if dropped:
            log.info("forgot %d unpaid checkouts", dropped)
        return dropped

    async def run_refunds(self) -> None:
        """The refund worker (owned by the app's TaskOwner): a round every refund_interval_s, or at once
        when a paid request was just refused."""
        swept_at = 0.0
        while True:
            try:
                await self.refuse_unplayed()
                await self.refund_round()
                if time.monotonic() - swept_at >= UNPAID_SWEEP_S:
                    swept_at = time.monotonic()
                    await self.drop_unpaid()
            except Exception:
                # The store or the provider is down: everything due stays due for the next round.
                log.exception("refund round failed; retrying in %.0f s", self.config.refund_interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refunds_wanted.wait(), self.config.refund_interval_s)
            self._refunds_wanted.clear()
