"""Patron requests and payments (issue 11): requestable songs, checkout, the request's live status (SSE),
the provider's webhook, and the staff's price and refunds. (Which playlists are requestable is the
playlist's own flag, set by staff with PATCH .../playlists/{id}.)"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field

from aiohttp import web

from djamms_edge.hub.api_rest import API, VENUE, venue_param
from djamms_edge.hub.auth import require_staff
from djamms_edge.hub.context import SERVICE, client_address, principal_of
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.payments.provider import InvalidWebhook
from djamms_edge.hub.rules import play_seconds
from djamms_edge.hub.service import HubService
from djamms_edge.hub.store.base import Json, Song, VenuePrice
from djamms_edge.hub.web_input import Fields, check_id, check_text, query_int, read_json

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
CURRENCY = re.compile(r"^[a-z]{3}$")
MAX_PRICE_MINOR = 100_000  # 1000.00 in a two-decimal currency: a typo guard, not a business rule
MAX_QUERY = 100
QUEUE_SHOWN = 30
KEEPALIVE_S = 15.0
POLL_S = 5.0  # statuses that emit no queue change (payment refused, refunded) are noticed this often
MAX_LIVE_STREAMS = 1000  # open patron pages per hub process; more get 503
FINAL = ("played", "refunded")


@dataclass
class LiveStreams:
    """Open patron event streams: counted (bounded), and ended when the hub shuts down."""

    open: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)


LIVE = web.AppKey("patron_live_streams", LiveStreams)


def setup(app: web.Application) -> None:
    app[LIVE] = LiveStreams()
    app.add_routes(routes)

    async def stop_streams(app: web.Application) -> None:
        app[LIVE].closing.set()

    app.on_shutdown.append(stop_streams)


# --- songs a patron may request ------------------------------------------------------------------


async def requestable_songs(service: HubService, venue_id: str) -> list[Song]:
    """The songs of the venue's requestable playlists, each once, in playlist order; not those whose details are
    pending (no title to find them by, no length to check against the rules) until the venue's box describes them."""
    songs: dict[str, Song] = {}
    for playlist in await service.store.list_playlists(venue_id):
        for song in playlist.tracks if playlist.requestable else ():
            if not song.pending:
                songs.setdefault(song.video_id, song)
    return list(songs.values())


def matches(song: Song, words: list[str]) -> bool:
    text = f"{song.title} {song.artist}".casefold()
    return all(w in text for w in words)


async def song_list(service: HubService, venue_id: str, query: str, limit: int) -> list[Json]:
    words = query.casefold().split()
    found = [s for s in await requestable_songs(service, venue_id) if matches(s, words)][:limit]
    catalog = await service.store.get_catalog([s.video_id for s in found], venue_id)
    return [{**s.to_json(), "playDuration": round(play_seconds(
        s.duration, catalog[s.video_id].effective if s.video_id in catalog else None), 3)} for s in found]


@routes.get(VENUE + "/songs")
async def songs(request: web.Request) -> web.Response:
    """Public: what patrons may request here, searched by title and artist (every word must match)."""
    venue_id = venue_param(request)
    service = request.app[SERVICE]
    query = check_text(request.query.get("q", ""), "q")
    if len(query) > MAX_QUERY:
        raise ApiError(400, f"must be at most {MAX_QUERY} characters", "q")
    limit = query_int(request, "limit", 50, 1, 200)
    price = await service.payments.price(venue_id)
    return web.json_response({"songs": await song_list(service, venue_id, query, limit), **price.to_json()})


# --- checkout and the request's status ------------------------------------------------------------


CLOSED = "Nothing is playing at the venue right now, so paid requests are closed. You have not been charged."


async def requests_closed(service: HubService, venue_id: str) -> bool:
    """Paid requests are closed at a charging venue while nothing plays: paid for, a song would wait for a box
    that is off and be refunded hours later. Free requests stay open (they play when the box is back)."""
    price = await service.venue_prices.get(venue_id)
    return price is not None and price.price_minor > 0 and not await service.plays_now(venue_id)


@routes.post(VENUE + "/checkout")
async def checkout(request: web.Request) -> web.Response:
    """A patron asks for a song (by videoId: title, artist and length come from the venue's own list)."""
    venue_id = venue_param(request)
    f = Fields(await read_json(request))
    video_id = f.obj("song").video_id("videoId", allow_urls=True)
    patron = f.ident("requesterId", required=False)
    service = request.app[SERVICE]
    song = next((s for s in await requestable_songs(service, venue_id) if s.video_id == video_id), None)
    if song is None:
        raise ApiError(404, "This song cannot be requested here.", "song.videoId")
    if await requests_closed(service, venue_id):  # refused before anyone pays
        raise ApiError(409, CLOSED, None)
    client = client_address(request)
    await service.take_request_budget(client, patron)
    page_url = f"{service.config.public_url.rstrip('/')}/v/{venue_id}"
    started = await service.payments.start_checkout(venue_id, song, patron, client, page_url)
    body = {"requestId": started.request_id, "status": started.status, "checkoutUrl": started.checkout_url,
            "error": started.error, **started.price.to_json()}
    return web.json_response(body, status=201 if started.error is None else 422)


async def request_view(service: HubService, venue_id: str, request_id: str, queue: Json) -> Json | None:
    """The patron's own request: status in plain words' terms, and where it is in ``queue``."""
    record = await service.store.get_request(request_id)
    payment = await service.store.get_payment(request_id)
    known = record or payment
    if known is None or known.venue_id != venue_id:
        return None
    status: str = record.status if record is not None else "awaiting_payment"
    if payment is not None and payment.refund_status is not None:
        status = "refunded" if payment.refund_status == "refunded" else "refund_failed"
    song = known.song
    view: Json = {"requestId": request_id, "status": status, "reason": record.reason if record else None,
                  "song": song.to_json(), "position": None, "estimatedStartAt": None, "playing": False}
    if payment is not None:
        view.update(amount=payment.amount_minor, currency=payment.currency)
    playing = queue.get("nowPlaying")
    if playing is not None and playing.get("mine"):
        view.update(playing=True, startedAt=playing["startedAt"], estimatedEndAt=playing["estimatedEndAt"])
    for entry in queue["queue"]:
        if entry.get("mine"):
            view.update(position=entry["position"], estimatedStartAt=entry["estimatedStartAt"])
    return view


def _request_param(request: web.Request) -> str | None:
    raw = request.query.get("request")
    return None if raw is None else check_id(raw, "request")


@routes.get(VENUE + "/requests/{requestId}/status")
async def request_status(request: web.Request) -> web.Response:
    """Public by its unguessable id: the patron's request, its status and place in the queue."""
    venue_id = venue_param(request)
    request_id = check_id(request.match_info["requestId"], "requestId")
    service = request.app[SERVICE]
    queue = await service.public_queue(venue_id, 500, mine=request_id)
    view = await request_view(service, venue_id, request_id, queue)
    if view is None:
        raise ApiError(404, f"unknown request {request_id!r} at venue {venue_id!r}", "requestId")
    return web.json_response(view)


async def live_state(service: HubService, venue_id: str, request_id: str | None) -> Json:
    queue = await service.public_queue(venue_id, 500, mine=request_id)
    mine = None if request_id is None else await request_view(service, venue_id, request_id, queue)
    queue["queue"] = queue["queue"][:QUEUE_SHOWN]
    return {"queue": queue, "request": mine, "requestsClosed": await requests_closed(service, venue_id)}


@routes.get(VENUE + "/live")
async def live(request: web.Request) -> web.StreamResponse:
    """Server-sent events for the patron page: ``state`` (queue, the patron's request, whether paid requests
    are closed) at once and on each change; no login. Ends once the request has played or was refunded. A
    change the feed does not announce (the master's heartbeats stopping: requests close) is seen at the next
    re-read, within ``POLL_S`` (following a request) or ``KEEPALIVE_S``."""
    venue_id = venue_param(request)
    request_id = _request_param(request)
    service, streams = request.app[SERVICE], request.app[LIVE]
    if await service.store.get_venue(venue_id) is None:
        raise ApiError(404, f"unknown venue {venue_id!r}", "venueId")
    if streams.open >= MAX_LIVE_STREAMS:
        raise ApiError(503, "too many live pages open; try again shortly", None, headers={"Retry-After": "10"})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    streams.open += 1
    try:
        await response.prepare(request)
        await response.write(b"retry: 3000\n\n")
        sent = None
        while not streams.closing.is_set():
            changed = service.store.change_event(venue_id)  # taken before reading: no change is missed
            state = await live_state(service, venue_id, request_id)
            data = json.dumps(state, separators=(",", ":"))
            if data != sent:
                await response.write(f"event: state\ndata: {data}\n\n".encode())
                sent = data
            mine = state["request"]
            if mine is not None and mine["status"] in FINAL:
                break
            await _next_change(changed, streams.closing, POLL_S if request_id else KEEPALIVE_S)
            await response.write(b": keepalive\n\n")
    except ConnectionError:
        pass  # the phone left
    finally:
        streams.open -= 1
    return response


async def _next_change(changed: asyncio.Event, closing: asyncio.Event, wait_s: float) -> None:
    waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(closing.wait())]
    try:
        await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


# --- the provider's webhook -----------------------------------------------------------------------


@routes.post(API + "/payments/stripe/webhook")
async def stripe_webhook(request: web.Request) -> web.Response:
    """Stripe tells the hub a checkout was paid; only a correctly signed, recent event counts."""
    payload = await request.read()
    service = request.app[SERVICE]
    try:
        outcome = await service.payments.webhook(payload, request.headers.get("Stripe-Signature"))
    except InvalidWebhook as exc:
        log.warning("refused a payment webhook from %s: %s", client_address(request), exc)
        raise ApiError(400, "invalid webhook", "Stripe-Signature") from None
    return web.json_response({"received": True, "outcome": outcome})


# --- staff: price, requestable playlists, refunds ---------------------------------------------------


@routes.get(VENUE + "/price")
async def get_price(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    return web.json_response((await request.app[SERVICE].payments.price(venue_id)).to_json())


@routes.put(VENUE + "/price")
async def put_price(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    require_staff(principal_of(request), venue_id)
    f = Fields(await read_json(request))
    amount = f.integer("price", low=0, high=MAX_PRICE_MINOR)
    currency = f.text("currency", max_len=3).lower()
    if not CURRENCY.fullmatch(currency):
        raise ApiError(400, "must be a three-letter ISO 4217 code such as usd or eur", "currency")
    price = VenuePrice(amount, currency)
    service = request.app[SERVICE]
    service.payments.check_price(price)
    await service.store.set_venue_price(venue_id, price, service.now_ms())
    service.venue_prices.invalidate(venue_id)
    return web.json_response(price.to_json())


@routes.get(VENUE + "/refunds")
async def refunds(request: web.Request) -> web.Response:
    """Staff: paid requests that were refused, and where their refund stands (due, refunded, failed)."""
    venue_id = venue_param(request)
    require_staff(principal_of(request), venue_id)
    limit = query_int(request, "limit", 100, 1, 1000)
    service = request.app[SERVICE]
    payments = await service.store.refunds(venue_id, limit)
    records = {p.request_id: await service.store.get_request(p.request_id) for p in payments}
    body = []
    for payment in payments:
        record = records[payment.request_id]
        body.append({**payment.refund_json(), "song": payment.song.to_json(),
                     "reason": record.reason if record else None})
    return web.json_response({"refunds": body})
