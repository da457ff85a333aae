"""Paid requests refused after acceptance, as the venue's box reports them."""

from __future__ import annotations

from aiohttp import web

from djamms_edge.hub.api_rest import VENUE, _fields, _master_write, venue_param
from djamms_edge.hub.context import SERVICE, principal_of
from djamms_edge.hub.web_input import check_id

routes = web.RouteTableDef()


@routes.post(VENUE + "/requests/{requestId}/over-limit")
async def over_limit(request: web.Request) -> web.Response:
    """The master fetched the track and measured its trimmed length over the limit: it will not play it.

    Fenced like other master writes; resending is harmless (the request is refused once)."""
    venue_id, f = venue_param(request), await _fields(request)
    request_id = check_id(request.match_info["requestId"], "requestId")
    write = _master_write(request, venue_id, f)
    measured = f.number("duration")
    assert measured is not None  # required
    refusal = await request.app[SERVICE].report_over_limit(principal_of(request), write, request_id, measured)
    return web.json_response(refusal.to_json())
