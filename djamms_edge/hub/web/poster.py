"""A venue's QR code (SVG/PNG) and a printable poster with it: scan to reach the patron page."""

from __future__ import annotations

from aiohttp import web

from djamms_edge.hub.context import SERVICE
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.payments.money import price_text
from djamms_edge.hub.qr import QrFormat, patron_url, qr_image
from djamms_edge.hub.store.base import Venue, VenuePrice
from djamms_edge.hub.web.layout import error_page, render
from djamms_edge.hub.web_input import check_id

routes = web.RouteTableDef()
QR_CACHE = "public, max-age=3600"  # the address only changes with hub.public_url


async def _venue(request: web.Request) -> tuple[Venue, VenuePrice] | None:
    try:
        venue_id = check_id(request.match_info["venueId"], "venueId")
    except ApiError:
        return None
    store = request.app[SERVICE].store
    venue, price = await store.get_venue(venue_id), await store.get_venue_price(venue_id)
    return None if venue is None or price is None else (venue, price)


@routes.get("/v/{venueId}/qr.{kind:svg|png}")
async def qr(request: web.Request) -> web.Response:
    found = await _venue(request)
    if found is None:
        raise ApiError(404, "unknown venue", "venueId")
    kind: QrFormat = "svg" if request.match_info["kind"] == "svg" else "png"
    url = patron_url(request.app[SERVICE].config.public_url, found[0].venue_id)
    return web.Response(body=qr_image(url, kind), content_type="image/svg+xml" if kind == "svg" else "image/png",
                        headers={"Cache-Control": QR_CACHE})


@routes.get("/v/{venueId}/poster")
async def poster(request: web.Request) -> web.Response:
    found = await _venue(request)
    if found is None:
        return error_page(request, 404, "No such venue", "Check the venue id.")
    venue, price = found
    return render(request, "poster.html", {
        "venue": venue, "url": patron_url(request.app[SERVICE].config.public_url, venue.venue_id),
        "price_text": price_text(price)})
