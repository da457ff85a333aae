"""Stripe through its official library: Checkout Sessions (cards, Apple Pay, Google Pay), signed webhooks
checked with the library's own verification, refunds with idempotency keys. The only importer of stripe."""

from __future__ import annotations

import logging
from typing import Any

import stripe

from djamms_edge.hub.payments.provider import (
    Checkout,
    CheckoutOrder,
    InvalidWebhook,
    PaymentError,
    PriceRefused,
    VerifiedPayment,
)
from djamms_edge.hub.store.base import Song

log = logging.getLogger(__name__)
PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
WEBHOOK_TOLERANCE_S = 300  # Stripe's own default: an older signed event is a replay
PRICE_ERRORS = ("amount_too_small", "amount_too_large")  # Stripe's error codes for an amount it will not charge
# Stripe's metadata limits: 50 keys, keys of 40 characters, values of 500. A longer value (a song added by a URL of
# up to 2,048 characters) goes in numbered parts: video_id, video_id.1, ... (a checkout takes at most 12 keys).
METADATA_VALUE_MAX = 500
LIST_PAGE = 100  # Stripe's largest page
# The currencies Stripe charges in (its "supported presentment currencies", 2025), lower case as its API takes them.
# Its three-decimal currencies (BHD, JOD, KWD, OMR, TND) are left out: a price here has 0 or 2 decimals
# (money.decimals). An account may still refuse one of these (by country, payment method): checkout then says so
# (PriceRefused), and staff see it on the dashboard.
CURRENCIES = frozenset([
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt", "bgn", "bif", "bmd",
    "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf", "chf", "clp", "cny", "cop", "crc", "cve", "czk",
    "djf", "dkk", "dop", "dzd", "egp", "etb", "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd",
    "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "isk", "jmd", "jpy", "kes", "kgs", "khr", "kmf", "krw", "kyd",
    "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop", "mur", "mvr", "mwk",
    "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg",
    "qar", "ron", "rsd", "rub", "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std", "szl",
    "thb", "tjs", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu", "uzs", "vnd", "vuv", "wst", "xaf",
    "xcd", "xcg", "xof", "xpf", "yer", "zar", "zmw"
])


class StripeProvider:
    name = "stripe"
    currencies = CURRENCIES

    def __init__(self, secret_key: str, webhook_secret: str, api_base: str, *, timeout_s: float = 10.0,
                 network_retries: int = 2) -> None:
        if not secret_key or not webhook_secret:
            raise ValueError("Stripe needs a secret key and a webhook signing secret")
        self._webhook_secret = webhook_secret
        # aiohttp underneath: every call awaits on the hub's loop instead of blocking it.
        self._http = stripe.AIOHTTPClient(timeout=timeout_s)
        self._client = stripe.StripeClient(secret_key, base_addresses={"api": api_base.rstrip("/")},
                                           http_client=self._http, max_network_retries=network_retries)

    async def create_checkout(self, order: CheckoutOrder) -> Checkout:
        metadata = {"request_id": order.request_id, "venue_id": order.venue_id}
        params: Any = {
            "mode": "payment",
            "line_items": [{"quantity": 1, "price_data": {"currency": order.currency, "unit_amount": order.amount_minor,
                                                          "product_data": {"name": order.description}}}],
            "success_url": order.success_url,
            "cancel_url": order.cancel_url,
            "client_reference_id": order.request_id,
            "metadata": {**metadata, **order_metadata(order)},
            "payment_intent_data": {"metadata": metadata},
            "expires_at": order.expires_at_s,
        }
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": "checkout-" + order.request_id})
        except stripe.InvalidRequestError as exc:
            if exc.code in PRICE_ERRORS or "currency" in (exc.param or ""):
                raise PriceRefused(_message(exc)) from None
            raise PaymentError(f"Stripe refused the checkout: {_message(exc)}") from None
        except stripe.StripeError as exc:
            raise PaymentError(f"Stripe refused the checkout: {_message(exc)}") from None
        if not session.url:
            raise PaymentError("Stripe returned a checkout without a URL")
        return Checkout(session.id, session.url)

    def webhook_payment(self, payload: bytes, signature: str | None) -> VerifiedPayment | None:
        try:
            event = stripe.Webhook.construct_event(payload, signature or "", self._webhook_secret,
                                                   tolerance=WEBHOOK_TOLERANCE_S)
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook(f"signature: {exc.user_message or exc}") from None
        except ValueError as exc:  # not JSON
            raise InvalidWebhook(f"body: {exc}") from None
        if event.type not in PAID_EVENTS:
            return None
        return _paid_session(event.data.object)

    async def verify(self, ref: str) -> VerifiedPayment | None:
        try:
            if ref.startswith("cs_"):
                return _paid_session(await self._client.v1.checkout.sessions.retrieve_async(ref))
            if ref.startswith("pi_"):
                return _paid_intent(await self._client.v1.payment_intents.retrieve_async(ref))
        except stripe.InvalidRequestError:
            return None  # no such object
        except stripe.StripeError as exc:
            raise PaymentError(f"Stripe could not be asked about the payment: {_message(exc)}") from None
        return None

    async def paid_checkouts(self, since_s: int) -> list[VerifiedPayment]:
        params: Any = {"created": {"gte": since_s}, "status": "complete", "limit": LIST_PAGE}
        paid = []
        try:
            page = await self._client.v1.checkout.sessions.list_async(params)
            async for session in page.auto_paging_iter():
                verified = _paid_session(session)
                if verified is not None:  # complete but not yet paid (a bank transfer): its webhook comes later
                    paid.append(verified)
        except stripe.StripeError as exc:
            raise PaymentError(f"Stripe could not list the checkouts: {_message(exc)}") from None
        paid.reverse()  # Stripe lists the newest first
        return paid

    async def refunded(self, payment_ref: str) -> str | None:
        try:
            refunds = await self._client.v1.refunds.list_async({"payment_intent": payment_ref, "limit": LIST_PAGE})
        except stripe.StripeError as exc:
            raise PaymentError(f"Stripe could not list the payment's refunds: {_message(exc)}") from None
        given = [r.id for r in refunds.data if r.status in ("succeeded", "pending", "requires_action")]
        return given[0] if given else None

    async def refund(self, payment_ref: str, amount_minor: int, idempotency_key: str) -> str:
        try:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": payment_ref, "amount": amount_minor, "reason": "requested_by_customer"},
                {"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as exc:
            if exc.code == "charge_already_refunded":  # refunded already (say, from Stripe's dashboard)
                log.warning("payment %s was already refunded at Stripe", payment_ref)
                return "already-refunded"
            raise PaymentError(f"Stripe refused the refund: {_message(exc)}") from None
        except stripe.StripeError as exc:
            raise PaymentError(f"Stripe refused the refund: {_message(exc)}") from None
        if refund.status in ("failed", "canceled"):
            raise PaymentError(f"Stripe refund {refund.id} {refund.status}")
        return str(refund.id)

    async def close(self) -> None:
        await self._http.close_async()


def _message(exc: stripe.StripeError) -> str:
    return str(exc.user_message or exc.__class__.__name__)


def _metadata(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    return {k: str(v) for k, v in meta.items()}


def order_metadata(order: CheckoutOrder) -> dict[str, str]:
    """The request a checkout pays for, in Stripe's metadata (every value the hub's own: the song from the
    venue's list, the patron's id; never their address)."""
    meta: dict[str, str] = {}
    if order.requester_id is not None:
        meta["requester_id"] = order.requester_id
    song = order.song
    if song is None:
        return meta
    for key, value in (("video_id", song.video_id), ("title", song.title), ("artist", song.artist),
                       ("duration", repr(song.duration)), ("details_by", song.details_by)):
        if value is None:
            continue
        parts = [value[i:i + METADATA_VALUE_MAX] for i in range(0, len(value), METADATA_VALUE_MAX)] or [""]
        for number, part in enumerate(parts):
            meta[key if number == 0 else f"{key}.{number}"] = part
    return meta


def _joined(meta: dict[str, str], key: str) -> str | None:
    if key not in meta:
        return None
    parts, number = [meta[key]], 1
    while f"{key}.{number}" in meta:
        parts.append(meta[f"{key}.{number}"])
        number += 1
    return "".join(parts)


def _song(meta: dict[str, str]) -> Song | None:
    """The song ``order_metadata`` recorded; None for a checkout made before it did (or not by this hub)."""
    video_id, title, artist, duration = (_joined(meta, k) for k in ("video_id", "title", "artist", "duration"))
    if video_id is None or title is None or artist is None or duration is None:
        return None
    try:
        seconds = float(duration)
    except ValueError:
        return None
    return Song(video_id, title, artist, seconds, _joined(meta, "details_by"))


def _paid_session(obj: Any) -> VerifiedPayment | None:
    session: dict[str, Any] = obj.to_dict()  # a StripeObject: read it as plain data
    if session.get("object") != "checkout.session" or session.get("payment_status") != "paid":
        return None
    intent = session.get("payment_intent")
    intent_id = intent if isinstance(intent, str) else (intent or {}).get("id")
    if not intent_id or session.get("amount_total") is None:
        return None
    meta = _metadata(session)
    return VerifiedPayment(intent_id, int(session["amount_total"]), str(session["currency"]), session["id"],
                           session.get("client_reference_id") or meta.get("request_id"), meta.get("venue_id"),
                           _song(meta), meta.get("requester_id"))


def _paid_intent(obj: Any) -> VerifiedPayment | None:
    intent: dict[str, Any] = obj.to_dict()
    if intent.get("object") != "payment_intent" or intent.get("status") != "succeeded":
        return None
    meta = _metadata(intent)
    return VerifiedPayment(intent["id"], int(intent.get("amount_received") or 0), str(intent["currency"]), None,
                           meta.get("request_id"), meta.get("venue_id"))
