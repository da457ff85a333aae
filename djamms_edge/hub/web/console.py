"""The staff console's own pages: sign-in (where the magic link lands), the venue picker and the venue
dashboard. Pages are shells rendered here; their data comes from the REST API with the token the browser
keeps (localStorage ``djamms.token``), so every check is the API's. Other console pages (queue, playlists,
rules, schedule, cue points) extend ``console/base.html`` for the same navigation."""

from __future__ import annotations

from aiohttp import web

from djamms_edge.hub.context import SERVICE
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.qr import patron_url
from djamms_edge.hub.web.layout import error_page, render
from djamms_edge.hub.web_input import check_id

routes = web.RouteTableDef()
SIGN_IN = "/console/sign-in"


@routes.get(SIGN_IN)
async def sign_in_page(request: web.Request) -> web.Response:
    """Ask for an email (a magic link is mailed, pointing back here); with ``?secret=`` sign in with it."""
    redirect = request.app[SERVICE].config.public_url.rstrip("/") + SIGN_IN
    return render(request, "console/sign_in.html", {"page_data": {"redirectUrl": redirect}})


@routes.get("/console")
async def console_root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


@routes.get("/console/")
async def venues_page(request: web.Request) -> web.Response:
    """Admins pick any venue, staff go straight to theirs (the script decides from /api/v1/venues)."""
    return render(request, "console/venues.html", {"page_data": {}})


@routes.get("/console/{venueId}/")
async def dashboard_page(request: web.Request) -> web.Response:
    try:
        venue_id = check_id(request.match_info["venueId"], "venueId")
    except ApiError:
        return error_page(request, 404, "No such venue", "Check the address, or pick a venue in the console.")
    venue = await request.app[SERVICE].store.get_venue(venue_id)
    if venue is None:
        return error_page(request, 404, "No such venue", "Check the address, or pick a venue in the console.")
    return render(request, "console/dashboard.html", {
        "venue": venue, "console_page": "dashboard", "page_data": {"venueId": venue_id},
        "patron_url": patron_url(request.app[SERVICE].config.public_url, venue_id)})
