"""The patron's page at /v/{venueId}: what plays, what is queued, and (issue 11) songs to request."""

from __future__ import annotations

from aiohttp import web

from djamms_edge.hub.context import SERVICE
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.web.layout import error_page, render
from djamms_edge.hub.web_input import check_id

routes = web.RouteTableDef()
QUEUE_SHOWN = 30


@routes.get("/v/{venueId}")
async def patron_page(request: web.Request) -> web.Response:
    try:
        venue_id = check_id(request.match_info["venueId"], "venueId")
    except ApiError:
        return error_page(request, 404, "No such venue", "Check the address on the QR code and try again.")
    service = request.app[SERVICE]
    venue = await service.store.get_venue(venue_id)
    if venue is None:
        return error_page(request, 404, "No such venue", "Check the address on the QR code and try again.")
    queue = await service.public_queue(venue_id, QUEUE_SHOWN)
    return render(request, "patron.html", {"venue": venue, "queue": queue,
                                           "page_data": {"venueId": venue_id, "queue": queue}})
