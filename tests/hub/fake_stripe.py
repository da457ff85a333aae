"""A fake Stripe on loopback: the REST shapes the official ``stripe`` library sends and reads, a hosted
checkout page to pay on, and webhooks signed the way Stripe signs them (HMAC-SHA256 over "t.payload").

Only what the hub uses: Checkout Sessions (create, retrieve, list: a list object paged by ``starting_after``,
newest first, filtered by ``created[gte]`` and ``status``), PaymentIntents (retrieve), Refunds (create; list
by ``payment_intent``),
with Idempotency-Key replay as Stripe does it. Knobs make refunds fail or lose their answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

API_KEY = "sk_test_fake_0123456789"
WEBHOOK_SECRET = "whsec_fake_0123456789abcdef"


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header: ``t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


# Stripe's minimum charge per currency (its "minimum and maximum charge amounts" table, in the smallest unit), for
# the currencies the tests use; a currency outside it is one this fake does not take.
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "jpy": 50}


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "api_error"
    return web.json_response({"error": {"type": kind, "message": message, "code": code}}, status=status)


@dataclass
class FakeStripe:
    url: str = ""
    webhook_url: str = ""  # the hub's endpoint; paying on the hosted page sends the event there
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) as received
    queries: list[dict[str, str]] = field(default_factory=list)  # each request's query parameters, as received
    down: bool = False  # answer every API call 503, as Stripe does in an outage
    idempotent: dict[str, tuple[int, Any]] = field(default_factory=dict)
    fail_refunds: int = 0  # answer this many refund calls 503 before doing anything
    lose_refund_answers: int = 0  # do this many refunds, then answer 500 as if the answer was lost
    webhooks_sent: list[tuple[int, str]] = field(default_factory=list)  # (hub status, body)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    # --- what a test does directly --------------------------------------------------------------

    def pay(self, session_id: str, *, amount: int | None = None) -> dict[str, Any]:
        """Complete a checkout (as the patron paying would); returns the checkout.session.completed event."""
        session = self.sessions[session_id]
        intent = self.payment_intent(amount if amount is not None else session["amount_total"], session["currency"],
                                     session["metadata"])
        session.update(payment_status="paid", status="complete", payment_intent=intent["id"])
        if amount is not None:
            session["amount_total"] = amount
        return self.event("checkout.session.completed", session)

    def payment_intent(self, amount: int, currency: str, metadata: dict[str, str] | None = None,
                       status: str = "succeeded") -> dict[str, Any]:
        intent: dict[str, Any] = {"id": _id("pi"), "object": "payment_intent", "amount": amount,
                  "amount_received": amount if status == "succeeded" else 0, "currency": currency, "status": status,
                  "metadata": metadata or {}, "livemode": False}
        self.intents[intent["id"]] = intent
        return intent

    @staticmethod
    def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {"id": _id("evt"), "object": "event", "api_version": "2025-01-01", "created": int(time.time()),
                "type": kind, "livemode": False, "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None}, "data": {"object": dict(obj)}}

    async def send(self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None,
                   signature: str | None = None, body: str | None = None) -> tuple[int, Any]:
        """POST ``event`` to the hub as Stripe would (or with a forged/stale signature, or another body)."""
        payload = body if body is not None else json.dumps(event, separators=(",", ":"))
        header = signature if signature is not None else sign(payload, secret, timestamp)
        async with aiohttp.ClientSession() as http, http.post(
                self.webhook_url, data=payload.encode(),
                headers={"Stripe-Signature": header, "Content-Type": "application/json"}) as resp:
            answer = await resp.json(content_type=None)
            self.webhooks_sent.append((resp.status, payload))
            return resp.status, answer

    def refunds_of(self, intent_id: str) -> list[dict[str, Any]]:
        return [r for r in self.refunds if r["payment_intent"] == intent_id]

    # --- the REST API the library calls -----------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        self.queries.append(dict(request.query))
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return _error(401, "Invalid API Key provided")
        if self.down:
            return _error(503, "Stripe is having a moment")
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key is not None and key in self.idempotent:
            status, body = self.idempotent[key]
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        form = dict(await request.post()) if request.method == "POST" else {}
        if request.method == "GET" and request.path == "/v1/checkout/sessions":
            body, status = self._list_sessions(request.query)
            return web.json_response(body, status=status)
        if request.method == "GET" and request.path == "/v1/refunds":  # one page is all the hub asks for
            given = [r for r in reversed(self.refunds) if r["payment_intent"] == request.query.get("payment_intent")]
            return web.json_response({"object": "list", "url": "/v1/refunds", "has_more": False, "data": given})
        status, body = self._route(request.method, request.path, {k: str(v) for k, v in form.items()})
        lost = status == 500  # done and saved under its key, but this answer never reaches the client
        if lost:
            status = 200
        if request.method == "POST" and key is not None and status != 503:
            self.idempotent[key] = (status, body)
        if lost:
            return _error(500, "An unknown error occurred")
        return web.json_response(body, status=status)

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v1/checkout/sessions":
            refusal = self._metadata_refusal(form) or self._checkout_price_refusal(form)
            return refusal or (200, self._create_session(form))
        if method == "GET" and parts[:3] == ["v1", "checkout", "sessions"] and len(parts) == 4:
            return self._found(self.sessions.get(parts[3]), "checkout.session", parts[3])
        if method == "GET" and parts[:2] == ["v1", "payment_intents"] and len(parts) == 3:
            return self._found(self.intents.get(parts[2]), "payment_intent", parts[2])
        if method == "POST" and path == "/v1/refunds":
            return self._refund(form)
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({path})"}}

    def _list_sessions(self, query: Any) -> tuple[Any, int]:
        """Stripe's list: newest first; ``limit`` 1-100 (10 by default); the page after ``starting_after``."""
        try:
            limit = int(query.get("limit", "10"))
            since = int(query.get("created[gte]", "0"))
        except ValueError:
            return {"error": {"type": "invalid_request_error", "message": "Invalid integer"}}, 400
        if not 1 <= limit <= 100:
            return {"error": {"type": "invalid_request_error", "param": "limit",
                              "message": "This value must be between 1 and 100."}}, 400
        # Newest first; sessions created in the same second, the later one first, as Stripe lists them.
        newest_first = [s for _, s in sorted(enumerate(self.sessions.values()), reverse=True,
                                              key=lambda pair: (pair[1]["created"], pair[0]))]
        chosen = [s for s in newest_first if s["created"] >= since and query.get("status") in (None, s["status"])]
        after = query.get("starting_after")
        if after is not None:
            ids = [s["id"] for s in chosen]
            if after not in ids:
                return {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                  "message": f"No such checkout.session: '{after}'"}}, 400
            chosen = chosen[ids.index(after) + 1:]
        return {"object": "list", "url": "/v1/checkout/sessions", "has_more": len(chosen) > limit,
                "data": chosen[:limit]}, 200

    @staticmethod
    def _found(obj: dict[str, Any] | None, kind: str, obj_id: str) -> tuple[int, Any]:
        if obj is None:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "message": f"No such {kind}: '{obj_id}'"}}
        return 200, obj

    @staticmethod
    def _metadata_refusal(form: dict[str, str]) -> tuple[int, Any] | None:
        """Stripe's metadata limits: 50 keys, keys of 40 characters without square brackets, values of 500."""
        for prefix in ("metadata[", "payment_intent_data[metadata]["):
            meta = {k[len(prefix):-1]: v for k, v in form.items() if k.startswith(prefix) and k.endswith("]")}
            bad = [k for k, v in meta.items() if len(k) > 40 or "[" in k or "]" in k or len(v) > 500]
            if len(meta) > 50 or bad:
                return 400, {"error": {"type": "invalid_request_error", "param": f"{prefix}{(bad or [''])[0]}]",
                                       "message": "Invalid metadata: at most 50 keys, keys of up to 40 characters "
                                                  "(no square brackets) and values of up to 500 characters."}}
        return None

    @staticmethod
    def _checkout_price_refusal(form: dict[str, str]) -> tuple[int, Any] | None:
        """Stripe's 400 for a currency it does not take or an amount under its minimum (its error shape)."""
        currency = form["line_items[0][price_data][currency]"]
        amount = int(form["line_items[0][price_data][unit_amount]"])
        if currency not in MINIMUM_CHARGE:
            return 400, {"error": {"type": "invalid_request_error", "param": "line_items[0][price_data][currency]",
                                   "message": f"Invalid currency: {currency}. Stripe currently supports these "
                                              f"currencies: {', '.join(MINIMUM_CHARGE)}."}}
        if amount < MINIMUM_CHARGE[currency]:
            return 400, {"error": {"type": "invalid_request_error", "code": "amount_too_small",
                                   "doc_url": "https://stripe.com/docs/error-codes/amount-too-small",
                                   "message": "The Checkout Session's total amount due must add up to at least "
                                              f"{MINIMUM_CHARGE[currency]} {currency} (in its smallest unit)"}}
        return None

    def _create_session(self, form: dict[str, str]) -> dict[str, Any]:
        session_id = _id("cs")
        metadata = {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")}
        session = {
            "id": session_id, "object": "checkout.session", "mode": form["mode"],
            "url": f"{self.url}/pay/{session_id}", "status": "open", "payment_status": "unpaid",
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
            "currency": form["line_items[0][price_data][currency]"],
            "client_reference_id": form.get("client_reference_id"), "metadata": metadata,
            "success_url": form["success_url"], "cancel_url": form["cancel_url"], "payment_intent": None,
            "expires_at": int(form["expires_at"]), "livemode": False, "created": int(time.time()),
            "product": form.get("line_items[0][price_data][product_data][name]", ""),
        }
        self.sessions[session_id] = session
        return session

    def _refund(self, form: dict[str, str]) -> tuple[int, Any]:
        if self.fail_refunds > 0:
            self.fail_refunds -= 1
            return 503, {"error": {"type": "api_error", "message": "Stripe is having a moment"}}
        intent = self.intents.get(form.get("payment_intent", ""))
        if intent is None:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "message": "No such payment_intent"}}
        amount = int(form.get("amount", intent["amount_received"]))
        already = sum(r["amount"] for r in self.refunds_of(intent["id"]))
        if amount + already > intent["amount_received"]:
            return 400, {"error": {"type": "invalid_request_error", "code": "charge_already_refunded",
                                   "message": "Charge has already been refunded."}}
        refund = {"id": _id("re"), "object": "refund", "amount": amount, "currency": intent["currency"],
                  "payment_intent": intent["id"], "status": "succeeded", "reason": form.get("reason")}
        self.refunds.append(refund)
        if self.lose_refund_answers > 0:
            self.lose_refund_answers -= 1
            return 500, refund
        return 200, refund

    # --- the hosted checkout page ---------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return web.Response(status=404, text="no such checkout")
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Fake Stripe Checkout</title></head>
<body><h1>Fake Stripe Checkout</h1><p id="product">{html.escape(session['product'])}</p>
<p id="amount">{amount}</p>
<form method="post"><button id="pay" type="submit">Pay {amount}</button></form>
<p><a id="cancel" href="{html.escape(session['cancel_url'])}">Cancel</a></p></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _pay(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]
        if session_id not in self.sessions:
            return web.Response(status=404, text="no such checkout")
        event = self.pay(session_id)
        # Like Stripe: the webhook goes out on its own; the patron is sent back at once.
        task = asyncio.create_task(self.send(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        raise web.HTTPSeeOther(self.sessions[session_id]["success_url"])

    async def drain(self) -> None:
        """Wait for webhooks still in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


@asynccontextmanager
async def running_fake_stripe() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe()
    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", fake._api)
    app.router.add_get("/pay/{id}", fake._page)
    app.router.add_post("/pay/{id}", fake._pay)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await fake.drain()
        await runner.cleanup()
