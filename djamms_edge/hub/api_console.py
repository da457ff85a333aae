"""The staff console's REST endpoints: queue, playlists, rules, schedule (issue 12).

Every write here is staff of the venue (or an admin) only, and each change the edges must follow
is emitted on the venue's feed by the store, in the same transaction as the change itself.
"""

from __future__ import annotations

import uuid
import zoneinfo
from functools import cache

from aiohttp import web

from djamms_edge.hub.api_rest import VENUE, venue_param
from djamms_edge.hub.auth import Principal, require_staff
from djamms_edge.hub.context import SERVICE, principal_of
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.schedule import ScheduleSwitcher
from djamms_edge.hub.store.base import (
    MARK_KINDS,
    Json,
    ScheduleSlot,
    Song,
    UnknownEntry,
    VenueSettings,
    pending_song,
)
from djamms_edge.hub.tracks_input import (
    MAX_IMPORT_LINES,
    BadLine,
    TrackLine,
    import_lines,
    parse_line,
    song_key,
)
from djamms_edge.hub.web_input import Fields, check_id, read_json

routes = web.RouteTableDef()
SCHEDULER = web.AppKey("scheduler", ScheduleSwitcher)
PLAYLIST = VENUE + "/playlists/{playlistId}"
NO_LOOKUP = ("the hub has not seen this song: give artist, title and duration, or add it to a playlist by URL "
             "alone (the venue's box fills in its details when it fetches it)")
MAX_POSITION = 100_000


async def _staff(request: web.Request) -> tuple[str, Principal]:
    venue_id = venue_param(request)
    return venue_id, require_staff(principal_of(request), venue_id)


async def _body(request: web.Request) -> Fields:
    return Fields(await read_json(request))


def _position(raw: str, field: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "must be a positive integer", field) from None
    if not 1 <= value <= MAX_POSITION:
        raise ApiError(400, f"must be between 1 and {MAX_POSITION}", field)
    return value


def _flag(f: Fields, key: str) -> bool | None:
    value = f.data.get(key)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, "must be true or false", key)
    return value


# --- queue -----------------------------------------------------------------------------------------


@routes.delete(VENUE + "/queue/entries/{entryId}")
async def remove_entry(request: web.Request) -> web.Response:
    """Take an entry out of the queue; a paid one is refused (refund due) rather than silently dropped."""
    venue_id, who = await _staff(request)
    entry_id = check_id(request.match_info["entryId"], "entryId")
    service = request.app[SERVICE]
    snapshot = await service.store.queue_snapshot(venue_id)
    entry = next((e for e in (*snapshot.priority, *snapshot.main) if e.entry_id == entry_id), None)
    if entry is not None and entry.request_id is not None:
        refusal = await service.refuse_request(venue_id, entry.request_id,
                                               f"removed from the queue by {who.email or who.label}")
        return web.json_response({"removed": entry.to_json(), "refund": refusal.to_json()})
    removed = await service.store.remove_entry(venue_id, entry_id, service.now_ms())
    return web.json_response({"removed": removed.to_json(), "refund": None})


@routes.patch(VENUE + "/queue/entries/{entryId}")
async def move_entry(request: web.Request) -> web.Response:
    venue_id, _ = await _staff(request)
    entry_id = check_id(request.match_info["entryId"], "entryId")
    position = (await _body(request)).integer("position", low=1, high=MAX_POSITION)
    service = request.app[SERVICE]
    snapshot = await service.store.move_entry(venue_id, entry_id, position, service.now_ms())
    return web.json_response(snapshot.to_json())


@routes.post(VENUE + "/skip")
async def skip_now(request: web.Request) -> web.Response:
    venue_id, _ = await _staff(request)
    service = request.app[SERVICE]
    return web.json_response(await service.store.skip_now(venue_id, service.now_ms()))


@routes.post(VENUE + "/queue/next")
async def play_next(request: web.Request) -> web.Response:
    """Staff's free pick: at the head of the priority queue (before paid requests waiting)."""
    venue_id, who = await _staff(request)
    f = await _body(request)
    service = request.app[SERVICE]
    if isinstance(f.data.get("song"), dict):
        song = f.song("song", allow_urls=service.config.requests.allow_urls)
        await service.check_media_url(song)
    else:
        song = await _known_song(request, venue_id, f.text("videoId", max_len=2048), "videoId")
    entry = await service.store.queue_next(venue_id, song, who.label, service.now_ms())
    return web.json_response(entry.to_json(), status=201)


def _song_key(request: web.Request, text: str, field: str) -> str:
    found = song_key(text, allow_urls=request.app[SERVICE].config.requests.allow_urls)
    if found is None:
        raise ApiError(400, "must be a YouTube video id or URL", field)
    return found


async def _known_song(request: web.Request, venue_id: str, text: str, field: str) -> Song:
    video_id = _song_key(request, text, field)
    known = (await request.app[SERVICE].store.known_songs([video_id], venue_id)).get(video_id)
    if known is None:
        raise ApiError(404, NO_LOOKUP, field)
    return known


# --- playlists -------------------------------------------------------------------------------------


def _playlist_id(request: web.Request) -> str:
    return check_id(request.match_info["playlistId"], "playlistId")


@routes.patch(PLAYLIST)
async def update_playlist(request: web.Request) -> web.Response:
    """Rename, or mark whether patrons may request from it (``requestable``)."""
    venue_id, _ = await _staff(request)
    f = await _body(request)
    name = f.optional_text("name", max_len=120)
    if name is not None and not name.strip():
        raise ApiError(400, "must not be empty", "name")
    requestable = _flag(f, "requestable")
    if name is None and requestable is None:
        raise ApiError(400, "send name, requestable, or both", "name")
    playlist = await request.app[SERVICE].store.update_playlist(
        venue_id, _playlist_id(request), None if name is None else name.strip(), requestable)
    return web.json_response(playlist.to_json())


@routes.delete(PLAYLIST)
async def delete_playlist(request: web.Request) -> web.Response:
    venue_id, _ = await _staff(request)
    await request.app[SERVICE].store.delete_playlist(venue_id, _playlist_id(request))
    return web.json_response({"deleted": True})


def _track_ref(request: web.Request, f: Fields | None = None) -> tuple[int, str]:
    """The track's position in the path and its video id (query or body): both must still match."""
    position = _position(request.match_info["position"], "position")
    raw = request.query.get("videoId") if f is None else f.data.get("videoId")
    if raw is None:
        raise ApiError(400, "is required (the track's video id, so an edited list is not changed blindly)",
                       "videoId")
    return position, Fields({"videoId": raw}).video_id("videoId", allow_urls=True)


@routes.delete(PLAYLIST + "/tracks/{position}")
async def remove_track(request: web.Request) -> web.Response:
    venue_id, _ = await _staff(request)
    position, video_id = _track_ref(request)
    service = request.app[SERVICE]
    playlist = await service.store.remove_track(venue_id, _playlist_id(request), position, video_id,
                                                service.now_ms())
    return web.json_response(playlist.to_json())


@routes.patch(PLAYLIST + "/tracks/{position}")
async def move_track(request: web.Request) -> web.Response:
    venue_id, _ = await _staff(request)
    f = await _body(request)
    position, video_id = _track_ref(request, f)
    to = f.integer("toPosition", low=1, high=MAX_POSITION)
    playlist = await request.app[SERVICE].store.move_track(venue_id, _playlist_id(request), position, video_id, to)
    return web.json_response(playlist.to_json())


@routes.put(PLAYLIST + "/tracks/{position}/details")
async def set_track_details(request: web.Request) -> web.Response:
    """Staff type (or correct) a track's artist, title and length: what the box filled in, or a pending song's.
    What staff type wins: the box never changes it again."""
    venue_id, _ = await _staff(request)
    f = await _body(request)
    position, video_id = _track_ref(request, f)
    duration = f.number("duration", low=1.0)
    assert duration is not None
    song = Song(video_id, f.text("title").strip(), f.text("artist").strip(), duration)
    service = request.app[SERVICE]
    playlist = await service.store.set_track_details(venue_id, _playlist_id(request), position, video_id, song,
                                                     service.now_ms())
    return web.json_response(playlist.to_json())


@routes.post(PLAYLIST + "/tracks/import")
async def import_tracks(request: web.Request) -> web.Response:
    """Add songs, one a line (``URL-or-id`` or ``URL-or-id | Artist | Title | m:ss``); what cannot be
    added is answered line by line, and the rest is added. A URL alone that the hub knows nothing of is added
    with its details pending: the venue's box fills them in when it fetches the song."""
    venue_id, _ = await _staff(request)
    f = await _body(request)
    lines = import_lines(f.text("text", max_len=200_000))
    if len(lines) > MAX_IMPORT_LINES:
        raise ApiError(400, f"at most {MAX_IMPORT_LINES} songs at a time", "text")
    service = request.app[SERVICE]
    playlist_id = _playlist_id(request)
    playlist = await service.store.get_playlist(playlist_id)
    if playlist is None or playlist.venue_id != venue_id:
        raise ApiError(404, f"unknown playlist {playlist_id!r} at venue {venue_id!r}", "playlistId")
    parsed: list[tuple[int, TrackLine]] = []
    problems: list[Json] = []
    for number, line in lines:
        try:
            parsed.append((number, parse_line(line, allow_urls=service.config.requests.allow_urls)))
        except BadLine as exc:
            problems.append({"line": number, "text": line[:200], "error": str(exc)})
    known = await service.store.known_songs([t.video_id for _, t in parsed if t.title is None], venue_id)
    added: list[Json] = []
    for number, track in parsed:
        if track.title is not None and track.artist is not None and track.duration is not None:
            song = Song(track.video_id, track.title, track.artist, track.duration)
        else:
            song = known.get(track.video_id) or pending_song(track.video_id)
        try:
            await service.check_media_url(song)
        except ApiError as exc:  # an internal address: this line is refused, the others go in
            problems.append({"line": number, "text": track.video_id[:200], "error": exc.message})
            continue
        playlist = await service.store.add_track(playlist_id, song, service.now_ms())
        added.append(song.to_json())
    problems.sort(key=lambda p: int(p["line"]))
    return web.json_response({"playlist": playlist.to_json(), "added": added, "problems": problems},
                             status=201 if added else 200)


# --- rules -----------------------------------------------------------------------------------------


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@routes.get(VENUE + "/rules")
async def get_rules(request: web.Request) -> web.Response:
    venue_id, _ = await _staff(request)
    rules = await request.app[SERVICE].store.venue_rules(venue_id)
    return web.json_response(rules.to_json())


@routes.patch(VENUE + "/rules")
async def set_rules(request: web.Request) -> web.Response:
    """Explicit songs on or off, the venue's own request limits (null: the hub's default), its timezone."""
    venue_id, _ = await _staff(request)
    f = await _body(request)
    service = request.app[SERVICE]
    current = (await service.store.venue_rules(venue_id)).settings
    allow = _flag(f, "allowExplicit")
    max_duration = f.number("maxDurationS", required=False, low=30, high=3600) if "maxDurationS" in f.data \
        else current.max_duration_s
    limit = (f.integer("artistLimit", low=1, high=1000) if f.data.get("artistLimit") is not None else None) \
        if "artistLimit" in f.data else current.artist_limit
    timezone = f.text("timezone", max_len=64) if "timezone" in f.data else current.timezone
    if timezone not in _timezones():
        raise ApiError(400, "must be an IANA timezone name such as Europe/Paris", "timezone")
    settings = VenueSettings(current.allow_explicit if allow is None else allow, max_duration, limit, timezone)
    rules = await service.store.set_venue_settings(venue_id, settings, service.now_ms())
    return web.json_response(rules.to_json())


@routes.post(VENUE + "/marks")
async def add_mark(request: web.Request) -> web.Response:
    """Ban a video (``ban_video``, a YouTube id or URL) or an artist (``ban_artist``), or flag a video
    ``explicit``."""
    venue_id, _ = await _staff(request)
    f = await _body(request)
    kind = f.text("kind")
    if kind not in MARK_KINDS:
        raise ApiError(400, f"must be one of {', '.join(MARK_KINDS)}", "kind")
    raw = f.text("value", max_len=2048).strip()
    value = raw[:300] if kind == "ban_artist" else _song_key(request, raw, "value")
    service = request.app[SERVICE]
    rules = await service.store.add_mark(venue_id, kind, value, service.now_ms())
    return web.json_response(rules.to_json(), status=201)


@routes.delete(VENUE + "/marks/{markId}")
async def remove_mark(request: web.Request) -> web.Response:
    venue_id, _ = await _staff(request)
    mark_id = check_id(request.match_info["markId"], "markId")
    service = request.app[SERVICE]
    try:
        rules = await service.store.remove_mark(venue_id, mark_id, service.now_ms())
    except UnknownEntry as exc:
        raise ApiError(404, str(exc), "markId") from None
    return web.json_response(rules.to_json())


# --- schedule --------------------------------------------------------------------------------------


def _minute(f: Fields, key: str, *, end: bool) -> int:
    text = f.text(key, max_len=5)
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ApiError(400, "must be HH:MM", key)
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or not (0 <= value <= (1440 if end else 1439)):
        raise ApiError(400, "must be a time of day, 00:00-23:59 (24:00 for an end)", key)
    return value


@routes.get(VENUE + "/schedule")
async def get_schedule(request: web.Request) -> web.Response:
    venue_id, _ = await _staff(request)
    (schedule,) = await request.app[SERVICE].store.schedules(venue_id)
    return web.json_response({"venueId": venue_id, "timezone": schedule.timezone,
                              "appliedSlotId": schedule.applied_slot_id,
                              "slots": [s.to_json() for s in schedule.slots]})


@routes.post(VENUE + "/schedule")
async def add_slot(request: web.Request) -> web.Response:
    """A weekly window: ``{playlistId, weekday (0 = Monday), start "HH:MM", end "HH:MM"}`` in venue time."""
    venue_id, _ = await _staff(request)
    f = await _body(request)
    playlist_id = f.ident("playlistId")
    assert playlist_id is not None
    weekday = f.integer("weekday", low=0, high=6)
    start, end = _minute(f, "start", end=False), _minute(f, "end", end=True)
    if end <= start:
        raise ApiError(400, "must be after start (a window past midnight is two windows)", "end")
    service = request.app[SERVICE]
    slot = ScheduleSlot("slot-" + uuid.uuid4().hex[:16], playlist_id, weekday, start, end)
    saved = await service.store.add_schedule_slot(venue_id, slot, service.now_ms())
    request.app[SCHEDULER].kick()
    return web.json_response(saved.to_json(), status=201)


@routes.delete(VENUE + "/schedule/{slotId}")
async def delete_slot(request: web.Request) -> web.Response:
    venue_id, _ = await _staff(request)
    slot_id = check_id(request.match_info["slotId"], "slotId")
    try:
        await request.app[SERVICE].store.delete_schedule_slot(venue_id, slot_id)
    except UnknownEntry as exc:
        raise ApiError(404, str(exc), "slotId") from None
    request.app[SCHEDULER].kick()
    return web.json_response({"deleted": True})
