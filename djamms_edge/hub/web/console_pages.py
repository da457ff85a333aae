"""The console's management pages (issue 12): queue, playlists, rules, schedule, cue points, team.

Each page is a server-rendered shell (the venue's name is public, as on the patron page); its script
loads and changes the venue through the REST API with the signed-in user's token, so the API's role and
venue checks are the only ones, and a page shows nothing a token could not read.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from djamms_edge.hub.context import SERVICE
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.payments.money import PROVIDER_NAMES, ZERO_DECIMAL, amount_text, decimals, price_text
from djamms_edge.hub.store.base import VenuePrice
from djamms_edge.hub.web.layout import error_page, render
from djamms_edge.hub.web_input import check_id

routes = web.RouteTableDef()
PAGES = {"queue": "Queue", "playlists": "Playlists", "rules": "Rules", "schedule": "Schedule", "cues": "Cue points",
         "team": "Team"}


@routes.get("/console/{venueId}/{page:queue|playlists|rules|schedule|cues|team}")
async def console_page(request: web.Request) -> web.Response:
    try:
        venue_id = check_id(request.match_info["venueId"], "venueId")
    except ApiError:
        venue_id = None
    venue = None if venue_id is None else await request.app[SERVICE].store.get_venue(venue_id)
    if venue is None:
        return error_page(request, 404, "No such venue", "Check the address, or pick a venue from the console.")
    page = request.match_info["page"]
    context: dict[str, Any] = {"venue": venue, "console_page": page, "page_title": PAGES[page],
                               "page_data": {"venueId": venue.venue_id, "venueName": venue.name}}
    if page == "rules":
        context.update(await _price_context(request, venue.venue_id))
        context["page_data"]["zeroDecimal"] = sorted(ZERO_DECIMAL)
        limits = request.app[SERVICE].config.requests
        context.update(default_max_duration=round(limits.max_duration_s), default_artist_limit=limits.artist_limit,
                       artist_window=span_text(limits.artist_window_s))
    return render(request, f"console/{page}.html", context)


def span_text(seconds: float) -> str:
    """A stretch of time in a hub setting as a venue owner reads it: 1800 -> "30 min", 5400 -> "1 h 30 min"."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(p for p in parts if p) or "0 s"


async def _price_context(request: web.Request, venue_id: str) -> dict[str, Any]:
    """The price card: who patrons pay through (None: this hub takes no payments), the currencies it charges in,
    and the price in the currency's own units (500 JPY, 2.50 EUR: the API's amounts are in the smallest unit)."""
    service = request.app[SERVICE]
    price = await service.store.get_venue_price(venue_id) or VenuePrice(0, "eur")
    provider = service.payments.provider
    return {
        "payments_through": PROVIDER_NAMES.get(provider.name, provider.name) if provider is not None else None,
        "currencies": sorted(c.upper() for c in provider.currencies) if provider is not None else [],
        "price": price, "price_amount": amount_text(price), "price_step": 10 ** -decimals(price.currency),
        "price_text": price_text(price),
    }
