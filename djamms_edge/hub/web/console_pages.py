"""The console's management pages (issue 12): queue, playlists, rules, schedule, cue points.

Each page is a server-rendered shell (the venue's name is public, as on the patron page); its script
loads and changes the venue through the REST API with the signed-in user's token, so the API's role and
venue checks are the only ones, and a page shows nothing a token could not read.
"""

from __future__ import annotations

from aiohttp import web

from djamms_edge.hub.context import SERVICE
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.web.layout import error_page, render
from djamms_edge.hub.web_input import check_id

routes = web.RouteTableDef()
PAGES = {"queue": "Queue", "playlists": "Playlists", "rules": "Rules", "schedule": "Schedule", "cues": "Cue points"}


@routes.get("/console/{venueId}/{page:queue|playlists|rules|schedule|cues}")
async def console_page(request: web.Request) -> web.Response:
    try:
        venue_id = check_id(request.match_info["venueId"], "venueId")
    except ApiError:
        venue_id = None
    venue = None if venue_id is None else await request.app[SERVICE].store.get_venue(venue_id)
    if venue is None:
        return error_page(request, 404, "No such venue", "Check the address, or pick a venue from the console.")
    page = request.match_info["page"]
    return render(request, f"console/{page}.html", {
        "venue": venue, "console_page": page, "page_title": PAGES[page],
        "page_data": {"venueId": venue.venue_id, "venueName": venue.name},
    })
