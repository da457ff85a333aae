"""A venue's box describes a song staff added by URL alone (artist, title, length from its yt-dlp fetch).

``GET .../songs/pending`` lists them for the venue's boxes, which look each up without downloading it.
``POST /api/v1/venues/{venueId}/songs/details`` with a device token of that venue: the text is cleaned again
here (``shared.song_details.clean_text``: control and format characters such as bidi overrides removed, spaces
collapsed) and bounded; the hub fills only that venue's songs whose details are pending (``HubService.describe_song``).
"""

from __future__ import annotations

from aiohttp import web

from djamms_edge.hub.api_rest import VENUE, venue_param
from djamms_edge.hub.auth import require_venue_member
from djamms_edge.hub.context import SERVICE, principal_of
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.store.base import Song
from djamms_edge.hub.web_input import Fields, query_int, read_json
from djamms_edge.shared.song_details import MAX_ARTIST, MAX_TITLE, clean_text

routes = web.RouteTableDef()
# What a box may send before cleaning: room for combining marks and stray spaces, not for a flood.
MAX_RAW = 1000
MAX_PENDING = 500  # one import's worth


def _details_text(f: Fields, key: str, max_len: int) -> str:
    text = clean_text(f.text(key, max_len=MAX_RAW), max_len)
    if not text:
        raise ApiError(400, "must have something printable in it", key)
    return text


@routes.get(VENUE + "/songs/pending")
async def pending_songs(request: web.Request) -> web.Response:
    """The venue's songs added by URL alone that no box has described yet (its boxes look them up)."""
    venue_id = venue_param(request)
    require_venue_member(principal_of(request), venue_id)
    limit = query_int(request, "limit", 100, 1, MAX_PENDING)
    return web.json_response({"videoIds": await request.app[SERVICE].store.pending_songs(venue_id, limit)})


@routes.post(VENUE + "/songs/details")
async def describe_song(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    f = Fields(await read_json(request))
    service = request.app[SERVICE]
    duration = f.number("duration", low=1.0)
    assert duration is not None
    song = Song(f.video_id("videoId", allow_urls=True), _details_text(f, "title", MAX_TITLE),
                _details_text(f, "artist", MAX_ARTIST), round(duration, 3))
    return web.json_response(await service.describe_song(principal_of(request), venue_id, song))
