"""The hub's OpenAPI document (hand-written; a test checks every route is in it)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

routes = web.RouteTableDef()
Json = dict[str, Any]

_ERROR: Json = {
    "description": "client error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_BEARER: list[Json] = [{"bearer": []}]


def _obj(**props: Any) -> Json:
    return {"type": "object", "properties": props}


_S = {"type": "string"}
_N = {"type": "number"}
_I = {"type": "integer"}
_SONG = {"$ref": "#/components/schemas/Song"}
_MASTER_WRITE = {"deviceId": _S, "epoch": _I, "idempotencyKey": _S}


def _op(summary: str, *, auth: bool = True, body: Json | None = None, ok: str = "200",
        params: tuple[str, ...] = ()) -> Json:
    op: Json = {"summary": summary, "responses": {ok: {"description": "success"}, "4XX": _ERROR}}
    if auth:
        op["security"] = _BEARER
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = [{"name": p, "in": "query", "schema": _S} for p in params]
    return op


V = "/api/v1/venues/{venueId}"
PATHS: Json = {
    "/healthz": {"get": _op("readiness: the store reads and its last write did not fail (else 503)", auth=False)},
    "/readyz": {"get": _op("readiness, as /healthz", auth=False)},
    "/livez": {"get": _op("liveness: the process answers", auth=False)},
    "/api/v1/openapi.json": {"get": _op("this document", auth=False)},
    "/api/v1/auth/magic-link": {"post": _op("mail a one-time sign-in link (15 min)", auth=False,
                                            body=_obj(email=_S, redirectUrl=_S))},
    "/api/v1/auth/verify": {"post": _op("consume a magic link once; returns {token, user}", auth=False,
                                        body=_obj(secret=_S, userId=_S))},
    "/api/v1/me": {"get": _op("who the bearer token names")},
    "/api/v1/venues": {"post": _op("admin: create a venue (timezone: IANA name, default UTC)",
                                   body=_obj(venueId=_S, name=_S, timezone=_S), ok="201"),
                       "get": _op("admin: every venue; staff: their own")},
    "/api/v1/users": {"put": _op("admin: create/update a user by email (a role or venue change ends their tokens);"
                                 " a venue's owner: add staff to it (someone on another venue is refused, 409)",
                                 body=_obj(email=_S, role={"enum": ["admin", "owner", "staff"]}, venueId=_S)),
                      "get": _op("admin: users (of ?venueId=); staff: their venue's", params=("venueId",))},
    "/api/v1/users/{userId}": {"delete": _op("admin: remove a user; a venue's owner: one of its staff (their tokens"
                                             " stop working)")},
    "/api/v1/users/{userId}/sign-out": {"post": _op("the user, an admin, or the owner of a staff member's venue: sign"
                                                    " out everywhere (every token ends)")},
    V: {"get": _op("staff: the venue (name, timezone, active playlist)")},
    V + "/players/{action}": {"post": _op(
        "player registry: action register | heartbeat | release (device token for deviceId, or venue staff); "
        "register/heartbeat may carry what the box says of itself, shown on the dashboard; a heartbeat, the "
        "master's position in the entry it plays; instanceId names the asking process (another process of the "
        "lease-holding device is refused)",
        body=_obj(deviceId=_S, instanceId=_S, userAgent=_S, version=_S,
                  nowPlaying=_obj(entryId=_S, videoId=_S, title=_S, artist=_S, position=_N, duration=_N),
                  problems={"type": "array", "items": _S, "maxItems": 20},
                  position=_obj(entryId=_S, seconds=_N)))},
    V + "/dashboard": {"get": _op("staff: boxes (role, now playing, heartbeat, epoch, version, problems), "
                                  "recent device errors, today's requests and refunds")},
    V + "/devices": {"get": _op("staff: the venue's boxes")},
    V + "/devices/{deviceId}/revoke": {"post": _op("staff: revoke a box (its token stops working, its lease ends)")},
    V + "/devices/{deviceId}/token": {"post": _op("admin: re-issue a box's token (earlier ones stop working)",
                                                  ok="201")},
    "/api/v1/pairings": {"post": _op("a box without a token: a pairing code to show and a secret to poll with "
                                     "(rate-limited per address)", auth=False, body=_obj(deviceId=_S), ok="201")},
    "/api/v1/pairings/collect": {"post": _op("the box polls: 202 pending; 200 once with venueId and deviceToken; "
                                             "404 unknown/expired/collected", auth=False, body=_obj(secret=_S))},
    V + "/pairings": {"post": _op("staff: enter the code a box shows; it becomes this venue's (rate-limited)",
                                  body=_obj(code=_S), ok="201")},
    V + "/master": {"get": _op("the venue's current master and epoch")},
    V + "/requests": {
        "post": _op("paid song request (no login); 201 accepted, 200 replayed paymentId, 422 refused (refund due)",
                    auth=False, body=_obj(song=_SONG, paymentId=_S, requesterId=_S), ok="201"),
        "get": _op("staff: list requests", params=("status", "limit")),
    },
    V + "/queue": {"get": _op("public queue view with estimated start times", auth=False, params=("limit",))},
    V + "/queue/full": {"get": _op("device/staff: queue snapshot with ids")},
    V + "/queue/advance": {"post": _op("master: move the next entry to now playing (epoch-fenced)",
                                       body=_obj(**_MASTER_WRITE, finishedEntryId=_S))},
    V + "/now-playing": {"post": _op("master: report now playing (epoch-fenced)",
                                     body=_obj(**_MASTER_WRITE, entryId=_S, song=_SONG))},
    V + "/played": {"post": _op("device: append to play history (idempotency key required)",
                                body=_obj(**_MASTER_WRITE, entryId=_S, requestId=_S, song=_SONG, playedAt=_I))},
    V + "/history": {"get": _op("device/staff: play history", params=("limit",))},
    V + "/device-errors": {
        "post": _op("device: report an error (own venue and deviceId; Idempotency-Key required; 201 stored, "
                    "200 replayed; 429 over the per-device limit)",
                    body={**_obj(deviceId=_S, videoId=_S, message={**_S, "maxLength": 1000}, at=_I, idempotencyKey=_S),
                          "required": ["deviceId", "message"]}, ok="201"),
        "get": _op("staff: the venue's device errors, newest first", params=("limit",)),
    },
    V + "/changes": {"get": _op("poll the change feed after a version", params=("since",))},
    V + "/feed": {"get": _op("WebSocket change feed; resume with ?since=V; a browser passes ?ticket= instead of "
                             "the Authorization header", params=("since", "ticket"))},
    V + "/feed/ticket": {"post": _op("device/staff: a 60-second ticket for the feed WebSocket's URL (browsers)")},
    V + "/playlists": {"post": _op("staff: create a playlist", body=_obj(name=_S), ok="201"),
                       "get": _op("device/staff: list playlists")},
    V + "/playlists/{playlistId}": {"get": _op("device/staff: one playlist with its tracks"),
                                    "patch": _op("staff: rename, or set requestable (patrons may request from it)",
                                                 body=_obj(name=_S, requestable={"type": "boolean"})),
                                    "delete": _op("staff: delete a playlist (409 while it is the active one)")},
    V + "/playlists/{playlistId}/tracks": {"post": _op("staff: add a song (addSongToPlaylist); with its videoId "
                                                       "alone, what the hub knows of it, else details pending "
                                                       "until the venue's box describes it",
                                                       body=_obj(song=_SONG), ok="201")},
    V + "/active-playlist": {"put": _op("staff: play this playlist (rebuilds the main queue)",
                                        body=_obj(playlistId=_S))},
    "/api/v1/catalog": {"get": _op("catalog entries (offsets, loudness) as a venue sees them (?venueId=, else the "
                                   "token's venue)", auth=False, params=("videoId", "venueId"))},
    "/api/v1/catalog/analysis": {"post": _op("device: report analysis of a video",
                                             body=_obj(videoId=_S, duration=_N, realStartOffset=_N,
                                                       realEndOffset=_N, loudness=_N))},
    "/api/v1/catalog/override": {"put": _op("staff: their venue's offsets; admin: a named venue's, or without "
                                            "venueId the global ones (wins over analysis; nulls clear)",
                                            body=_obj(videoId=_S, venueId=_S, realStartOffset=_N,
                                                      realEndOffset=_N))},
    # --- the staff console (issue 12): staff of the venue, or an admin ---
    V + "/queue/entries/{entryId}": {
        "delete": _op("staff: remove a queued entry; a paid one is refused (refund due) and answered in 'refund'"),
        "patch": _op("staff: move a main-queue entry to a 1-based position (one main_replaced change)",
                     body=_obj(position=_I)),
    },
    V + "/skip": {"post": _op("staff: the playing box skips the current track (a 'skip' change naming its entry); "
                              "404 when nothing plays")},
    V + "/queue/next": {"post": _op("staff: a free pick at the head of the priority queue: {song} or {videoId: id or "
                                    "YouTube URL of a song the hub knows}", body=_obj(song=_SONG, videoId=_S),
                                    ok="201")},
    V + "/playlists/{playlistId}/tracks/{position}": {
        "delete": _op("staff: remove the track at a 1-based position (?videoId= must match it: 409 otherwise)",
                      params=("videoId",)),
        "patch": _op("staff: move the track at position (its videoId must match) to toPosition",
                     body=_obj(videoId=_S, toPosition=_I)),
    },
    V + "/playlists/{playlistId}/tracks/import": {"post": _op(
        "staff: add songs, one a line: 'URL-or-id' (a song the hub knows) or 'URL-or-id | Artist | Title | m:ss'; "
        "answers {playlist, added, problems: [{line, text, error}]}", body=_obj(text=_S), ok="201")},
    V + "/rules": {
        "get": _op("staff: the venue's rules: {allowExplicit, maxDurationS, artistLimit, timezone, marks}"),
        "patch": _op("staff: explicit songs on/off, the venue's request limits (null: the hub's default), timezone",
                     body=_obj(allowExplicit={"type": "boolean"}, maxDurationS=_N, artistLimit=_I, timezone=_S)),
    },
    V + "/marks": {"post": _op("staff: ban a video (ban_video) or an artist (ban_artist), or flag a video explicit; "
                               "enforced on requests (refund due) and by the edges' rotation (a 'rules' change)",
                               body=_obj(kind={"enum": ["ban_video", "ban_artist", "explicit"]}, value=_S), ok="201")},
    V + "/marks/{markId}": {"delete": _op("staff: lift a ban or an explicit flag")},
    V + "/schedule": {
        "get": _op("staff: the weekly schedule {timezone, appliedSlotId, slots}"),
        "post": _op("staff: a weekly window (venue time) in which a playlist plays; weekday 0 = Monday",
                    body=_obj(playlistId=_S, weekday=_I, start=_S, end=_S), ok="201"),
    },
    V + "/schedule/{slotId}": {"delete": _op("staff: remove a schedule window")},
    "/v1/functions/{functionId}/executions": {"post": _op(
        "reference compatibility: magic-link, player-registry, processRequest, addSongToPlaylist "
        "(by name or $id); body {\"body\": \"<json string>\"}; answers an Appwrite execution object",
        auth=False, body=_obj(body=_S), ok="201")},
    "/v1/functions/{functionId}/executions/{executionId}": {"get": _op(
        "reference compatibility: an execution of the last hour, to its creator only (a guest gets Appwrite's "
        "401, anyone else its 404); a sign-in's is kept without its body (no token)")},
    V + "/requests/{requestId}/over-limit": {"post": _op(
        "master: the fetched track's measured (trimmed) length is over the limit; the pending request becomes "
        "refund_due and leaves the queue, once (epoch-fenced; 422 when within the limit)",
        body=_obj(**_MASTER_WRITE, duration=_N))},
    # Patron requests and payments (issue 11; docs/hub-api.md "Payments").
    V + "/songs": {"get": _op("public: requestable songs, searched by title/artist (every word), and the price",
                              auth=False, params=("q", "limit"))},
    V + "/checkout": {"post": _op("public: request a requestable song; answers requestId and the provider's "
                                  "checkoutUrl (status awaiting_payment), or the queued request at a free venue",
                                  auth=False, body=_obj(song=_obj(videoId=_S), requesterId=_S), ok="201")},
    V + "/requests/{requestId}/status": {"get": _op("public: one request's status, queue position and ETA",
                                                    auth=False)},
    V + "/live": {"get": _op("public: server-sent events 'state' {queue, request} at once and on each change",
                             auth=False, params=("request",))},
    "/api/v1/payments/stripe/webhook": {"post": _op("Stripe webhook (Stripe-Signature checked by the stripe "
                                                    "library); a paid checkout queues its request", auth=False,
                                                    body=_obj())},
    V + "/price": {"get": _op("public: the venue's price per request (minor units) and currency", auth=False),
                   "put": _op("staff: set the price (0 = free) and currency", body=_obj(price=_I, currency=_S))},
    V + "/refunds": {"get": _op("staff: refused paid requests and their refunds (due/refunded/failed)",
                                params=("limit",))},
    V + "/playlists/{playlistId}/tracks/{position}/details": {
        "put": _op("staff: type a track's artist, title and length (videoId must still be at that position); "
                   "replaces what the box filled in", body=_obj(videoId=_S, title=_S, artist=_S, duration=_N))},
    V + "/songs/pending": {"get": _op("device/staff of the venue: video ids of its playlist songs whose details "
                                      "are pending (its boxes look them up)", params=("limit",))},
    V + "/songs/details": {"post": _op("device of the venue: what a song it fetched is (yt-dlp's artist and title, "
                                       "its measured length); fills that venue's songs added by URL alone",
                                       body={**_obj(videoId=_S, title={**_S, "maxLength": 1000},
                                                    artist={**_S, "maxLength": 1000}, duration=_N),
                                             "required": ["videoId", "title", "artist", "duration"]})},
}

DOCUMENT: Json = {
    "openapi": "3.1.0",
    "info": {"title": "djamms hub", "version": "1", "description": "See docs/hub-api.md for rules and the feed."},
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (HS256)"}},
        "schemas": {
            "Error": _obj(error=_S, field=_S),
            "Song": {**_obj(videoId=_S, title=_S, artist=_S, duration=_N, detailsPending={"type": "boolean"},
                            detailsFrom={"enum": ["box"]}),
                     "required": ["videoId", "title", "artist", "duration"]},
        },
    },
}


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
