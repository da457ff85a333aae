"""Paying through Stripe (the fake, driven by the official library): a request is queued only once the hub
has verified its payment, a payment queues one request, and a refused paid request is refunded once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.hub.fake_stripe import WEBHOOK_SECRET, sign
from tests.hub.payments.conftest import PRICE, SONGS, STAND_IN_BOX, Paying, PayingFactory, register_box

DANCING, WATERLOO, BORN, TOO_LONG = (s["videoId"] for s in SONGS)


async def wait_for(check: Any, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def started(p: Paying, video_id: str, patron: str = "patron-1") -> tuple[str, str]:
    """A checkout: (request id, Stripe session id)."""
    status, body = await p.checkout(video_id, patron)
    assert status == 201, body
    assert body["status"] == "awaiting_payment" and body["price"] == PRICE and body["currency"] == "usd"
    assert body["checkoutUrl"].startswith(p.stripe.url + "/pay/cs_test_")
    return body["requestId"], p.session_of(body["checkoutUrl"])


async def test_a_paid_request_is_queued_only_after_a_valid_webhook(paying: Paying) -> None:
    request_id, session = await started(paying, DANCING)
    sent = paying.stripe.sessions[session]
    assert (sent["amount_total"], sent["currency"], sent["client_reference_id"]) == (PRICE, "usd", request_id)
    assert sent["success_url"] == f"{paying.hub.url}/v/tavern?request={request_id}"
    assert await paying.queue() == []
    assert (await paying.status(request_id))["status"] == "awaiting_payment"

    event = paying.stripe.pay(session)
    assert await paying.stripe.send(event) == (200, {"received": True, "outcome": "queued"})
    queue = await paying.queue()
    assert [e["title"] for e in queue] == ["Dancing Queen"]
    mine = await paying.status(request_id)
    assert (mine["status"], mine["position"], mine["amount"]) == ("pending", 1, PRICE)
    assert mine["estimatedStartAt"] is not None


async def test_forged_stale_and_tampered_webhooks_queue_nothing(paying: Paying) -> None:
    _, session = await started(paying, DANCING)
    event = paying.stripe.pay(session)
    payload = json.dumps(event)
    tampered = payload.replace(f'"amount_total": {PRICE}', '"amount_total": 1')
    cases: dict[str, dict[str, Any]] = {
        "forged (another secret)": {"secret": "whsec_attacker"},
        "no signature": {"signature": ""},
        "garbage signature": {"signature": "t=abc,v1=zz"},
        "stale (10 minutes old)": {"timestamp": int(time.time()) - 600},
        "body changed after signing": {"signature": sign(payload), "body": tampered},
        "v0 scheme only": {"signature": sign(payload).replace("v1=", "v0=")},
        "not JSON": {"body": "\xff not json"},
    }
    for name, how in cases.items():
        status, body = await paying.stripe.send(event, **how)
        assert status == 400, (name, body)
        assert body["field"] == "Stripe-Signature"
    assert await paying.queue() == []


async def test_a_replayed_webhook_queues_once(paying: Paying) -> None:
    _, session = await started(paying, DANCING)
    event = paying.stripe.pay(session)
    payload = json.dumps(event)
    header = sign(payload)
    answers = await asyncio.gather(*(paying.stripe.send(event, signature=header, body=payload) for _ in range(5)))
    assert all(status == 200 for status, _ in answers)
    assert len(await paying.queue()) == 1


async def test_a_wrong_amount_queues_nothing(paying: Paying) -> None:
    request_id, session = await started(paying, DANCING)
    event = paying.stripe.pay(session, amount=PRICE - 1)
    assert await paying.stripe.send(event) == (200, {"received": True, "outcome": "ignored"})
    assert await paying.queue() == []
    assert (await paying.status(request_id))["status"] == "awaiting_payment"


async def test_a_checkout_of_another_request_or_unknown_session_queues_nothing(paying: Paying) -> None:
    _, session = await started(paying, DANCING)
    event = paying.stripe.pay(session)
    event["data"]["object"]["client_reference_id"] = "not-ours"
    event["data"]["object"]["id"] = "cs_test_unknown"
    assert (await paying.stripe.send(event))[1]["outcome"] == "ignored"
    assert await paying.queue() == []


async def test_a_client_named_payment_is_checked_with_stripe(paying: Paying) -> None:
    hub, stripe = paying.hub, paying.stripe
    path = "/api/v1/venues/tavern/requests"
    song = SONGS[2]

    async def post(payment_id: str) -> tuple[int, Any]:
        return await hub.call("POST", path, {"song": song, "paymentId": payment_id})

    assert (await post("pi_madeup_123"))[0] == 402
    cheap = stripe.payment_intent(PRICE - 50, "usd")
    assert await post(cheap["id"]) == (402, {"error": "The amount paid is not this venue's price.",
                                             "field": "paymentId"})
    euros = stripe.payment_intent(PRICE, "eur")
    assert (await post(euros["id"]))[0] == 402
    elsewhere = stripe.payment_intent(PRICE, "usd", {"venue_id": "other-bar"})
    assert (await post(elsewhere["id"]))[0] == 402
    unpaid = stripe.payment_intent(PRICE, "usd", status="requires_payment_method")
    assert (await post(unpaid["id"]))[0] == 402
    assert await paying.queue() == []

    good = stripe.payment_intent(PRICE, "usd")
    assert (await post(good["id"]))[0] == 201
    status, again = await post(good["id"])
    assert status == 200 and again["replayed"] is True  # a payment is used once
    assert len(await paying.queue()) == 1

    # The reference-compatible endpoint checks the same way.
    body = {"venueId": "tavern", "paymentId": "pi_made_up_too", "song": song}
    async with hub.http.post(f"{hub.url}/v1/functions/processRequest/executions",
                             json={"body": json.dumps(body)}) as resp:
        execution = await resp.json()
    answer = json.loads(execution["responseBody"])
    assert execution["responseStatusCode"] == 402 and answer["success"] is False
    assert len(await paying.queue()) == 1


async def test_a_checkout_payment_cannot_be_used_again_on_the_api(paying: Paying) -> None:
    _, session = await started(paying, DANCING)
    await paying.stripe.send(paying.stripe.pay(session))
    intent = paying.stripe.sessions[session]["payment_intent"]
    status, body = await paying.hub.call("POST", "/api/v1/venues/tavern/requests",
                                         {"song": SONGS[2], "paymentId": intent})
    assert status == 200 and body["replayed"] is True
    status, body = await paying.hub.call("POST", "/api/v1/venues/tavern/requests",
                                         {"song": SONGS[2], "paymentId": session})
    assert status == 200 and body["replayed"] is True
    assert [e["title"] for e in await paying.queue()] == ["Dancing Queen"]


async def test_songs_the_rules_refuse_are_refused_before_paying(paying: Paying) -> None:
    status, body = await paying.checkout(TOO_LONG)
    assert status == 422 and body["error"] == "Song duration exceeds 5 minutes"
    assert paying.stripe.sessions == {}
    status, body = await paying.checkout("zzzzzzzzz99")
    assert status == 404 and body["field"] == "song.videoId"  # only the venue's requestable songs


async def test_a_refused_paid_request_is_refunded_once_when_the_answer_is_lost(start_paying: PayingFactory) -> None:
    async with start_paying(artist_limit=1) as p:
        p.stripe.lose_refund_answers = 1  # Stripe refunds, the answer never arrives; the library retries
        first, s1 = await started(p, DANCING, "patron-a")
        second, s2 = await started(p, WATERLOO, "patron-b")  # ABBA again: over the artist limit of 1
        assert (await p.stripe.send(p.stripe.pay(s1)))[1]["outcome"] == "queued"
        assert (await p.stripe.send(p.stripe.pay(s2)))[1]["outcome"] == "refused"
        assert (await p.status(second))["status"] in ("refund_due", "refunded")

        async def refunded() -> bool:
            return (await p.status(second))["status"] == "refunded"

        await wait_for(refunded)
        intent = p.stripe.sessions[s2]["payment_intent"]
        assert [r["amount"] for r in p.stripe.refunds_of(intent)] == [PRICE]
        assert p.stripe.requests.count(("POST", "/v1/refunds")) >= 2  # the call was retried, with one key
        assert p.stripe.refunds_of(p.stripe.sessions[s1]["payment_intent"]) == []
        assert (await p.status(first))["status"] == "pending"
        await asyncio.sleep(0.6)  # more worker rounds: still one refund
        assert len(p.stripe.refunds) == 1

        status, body = await p.hub.call("GET", "/api/v1/venues/tavern/refunds", headers=p.hub.staff("tavern"))
        assert status == 200
        [refund] = body["refunds"]
        assert (refund["requestId"], refund["refundStatus"], refund["amount"]) == (second, "refunded", PRICE)
        assert refund["reason"].startswith("Too many requests for this artist")
        assert (await p.hub.call("GET", "/api/v1/venues/tavern/refunds"))[0] == 401
        other = p.hub.staff(await p.hub.venue("other"))
        assert (await p.hub.call("GET", "/api/v1/venues/tavern/refunds", headers=other))[0] == 403


async def test_a_failing_refund_is_retried_with_the_same_key(start_paying: PayingFactory) -> None:
    async with start_paying(artist_limit=1) as p:
        p.stripe.fail_refunds = 8  # more than the library's own retries: the worker's backoff takes over
        _, s1 = await started(p, DANCING, "patron-a")
        second, s2 = await started(p, WATERLOO, "patron-b")
        await p.stripe.send(p.stripe.pay(s1))
        await p.stripe.send(p.stripe.pay(s2))

        async def failed() -> bool:
            return (await p.status(second))["status"] == "refund_failed"

        await wait_for(failed)
        _, body = await p.hub.call("GET", "/api/v1/venues/tavern/refunds", headers=p.hub.staff("tavern"))
        assert body["refunds"][0]["error"].startswith("Stripe refused the refund")

        async def refunded() -> bool:
            return (await p.status(second))["status"] == "refunded"

        await wait_for(refunded)
        assert len(p.stripe.refunds) == 1


async def test_prices_are_set_by_the_venues_staff(paying: Paying) -> None:
    hub = paying.hub
    path = "/api/v1/venues/tavern/price"
    assert await hub.call("GET", path) == (200, {"price": PRICE, "currency": "usd"})
    assert (await hub.call("PUT", path, {"price": 300, "currency": "EUR"}))[0] == 401
    other = hub.staff(await hub.venue("other"))
    assert (await hub.call("PUT", path, {"price": 300, "currency": "EUR"}, headers=other))[0] == 403
    assert await hub.call("PUT", path, {"price": 300, "currency": "EUR"}, headers=hub.staff("tavern")) == (
        200, {"price": 300, "currency": "eur"})
    status, body = await paying.checkout(BORN)
    assert (status, body["price"], body["currency"]) == (201, 300, "eur")
    session = paying.stripe.sessions[paying.session_of(body["checkoutUrl"])]
    assert (session["amount_total"], session["currency"]) == (300, "eur")


async def test_a_currency_stripe_does_not_take_is_refused_when_staff_set_it(paying: Paying) -> None:
    """Three letters are not a currency: one Stripe does not charge in (or a three-decimal one, which the
    hub's amounts cannot say) is refused when the price is saved, naming the field, and the price stays."""
    hub, path = paying.hub, "/api/v1/venues/tavern/price"
    for currency in ("xyz", "XTS", "bhd", "eek"):  # not one; the test code; three decimals; gone since 2011
        status, body = await hub.call("PUT", path, {"price": 300, "currency": currency}, headers=hub.staff("tavern"))
        assert (status, body["field"]) == (400, "currency"), body
        assert body["error"].startswith(f"Stripe does not take the currency {currency.upper()}: pick one"), body
    assert await hub.call("GET", path) == (200, {"price": PRICE, "currency": "usd"})
    for currency in ("JPY", "chf", "xof"):
        assert (await hub.call("PUT", path, {"price": 300, "currency": currency}, headers=hub.staff("tavern")))[0] \
            == 200


async def test_stripe_secrets_have_no_default() -> None:
    from djamms_edge.hub.config import HubConfig, PaymentsConfig

    config = HubConfig(jwt_secret="x" * 40, payments=PaymentsConfig(provider="stripe"))
    problems = config.startup_problems()
    assert any("stripe_secret_key" in p for p in problems)
    assert any("stripe_webhook_secret" in p for p in problems)
    assert WEBHOOK_SECRET not in repr(PaymentsConfig())


async def test_a_paid_request_refused_after_acceptance_is_refunded(paying: Paying) -> None:
    """The box measures the track over the limit (the hub's one refusal transition): the paid request leaves
    the queue as refund_due, and the refund worker gives the money back."""
    hub = paying.hub
    request_id, session = await started(paying, BORN)
    await paying.stripe.send(paying.stripe.pay(session))
    device = hub.device("tavern", STAND_IN_BOX)  # the venue's box, the master
    status, registered = await hub.call("POST", "/api/v1/venues/tavern/players/register", {"deviceId": STAND_IN_BOX},
                                        headers=device)
    assert status == 200, registered
    status, body = await hub.call("POST", f"/api/v1/venues/tavern/requests/{request_id}/over-limit",
                                  {"deviceId": STAND_IN_BOX, "epoch": registered["epoch"], "duration": 400},
                                  headers=device)
    assert status == 200 and body["changed"] is True, body
    assert await paying.queue() == []

    async def refunded() -> bool:
        return (await paying.status(request_id))["status"] == "refunded"

    await wait_for(refunded)
    intent = paying.stripe.sessions[session]["payment_intent"]
    assert [r["amount"] for r in paying.stripe.refunds_of(intent)] == [PRICE]
    mine = await paying.status(request_id)
    assert mine["reason"].startswith("Song duration exceeds 5 minutes (measured 400 seconds)")


async def test_unpaid_checkouts_are_forgotten(paying: Paying) -> None:
    """An abandoned checkout leaves no row behind for ever (the refund worker sweeps them a day after expiry)."""
    unpaid, _ = await started(paying, DANCING)
    paid, session = await started(paying, BORN)
    await paying.stripe.send(paying.stripe.pay(session))
    assert await paying.hub.store.drop_unpaid(int(paying.hub.clock() * 1000) + 1) == 1
    assert await paying.hub.store.get_payment(unpaid) is None
    assert (await paying.hub.call("GET", f"/api/v1/venues/tavern/requests/{unpaid}/status"))[0] == 404
    assert (await paying.status(paid))["status"] == "pending"  # paid ones stay


async def test_a_paid_request_never_played_by_closing_time_is_refunded(paying: Paying) -> None:
    """No box played it (the venue closed): past unplayed_refund_after_h the worker refuses and refunds it,
    once; a request that has not waited that long stays queued."""
    request_id, session = await started(paying, BORN)
    await paying.stripe.send(paying.stripe.pay(session))
    await asyncio.sleep(0.5)  # a few worker rounds: not yet due
    assert (await paying.status(request_id))["status"] == "pending"
    assert [e["title"] for e in await paying.queue()] == ["Born to Run"]

    paying.hub.clock.advance(paying.hub.config.payments.unplayed_refund_after_h * 3600 + 1)

    async def refunded() -> bool:
        return (await paying.status(request_id))["status"] == "refunded"

    await wait_for(refunded)
    assert await paying.queue() == []
    intent = paying.stripe.sessions[session]["payment_intent"]
    await asyncio.sleep(0.5)  # more rounds refund nothing again
    assert [r["amount"] for r in paying.stripe.refunds_of(intent)] == [PRICE]
    assert (await paying.status(request_id))["reason"] == "The venue closed before your song could play."


async def test_a_price_stripe_will_not_charge_is_told_to_the_patron_and_the_staff(paying: Paying) -> None:
    hub, staff = paying.hub, paying.hub.staff("tavern")
    # Under Stripe's minimum; a currency Stripe lists that this account (the fake's) does not take.
    for price, currency, why in ((10, "eur", "at least 50 eur"), (500, "chf", "Invalid currency: chf")):
        assert (await hub.call("PUT", "/api/v1/venues/tavern/price", {"price": price, "currency": currency},
                               headers=staff))[0] == 200
        for _ in range(2):  # the second patron, too: no queue entry, no charge, one word to the staff
            status, body = await paying.checkout(BORN)
            assert status == 502, body
            assert body["error"].startswith("Paying for songs does not work at this venue right now")
        status, dashboard = await hub.call("GET", "/api/v1/venues/tavern/dashboard", headers=staff)
        assert status == 200
        problems = [e["message"] for e in dashboard["deviceErrors"] if e["deviceId"] == "payments"]
        assert len([m for m in problems if why in m]) == 1, problems
        assert problems[0].startswith("Patrons cannot pay: Stripe will not charge the price ")
    assert await paying.queue() == []
    assert paying.stripe.sessions == {}


async def patron_page(p: Paying) -> str:
    async with p.hub.http.get(f"{p.hub.url}/v/{p.venue}") as response:
        assert response.status == 200
        return await response.text()


async def test_paid_requests_are_closed_while_no_box_plays(start_paying: PayingFactory) -> None:
    async with start_paying(playing=False) as p:
        status, body = await p.checkout(BORN)
        assert (status, body["error"]) == (409, "Nothing is playing at the venue right now, so paid requests are "
                                                "closed. You have not been charged.")
        assert p.stripe.sessions == {} and await p.queue() == []
        assert '<p id="closed">' in await patron_page(p)  # said before anyone tries
        await register_box(p.hub, p.venue, STAND_IN_BOX)  # the box starts: requests open
        assert (await p.checkout(BORN))[0] == 201
        assert '<p id="closed" hidden>' in await patron_page(p)
        p.hub.clock.advance(121)  # the box has been silent longer than the hub's stale_after_s (120 s): off
        assert (await p.checkout(BORN))[0] == 409
        await register_box(p.hub, p.venue, STAND_IN_BOX)  # back on
        assert (await p.checkout(BORN))[0] == 201
