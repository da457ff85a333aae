"""The REST API under /api/v1/: thin handlers that read input, call the service, shape the answer."""

from __future__ import annotations

import logging

from aiohttp import web

from djamms_edge.hub import accounts, fastjson
from djamms_edge.hub.api_accounts import device_report
from djamms_edge.hub.auth import require, require_admin, require_staff, require_venue_member
from djamms_edge.hub.context import SERVICE, client_address, principal_of
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.service import Reply
from djamms_edge.hub.store.base import (
    Analysis,
    DeviceError,
    MasterWrite,
    Offsets,
    PlayPosition,
    PlayReport,
    WriteResult,
)
from djamms_edge.hub.web_input import Fields, check_id, check_text, query_int, read_json

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
API = "/api/v1"
VENUE = API + "/venues/{venueId}"
MAX_ERROR_MESSAGE = 1000


def _reply(reply: Reply) -> web.Response:
    return fastjson.response(reply.rest_body(), reply.status)


def venue_param(request: web.Request) -> str:
    return check_id(request.match_info["venueId"], "venueId")


async def _fields(request: web.Request) -> Fields:
    return Fields(await read_json(request))


@routes.get("/healthz")
@routes.get("/readyz")
async def healthz(request: web.Request) -> web.Response:
    """Readiness, for load balancers: the store can be read and its last write did not fail (a full disk,
    an outage). 503 with Retry-After and the reason otherwise; ``/livez`` says only that the process runs."""
    store = request.app[SERVICE].store
    try:
        await store.get_venue("healthz")
    except Exception as exc:
        log.warning("health check: store unreadable: %s", exc)
        return _not_ready(f"store unreadable: {exc}")
    trouble = store.trouble()
    if trouble is not None:
        return _not_ready(trouble)
    return web.json_response({"ok": True, "store": "ok"})


def _not_ready(reason: str) -> web.Response:
    return web.json_response({"ok": False, "error": "store unavailable", "store": reason}, status=503,
                             headers={"Retry-After": "5"})


@routes.get("/livez")
async def livez(request: web.Request) -> web.Response:
    """Liveness, for a supervisor: the process answers. A store in trouble is not cured by a restart."""
    return web.json_response({"ok": True})


# --- auth and administration -----------------------------------------------------------------------


@routes.post(API + "/auth/magic-link")
async def create_magic_link(request: web.Request) -> web.Response:
    f = await _fields(request)
    service = request.app[SERVICE]
    return _reply(await service.create_magic_link(f.email("email"), f.text("redirectUrl", max_len=2048),
                                                  client_address(request)))


@routes.post(API + "/auth/verify")
async def verify_magic_link(request: web.Request) -> web.Response:
    f = await _fields(request)
    f.optional_text("userId")  # accepted for the reference's clients; ids are never client-chosen
    return _reply(await request.app[SERVICE].verify_magic_link(f.text("secret", max_len=128)))


@routes.get(API + "/me")
async def me(request: web.Request) -> web.Response:
    """What the token says, and for people the stored user (an admin may have changed role or venue since)."""
    who = require(principal_of(request))
    user = None if who.role == "device" else await request.app[SERVICE].store.get_user(who.subject)
    return web.json_response({"role": who.role, "subject": who.subject, "venueId": who.venue_id,
                              "email": who.email, "user": None if user is None else user.to_json()})


@routes.post(API + "/venues")
async def create_venue(request: web.Request) -> web.Response:
    require_admin(principal_of(request))
    f = await _fields(request)
    venue_id = f.ident("venueId")
    assert venue_id is not None
    service = request.app[SERVICE]
    timezone = f.text("timezone", required=False, max_len=64, default="UTC")
    created = await accounts.create_venue(service.store, venue_id, f.text("name"), timezone, service.now_ms())
    return web.json_response({"venueId": venue_id, "created": created}, status=201 if created else 200)


# --- player registry -------------------------------------------------------------------------------


@routes.post(VENUE + "/players/{action:register|heartbeat|release}")
async def player(request: web.Request) -> web.Response:
    venue_id, f = venue_param(request), await _fields(request)
    device_id = f.ident("deviceId")
    assert device_id is not None
    service, who = request.app[SERVICE], principal_of(request)
    action = request.match_info["action"]
    instance_id = f.ident("instanceId", required=False)  # the asking process (a copied token is another one)
    if action == "release":
        return _reply(await service.release(who, venue_id, device_id, instance_id))
    user_agent = f.text("userAgent", required=False)
    report = device_report(f, user_agent or request.headers.get("User-Agent"))
    if action == "heartbeat":
        return _reply(await service.heartbeat(who, venue_id, device_id, _play_position(f), instance_id, report))
    reply = await service.register(who, venue_id, device_id, user_agent, instance_id)
    # After the registry answered (so who may act for this player was checked): what the box says of itself.
    await service.store.record_device_report(venue_id, device_id, report, service.now_ms())
    return _reply(reply)


def _play_position(f: Fields) -> PlayPosition | None:
    """A heartbeat's optional ``position: {entryId, seconds}``: where the master's player is."""
    if f.data.get("position") is None:
        return None
    position = f.obj("position")
    entry_id = position.ident("entryId")
    assert entry_id is not None
    seconds = position.number("seconds")
    assert seconds is not None
    return PlayPosition(entry_id, seconds)


@routes.get(VENUE + "/master")
async def master(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    require_venue_member(principal_of(request), venue_id)
    service = request.app[SERVICE]
    await service.liveness(venue_id)
    info = await service.store.current_master(venue_id)
    if info is None:
        return web.json_response({"master": None})
    stale = service.now_ms() - info.last_heartbeat_ms >= service.timings.stale_ms
    return web.json_response({"master": {"deviceId": info.device_id, "epoch": info.epoch,
                                         "lastHeartbeat": info.last_heartbeat_ms, "stale": stale}})


# --- paid requests ---------------------------------------------------------------------------------


@routes.post(VENUE + "/requests")
async def post_request(request: web.Request) -> web.Response:
    venue_id, f = venue_param(request), await _fields(request)
    service = request.app[SERVICE]
    song = f.song("song", allow_urls=service.config.requests.allow_urls)
    payment_id = f.ident("paymentId")
    assert payment_id is not None
    return _reply(await service.paid_request(venue_id, song, payment_id, f.optional_text("requesterId"),
                                             client_address(request)))


@routes.get(VENUE + "/requests")
async def list_requests(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    body = await request.app[SERVICE].list_requests(principal_of(request), venue_id,
                                                    request.query.get("status"), limit)
    return web.json_response(body)


# --- queue -----------------------------------------------------------------------------------------


@routes.get(VENUE + "/queue")
async def public_queue(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    limit = query_int(request, "limit", 50, 1, 500)
    return web.json_response(await request.app[SERVICE].public_queue(venue_id, limit))


@routes.get(VENUE + "/queue/full")
async def full_queue(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    require_venue_member(principal_of(request), venue_id)
    await request.app[SERVICE].liveness(venue_id)
    snapshot = await request.app[SERVICE].store.queue_snapshot(venue_id)
    return web.json_response(snapshot.to_json())


def _idempotency_key(request: web.Request, f: Fields) -> str | None:
    """The ``Idempotency-Key`` header, else the body's ``idempotencyKey``."""
    key = request.headers.get("Idempotency-Key") or f.optional_text("idempotencyKey", max_len=128)
    if key is not None and not 1 <= len(key) <= 128:
        raise ApiError(400, "must be 1-128 characters", "idempotencyKey")
    if key is not None:
        check_text(key, "idempotencyKey")  # header bytes that are not UTF-8 arrive as lone surrogates
    return key


def _master_write(request: web.Request, venue_id: str, f: Fields) -> MasterWrite:
    key = _idempotency_key(request, f)
    device_id = f.ident("deviceId")
    assert device_id is not None
    return MasterWrite(venue_id, device_id, f.integer("epoch"), key)


def _write_reply(result: WriteResult) -> web.Response:
    return web.json_response({**result.body, "replayed": result.replayed})


@routes.post(VENUE + "/queue/advance")
async def advance(request: web.Request) -> web.Response:
    venue_id, f = venue_param(request), await _fields(request)
    write = _master_write(request, venue_id, f)
    finished = f.ident("finishedEntryId", required=False)
    return _write_reply(await request.app[SERVICE].advance(principal_of(request), write, finished))


@routes.post(VENUE + "/now-playing")
async def now_playing(request: web.Request) -> web.Response:
    venue_id, f = venue_param(request), await _fields(request)
    service = request.app[SERVICE]
    write = _master_write(request, venue_id, f)
    entry_id = f.ident("entryId", required=False)
    song = f.song("song", allow_urls=True, details_optional=True) if f.data.get("song") is not None else None
    if entry_id is None and song is None:
        raise ApiError(400, "send entryId, song, or both", "entryId")
    return _write_reply(await service.now_playing(principal_of(request), write, entry_id, song))


@routes.post(VENUE + "/played")
async def played(request: web.Request) -> web.Response:
    venue_id, f = venue_param(request), await _fields(request)
    service = request.app[SERVICE]
    write = _master_write(request, venue_id, f)
    if write.idempotency_key is None:
        raise ApiError(400, "is required for played reports (send the Idempotency-Key header)", "idempotencyKey")
    entry_id = f.ident("entryId", required=False)
    song = f.song("song", allow_urls=True, details_optional=True) if f.data.get("song") is not None else None
    if entry_id is None and song is None:
        raise ApiError(400, "send entryId, song, or both", "entryId")
    played_at = f.integer("playedAt") if f.data.get("playedAt") is not None else service.now_ms()
    report = PlayReport(entry_id, song, played_at, f.ident("requestId", required=False))
    return _write_reply(await service.played(principal_of(request), write, report))


@routes.get(VENUE + "/history")
async def history(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    require_venue_member(principal_of(request), venue_id)
    limit = query_int(request, "limit", 100, 1, 1000)
    return web.json_response({"history": await request.app[SERVICE].store.play_history(venue_id, limit)})


# --- device errors -------------------------------------------------------------------------------


@routes.post(VENUE + "/device-errors")
async def report_device_error(request: web.Request) -> web.Response:
    """An edge reports a failure (download, playback) so staff can see it; resends are stored once."""
    venue_id, f = venue_param(request), await _fields(request)
    service = request.app[SERVICE]
    key = _idempotency_key(request, f)
    if key is None:
        raise ApiError(400, "is required for error reports (send the Idempotency-Key header)", "idempotencyKey")
    device_id = f.ident("deviceId")
    assert device_id is not None
    video_id = f.video_id("videoId", allow_urls=True) if f.data.get("videoId") is not None else None
    message = f.text("message", max_len=MAX_ERROR_MESSAGE)
    now_ms = service.now_ms()  # one reading: without "at", the report's time *is* its receipt time
    at_ms = f.integer("at") if f.data.get("at") is not None else now_ms
    who = require(principal_of(request))
    if who.role != "device" or who.venue_id != venue_id or who.device_id != device_id:
        raise ApiError(403, "only the device itself reports its errors (a device token for this venue and deviceId)",
                       "Authorization")
    result = await service.report_device_error(
        DeviceError(venue_id, device_id, key, message, video_id, at_ms), now_ms)
    return web.json_response({**result.body, "replayed": result.replayed}, status=200 if result.replayed else 201)


@routes.get(VENUE + "/device-errors")
async def list_device_errors(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    require_staff(principal_of(request), venue_id)
    limit = query_int(request, "limit", 100, 1, 1000)
    return web.json_response({"errors": await request.app[SERVICE].store.device_errors(venue_id, limit)})


# --- playlists -------------------------------------------------------------------------------------


@routes.post(VENUE + "/playlists")
async def create_playlist(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    require_staff(principal_of(request), venue_id)
    f = await _fields(request)
    service = request.app[SERVICE]
    playlist = await service.store.create_playlist(venue_id, f.text("name"), service.now_ms())
    return web.json_response(playlist.to_json(), status=201)


@routes.get(VENUE + "/playlists")
async def list_playlists(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    require_venue_member(principal_of(request), venue_id)
    playlists = await request.app[SERVICE].store.list_playlists(venue_id)
    return web.json_response({"playlists": [p.to_json() for p in playlists]})


async def _venue_playlist_id(request: web.Request) -> tuple[str, str]:
    venue_id = venue_param(request)
    playlist_id = check_id(request.match_info["playlistId"], "playlistId")
    playlist = await request.app[SERVICE].store.get_playlist(playlist_id)
    if playlist is None or playlist.venue_id != venue_id:
        raise ApiError(404, f"unknown playlist {playlist_id!r} at venue {venue_id!r}", "playlistId")
    return venue_id, playlist_id


@routes.get(VENUE + "/playlists/{playlistId}")
async def get_playlist(request: web.Request) -> web.Response:
    venue_id, playlist_id = await _venue_playlist_id(request)
    require_venue_member(principal_of(request), venue_id)
    playlist = await request.app[SERVICE].store.get_playlist(playlist_id)
    assert playlist is not None
    return web.json_response(playlist.to_json())


@routes.post(VENUE + "/playlists/{playlistId}/tracks")
async def add_track(request: web.Request) -> web.Response:
    f = await _fields(request)
    service = request.app[SERVICE]
    # By URL or id alone ({"song": {"videoId": ...}}): the hub fills in what it knows, else the venue's box will.
    song = f.song("song", allow_urls=service.config.requests.allow_urls, details_optional=True)
    _, playlist_id = await _venue_playlist_id(request)
    return _reply(await service.add_song(principal_of(request), playlist_id, song))


@routes.put(VENUE + "/active-playlist")
async def activate_playlist(request: web.Request) -> web.Response:
    venue_id = venue_param(request)
    require_staff(principal_of(request), venue_id)
    f = await _fields(request)
    playlist_id = f.ident("playlistId")
    assert playlist_id is not None
    service = request.app[SERVICE]
    version = await service.store.activate_playlist(venue_id, playlist_id, service.now_ms())
    return web.json_response({"venueId": venue_id, "activePlaylistId": playlist_id, "version": version})


# --- catalog ---------------------------------------------------------------------------------------


@routes.get(API + "/catalog")
async def get_catalog(request: web.Request) -> web.Response:
    ids = [Fields({"videoId": v}).video_id("videoId", allow_urls=True) for v in request.query.getall("videoId", [])]
    if not 1 <= len(ids) <= 200:
        raise ApiError(400, "send 1-200 videoId query parameters", "videoId")
    tracks = await request.app[SERVICE].store.get_catalog(ids, _catalog_venue(request))
    return web.json_response({"tracks": [tracks[i].to_json() for i in ids if i in tracks]})


def _catalog_venue(request: web.Request) -> str | None:
    """Whose overrides apply: the venue named in the query, else the caller's (an edge's token names it)."""
    named = request.query.get("venueId")
    if named is not None:
        return check_id(named, "venueId")
    who = principal_of(request)
    return who.venue_id if who is not None else None


def _offset(f: Fields, key: str) -> float | None:
    return f.number(key, required=False)


@routes.post(API + "/catalog/analysis")
async def report_analysis(request: web.Request) -> web.Response:
    f = await _fields(request)
    who = principal_of(request)
    analysis = Analysis(
        f.video_id("videoId", allow_urls=True), f.number("duration", required=False),
        _offset(f, "realStartOffset"), _offset(f, "realEndOffset"),
        f.number("loudness", required=False, low=-100.0, high=20.0),
        who.subject if who is not None else "",
        who.venue_id if who is not None and who.role == "device" else None,
    )
    return web.json_response(await request.app[SERVICE].report_analysis(who, analysis))


@routes.put(API + "/catalog/override")
async def set_override(request: web.Request) -> web.Response:
    f = await _fields(request)
    video_id = f.video_id("videoId", allow_urls=True)
    start, end = _offset(f, "realStartOffset"), _offset(f, "realEndOffset")
    if start is not None and end is not None and end <= start:
        raise ApiError(400, "must be after realStartOffset", "realEndOffset")
    offsets = None if start is None and end is None else Offsets(start, end)
    venue_id = f.ident("venueId", required=False)
    return web.json_response(
        await request.app[SERVICE].set_override(principal_of(request), video_id, offsets, venue_id)
    )
