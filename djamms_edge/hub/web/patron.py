"""The patron's page at /v/{venueId}: what plays, what is queued, songs to request, and the patron's own
request followed live. The first render is complete HTML (fast on bar Wi-Fi); patron.js then keeps it live
(server-sent events from .../live) and runs the request-and-pay steps through the JSON API."""

from __future__ import annotations

from aiohttp import web

from djamms_edge.hub.api_payments import QUEUE_SHOWN, requests_closed, song_list
from djamms_edge.hub.context import SERVICE
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.payments.money import price_text
from djamms_edge.hub.web.layout import error_page, render
from djamms_edge.hub.web_input import check_id

routes = web.RouteTableDef()
SONGS_SHOWN = 50

def _no_venue(request: web.Request) -> web.Response:
    return error_page(request, 404, "No such venue", "Check the address on the QR code and try again.")


@routes.get("/v/{venueId}")
async def patron_page(request: web.Request) -> web.Response:
    try:
        venue_id = check_id(request.match_info["venueId"], "venueId")
    except ApiError:
        return _no_venue(request)
    service = request.app[SERVICE]
    venue = await service.store.get_venue(venue_id)
    price = await service.store.get_venue_price(venue_id)
    if venue is None or price is None:
        return _no_venue(request)
    queue = await service.public_queue(venue_id, QUEUE_SHOWN)
    songs = await song_list(service, venue_id, "", SONGS_SHOWN)
    closed = await requests_closed(service, venue_id)
    return render(request, "patron.html", {
        "venue": venue, "queue": queue, "songs": songs, "price_text": price_text(price), "closed": closed,
        "page_data": {"venueId": venue_id, "price": price.price_minor, "currency": price.currency,
                      "priceText": price_text(price), "nowPlaying": queue["nowPlaying"]},
    })
