"""No client input makes the hub answer 5xx: every bad request is a 4xx JSON error naming the field."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from djamms_edge.hub.app import create_app
from djamms_edge.hub.config import RequestRulesConfig
from djamms_edge.hub.store.base import QueueSnapshot, User
from djamms_edge.hub.store.sqlite import SqliteStore
from tests.hub.conftest import Hub, hub_config

VENUE = "venue-bad"
SONG = {"videoId": "dQw4w9WgXcQ", "title": "t", "artist": "a", "duration": 200}


def raw_cases() -> list[tuple[str, bytes, str]]:
    big = b'{"song": "' + b"x" * 70_000 + b'"}'
    deep = b"[" * 100_000 + b"]" * 100_000
    return [
        ("malformed", b"{bad", "body"),
        ("empty", b"", "body"),
        ("array", b"[]", "body"),
        ("null", b"null", "body"),
        ("number", b"123", "body"),
        ("string", b'"song"', "body"),
        ("NaN", b'{"song": {"videoId": "dQw4w9WgXcQ", "title": "t", "artist": "a", "duration": NaN}}', "body"),
        ("Infinity", b'{"paymentId": Infinity}', "body"),
        ("invalid utf-8", b'{"paymentId": "\xff\xfe"}', "body"),
        ("over 64 KB", big, "body"),
        ("deep nesting", deep, "body"),
    ]


@pytest.mark.parametrize(("name", "raw", "field"), raw_cases(), ids=[c[0] for c in raw_cases()])
async def test_unreadable_bodies_are_4xx(hub: Hub, name: str, raw: bytes, field: str) -> None:
    await hub.venue(VENUE)
    async with hub.http.post(f"{hub.url}/api/v1/venues/{VENUE}/requests", data=raw,
                             headers={"Content-Type": "application/json"}) as resp:
        body = await resp.json()
        assert 400 <= resp.status < 500, (name, resp.status, body)
        assert body["field"] == field
        if name == "over 64 KB":
            assert resp.status == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "song"),
        ({"song": "dQw4w9WgXcQ", "paymentId": "p"}, "song"),
        ({"song": {**SONG, "videoId": "short"}, "paymentId": "p"}, "song.videoId"),
        ({"song": {**SONG, "videoId": "dQw4w9WgXc;"}, "paymentId": "p"}, "song.videoId"),
        ({"song": {**SONG, "videoId": "$(rm -rf /)"}, "paymentId": "p"}, "song.videoId"),
        ({"song": {**SONG, "videoId": "https://example.com/v.mp4"}, "paymentId": "p"}, "song.videoId"),  # no URLs
        ({"song": {**SONG, "duration": "213"}, "paymentId": "p"}, "song.duration"),
        ({"song": {**SONG, "duration": -1}, "paymentId": "p"}, "song.duration"),
        ({"song": {**SONG, "duration": True}, "paymentId": "p"}, "song.duration"),
        ({"song": {**SONG, "artist": ""}, "paymentId": "p"}, "song.artist"),
        ({"song": {**SONG, "title": 5}, "paymentId": "p"}, "song.title"),
        ({"song": SONG}, "paymentId"),
        ({"song": SONG, "paymentId": "has space"}, "paymentId"),
        ({"song": SONG, "paymentId": "p" * 500}, "paymentId"),
        ({"song": SONG, "paymentId": "p", "requesterId": 42}, "requesterId"),
    ],
)
async def test_bad_request_fields_are_named(hub: Hub, body: dict, field: str) -> None:
    await hub.venue(VENUE)
    status, answer = await hub.call("POST", f"/api/v1/venues/{VENUE}/requests", body)
    assert status == 400, answer
    assert answer["field"] == field
    assert answer["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("GET", "/api/v1/venues/bad%20venue/queue", 400, "venueId"),
        ("GET", "/api/v1/venues/" + "v" * 200 + "/queue", 400, "venueId"),
        ("GET", "/api/v1/venues/nowhere/queue", 404, "venueId"),
        ("GET", f"/api/v1/venues/{VENUE}/queue?limit=abc", 400, "limit"),
        ("GET", f"/api/v1/venues/{VENUE}/queue?limit=0", 400, "limit"),
        ("GET", "/api/v1/catalog", 400, "videoId"),
        ("GET", "/api/v1/catalog?videoId=nope", 400, "videoId"),
        ("GET", "/api/v1/no-such-thing", 404, None),
        ("DELETE", f"/api/v1/venues/{VENUE}/queue", 405, None),
        ("GET", f"/api/v1/venues/{VENUE}/feed", 401, "Authorization"),
        ("GET", f"/api/v1/venues/{VENUE}/songs?q=" + "x" * 101, 400, "q"),
        ("GET", f"/api/v1/venues/{VENUE}/songs?limit=0", 400, "limit"),
        ("GET", "/api/v1/venues/nowhere/songs", 404, "venueId"),
        ("GET", f"/api/v1/venues/{VENUE}/requests/bad%20id/status", 400, "requestId"),
        ("GET", f"/api/v1/venues/{VENUE}/requests/no-such-request/status", 404, "requestId"),
        ("GET", f"/api/v1/venues/{VENUE}/live?request=bad%20id", 400, "request"),
        ("GET", "/api/v1/venues/nowhere/live", 404, "venueId"),
        ("GET", "/api/v1/venues/nowhere/price", 404, "venueId"),
        ("GET", f"/api/v1/venues/{VENUE}/refunds", 401, "Authorization"),
        ("POST", "/api/v1/payments/stripe/webhook", 400, "Stripe-Signature"),
        ("GET", "/api/v1/payments/stripe/webhook", 405, None),
        ("GET", f"/api/v1/venues/{VENUE}/dashboard", 401, "Authorization"),
        ("GET", "/api/v1/venues/bad%20venue/dashboard", 400, "venueId"),
        ("POST", f"/api/v1/venues/{VENUE}/devices/bad%20box/revoke", 400, "deviceId"),
        ("DELETE", "/api/v1/users/u-1", 401, "Authorization"),
        ("POST", "/api/v1/users/u-1/sign-out", 401, "Authorization"),
        ("GET", "/api/v1/venues", 401, "Authorization"),
    ],
)
async def test_bad_paths_and_queries(hub: Hub, method: str, path: str, status: int, field: str | None) -> None:
    await hub.venue(VENUE)
    code, body = await hub.call(method, path)
    assert (code, body["field"]) == (status, field)
    assert body["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("DELETE", f"/api/v1/venues/{VENUE}/queue/entries/bad%20id", 400, "entryId"),
        ("DELETE", f"/api/v1/venues/{VENUE}/queue/entries/e-nothing", 404, "entryId"),
        ("PATCH", f"/api/v1/venues/{VENUE}/queue/entries/e-nothing", 400, "body"),
        ("DELETE", f"/api/v1/venues/{VENUE}/playlists/pl-none", 404, "playlistId"),
        ("DELETE", f"/api/v1/venues/{VENUE}/playlists/pl-none/tracks/abc?videoId=dQw4w9WgXcQ", 400, "position"),
        ("DELETE", f"/api/v1/venues/{VENUE}/playlists/pl-none/tracks/0?videoId=dQw4w9WgXcQ", 400, "position"),
        ("DELETE", f"/api/v1/venues/{VENUE}/playlists/pl-none/tracks/{2**70}?videoId=dQw4w9WgXcQ", 400, "position"),
        ("DELETE", f"/api/v1/venues/{VENUE}/playlists/pl-none/tracks/1", 400, "videoId"),
        ("DELETE", f"/api/v1/venues/{VENUE}/playlists/pl-none/tracks/1?videoId=%00", 400, "videoId"),
        ("DELETE", f"/api/v1/venues/{VENUE}/playlists/pl-none/tracks/1?videoId=dQw4w9WgXcQ", 404, "playlistId"),
        ("DELETE", f"/api/v1/venues/{VENUE}/marks/mk-none", 404, "markId"),
        ("DELETE", f"/api/v1/venues/{VENUE}/marks/bad%2Fid", 400, "markId"),
        ("DELETE", f"/api/v1/venues/{VENUE}/schedule/slot-none", 404, "slotId"),
        ("POST", f"/api/v1/venues/{VENUE}/skip", 404, "entryId"),
        ("GET", "/api/v1/venues/nowhere/rules", 404, "venueId"),
        ("GET", "/api/v1/venues/nowhere/schedule", 404, "venueId"),
        ("GET", f"/api/v1/venues/{VENUE}/songs/pending?limit=0", 400, "limit"),
        ("GET", f"/api/v1/venues/{VENUE}/songs/pending?limit=x", 400, "limit"),
    ],
)
async def test_bad_console_paths_are_4xx_naming_the_part(hub: Hub, method: str, path: str, status: int,
                                                          field: str | None) -> None:
    await hub.venue(VENUE)
    code, body = await hub.call(method, path, headers=hub.admin())
    assert (code, body["field"]) == (status, field), body
    assert body["error"]


async def test_a_plain_get_on_the_feed_says_it_wants_a_websocket(hub: Hub) -> None:
    await hub.venue(VENUE)
    code, body = await hub.call("GET", f"/api/v1/venues/{VENUE}/feed", headers=hub.device(VENUE, "box-a"))
    assert code == 400 and "WebSocket" in body["error"]


# Each endpoint with a valid body; every field of it is then replaced by each hostile value.
TEMPLATES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", f"/api/v1/venues/{VENUE}/requests", {"song": SONG, "paymentId": "pi_1", "requesterId": "u"}),
    ("POST", f"/api/v1/venues/{VENUE}/players/register", {"deviceId": "box-a", "userAgent": "ua",
                                                            "instanceId": "proc-1"}),
    ("POST", f"/api/v1/venues/{VENUE}/players/heartbeat", {"deviceId": "box-a", "instanceId": "proc-1",
                                                             "position": {"entryId": "e-1", "seconds": 1.5}}),
    ("POST", f"/api/v1/venues/{VENUE}/queue/advance", {"deviceId": "box-a", "epoch": 1, "finishedEntryId": "e-1"}),
    ("POST", f"/api/v1/venues/{VENUE}/now-playing", {"deviceId": "box-a", "epoch": 1, "song": SONG}),
    ("POST", f"/api/v1/venues/{VENUE}/played", {"deviceId": "box-a", "epoch": 1, "song": SONG,
                                                  "idempotencyKey": "k", "playedAt": 1}),
    ("POST", f"/api/v1/venues/{VENUE}/device-errors", {"deviceId": "box-a", "videoId": "dQw4w9WgXcQ",
                                                         "message": "m", "at": 1, "idempotencyKey": "k"}),
    ("POST", f"/api/v1/venues/{VENUE}/playlists", {"name": "n"}),
    ("PUT", f"/api/v1/venues/{VENUE}/active-playlist", {"playlistId": "pl-1"}),
    ("POST", "/api/v1/catalog/analysis", {"videoId": "dQw4w9WgXcQ", "duration": 1, "realStartOffset": 0,
                                          "realEndOffset": 1, "loudness": -14}),
    ("PUT", "/api/v1/catalog/override", {"videoId": "dQw4w9WgXcQ", "realStartOffset": 0, "realEndOffset": 1}),
    ("POST", "/api/v1/auth/magic-link", {"email": "a@example.com", "redirectUrl": "https://www.djamms.app/v"}),
    ("POST", "/api/v1/auth/verify", {"secret": "0" * 64, "userId": "u"}),
    ("POST", "/api/v1/venues", {"venueId": "v2", "name": "n"}),
    ("PUT", "/api/v1/users", {"email": "a@example.com", "role": "staff", "venueId": VENUE}),
    ("POST", f"/api/v1/venues/{VENUE}/requests/r-1/over-limit", {"deviceId": "box-a", "epoch": 1, "duration": 400}),
    # the staff console (issue 12)
    ("PATCH", f"/api/v1/venues/{VENUE}/queue/entries/e-1", {"position": 1}),
    ("POST", f"/api/v1/venues/{VENUE}/queue/next", {"videoId": "dQw4w9WgXcQ"}),
    ("POST", f"/api/v1/venues/{VENUE}/queue/next", {"song": SONG}),
    ("PATCH", f"/api/v1/venues/{VENUE}/playlists/pl-1", {"name": "n", "requestable": True}),
    ("PATCH", f"/api/v1/venues/{VENUE}/playlists/pl-1/tracks/1", {"videoId": "dQw4w9WgXcQ", "toPosition": 2}),
    ("POST", f"/api/v1/venues/{VENUE}/playlists/pl-1/tracks/import", {"text": "dQw4w9WgXcQ | a | t | 3:00"}),
    ("PATCH", f"/api/v1/venues/{VENUE}/rules", {"allowExplicit": False, "maxDurationS": 300, "artistLimit": 3,
                                                "timezone": "Europe/Paris"}),
    ("POST", f"/api/v1/venues/{VENUE}/marks", {"kind": "ban_artist", "value": "a"}),
    ("POST", f"/api/v1/venues/{VENUE}/schedule", {"playlistId": "pl-1", "weekday": 1, "start": "10:00",
                                                  "end": "11:00"}),
    ("POST", f"/api/v1/venues/{VENUE}/checkout", {"song": {"videoId": "dQw4w9WgXcQ"}, "requesterId": "patron-1"}),
    ("PUT", f"/api/v1/venues/{VENUE}/price", {"price": 0, "currency": "usd"}),
    ("POST", f"/api/v1/venues/{VENUE}/players/register",
     {"deviceId": "box-a", "version": "1.0", "problems": ["p"],
      "nowPlaying": {"entryId": "e-1", "videoId": "dQw4w9WgXcQ", "title": "t", "artist": "a", "position": 1.5,
                     "duration": 200}}),
    ("POST", "/api/v1/venues", {"venueId": "v3", "name": "n", "timezone": "Europe/Berlin"}),
    ("POST", f"/api/v1/venues/{VENUE}/players/release", {"deviceId": "box-a", "instanceId": "proc-1"}),
    ("POST", "/api/v1/pairings", {"deviceId": "box-new"}),
    ("POST", "/api/v1/pairings/collect", {"secret": "s" * 43}),
    ("POST", f"/api/v1/venues/{VENUE}/pairings", {"code": "ABC-DEF"}),
    # songs added by URL alone, described by the venue's box
    ("POST", f"/api/v1/venues/{VENUE}/playlists/pl-1/tracks", {"song": {"videoId": "dQw4w9WgXcQ"}}),
    ("POST", f"/api/v1/venues/{VENUE}/songs/details", {"videoId": "dQw4w9WgXcQ", "title": "t", "artist": "a",
                                                       "duration": 200}),
    ("PUT", f"/api/v1/venues/{VENUE}/playlists/pl-1/tracks/1/details", {"videoId": "dQw4w9WgXcQ", "title": "t",
                                                                        "artist": "a", "duration": 200}),
]
HOSTILE: list[Any] = [None, 0, -1, 2**70, 1.5, True, "", " ", "\x00", "💥" * 50, "x" * 5000, [], {}, [1, {"a": 2}]]
# Text no store can keep: a lone surrogate (sent as JSON "\ud800"; SQLite cannot encode it, PostgreSQL text
# cannot hold it) and NUL (PostgreSQL text cannot hold it). Alone or inside otherwise good text.
UNSTORABLE: list[str] = ["\ud800", "ok\udfffok", "\x00", "ok\x00ok"]


@pytest.mark.parametrize("value", [*HOSTILE, *UNSTORABLE, "x" * 70_000])
async def test_a_webhook_of_any_shape_without_a_valid_signature_is_a_400(hub: Hub, value: Any) -> None:
    """Whatever arrives at the provider's webhook, unsigned, is refused before it is read."""
    for body in (value, {"type": "checkout.session.completed", "data": {"object": value}}):
        status, answer = await hub.call("POST", "/api/v1/payments/stripe/webhook", body,
                                        {"Stripe-Signature": "t=1,v1=00"})
        assert 400 <= status < 500, (value, status, answer)


@pytest.mark.parametrize("execution_id", ["%00", "ok%00ok", "%ED%A0%80", "%F0%9F%92%A5" * 50, "x" * 5000, "..%2F..",
                                          "0123456789ABCDEF0123", "0123456789abcdef012", "' OR 1=1 --"])
async def test_a_hostile_execution_id_is_a_404(hub: Hub, execution_id: str) -> None:
    """Whatever id a token holder asks for, it reaches no store unless it is one the hub could have made."""
    await hub.venue(VENUE)
    for headers in (hub.admin(), hub.device(VENUE, "box-a"), {"X-Appwrite-JWT": hub.device_token(VENUE, "box-a")}):
        async with hub.http.get(f"{hub.url}/v1/functions/player-registry/executions/{execution_id}",
                                headers=headers) as resp:
            body = await resp.json(content_type=None)
            assert (resp.status, body["type"]) == (404, "execution_not_found"), (execution_id, body)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = []
    if isinstance(data, dict):
        for key, value in data.items():
            paths.append((*prefix, key))
            paths += _paths(value, (*prefix, key))
    return paths


def _replace(data: dict, path: tuple[Any, ...], value: Any) -> dict:
    out = copy.deepcopy(data)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(("method", "path", "template"), TEMPLATES, ids=[f"{m} {p}" for m, p, _ in TEMPLATES])
async def test_no_hostile_field_value_causes_a_5xx(hub: Hub, method: str, path: str, template: dict) -> None:
    await hub.venue(VENUE)
    # The most privileged tokens reach the deepest code paths.
    for headers in (hub.admin(), hub.device(VENUE, "box-a")):
        for field_path in _paths(template):
            for value in HOSTILE:
                status, body = await hub.call(method, path, _replace(template, field_path, value), headers)
                assert status < 500, (field_path, value, status, body)
                assert isinstance(body, dict)


def _text_paths(template: dict) -> list[tuple[Any, ...]]:
    paths = []
    for path in _paths(template):
        value: Any = template
        for key in path:
            value = value[key]
        if isinstance(value, str):
            paths.append(path)
    return paths


@pytest.mark.parametrize(("method", "path", "template"), TEMPLATES, ids=[f"{m} {p}" for m, p, _ in TEMPLATES])
async def test_unstorable_text_in_any_field_is_a_400_naming_it(hub: Hub, method: str, path: str,
                                                               template: dict) -> None:
    await hub.venue(VENUE)
    for field_path in _text_paths(template):
        for value in UNSTORABLE:
            status, body = await hub.call(method, path, _replace(template, field_path, value), hub.admin())
            assert (status, body["field"]) == (400, ".".join(field_path)), (value, body)


async def test_a_hub_bug_is_a_logged_500_that_leaks_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class BrokenStore(SqliteStore):
        async def queue_snapshot(self, venue_id: str) -> QueueSnapshot:
            raise RuntimeError("secret internals")

    store = BrokenStore(tmp_path / "hub.db")
    server = TestServer(create_app(hub_config(), store), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        await store.create_venue(VENUE, VENUE, 0)
        async with aiohttp.ClientSession() as http, http.get(server.make_url(f"/api/v1/venues/{VENUE}/queue")) as resp:
            assert resp.status == 500
            assert await resp.json() == {"error": "internal error", "field": None}
    finally:
        await server.close()
    assert "secret internals" in caplog.text and "Traceback" in caplog.text


async def test_an_idempotency_key_header_that_is_not_utf8_is_a_400(hub: Hub) -> None:
    await hub.venue(VENUE)
    await hub.call("POST", f"/api/v1/venues/{VENUE}/players/register", {"deviceId": "box-a"},
                   hub.device(VENUE, "box-a"))
    body = b'{"deviceId": "box-a", "epoch": 1, "song": {"videoId": "dQw4w9WgXcQ", "title": "t", "artist": "a",' \
           b' "duration": 200}}'
    token = hub.device_token(VENUE, "box-a").encode()
    host, port = hub.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:  # raw bytes: an HTTP client library would refuse to send this header
        writer.write(b"POST /api/v1/venues/" + VENUE.encode() + b"/played HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + token + b"\r\nIdempotency-Key: k\xff\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        answer = await reader.read()
    finally:
        writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert json.loads(payload)["field"] == "idempotencyKey"


INTERNAL_MEDIA_URLS = [
    "http://127.0.0.1:8080/api/status",  # the box's own status page
    "http://localhost/x.mp4",  # a name resolving inside
    "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
    "http://[::1]/x.mp4",
    "http://[::ffff:127.0.0.1]/x.mp4",
    "http://10.0.0.1/x.mp4",
    "http://192.168.1.1/x.mp4",  # the venue's router
    "http://[fd00::1]/x.mp4",
    "http://0.0.0.0/x.mp4",
]


async def test_media_urls_naming_internal_addresses_are_refused(start_hub: Any) -> None:
    """With media URLs allowed, a patron (or staff) still cannot point the boxes inside a network: 400 naming the
    field, and nothing queued. A public address passes; an internal host passes once allowed by name."""
    urls_allowed = RequestRulesConfig(allow_urls=True, allowed_hosts=("nas.lan", "192.168.1.20"))
    async with start_hub(config=hub_config(requests=urls_allowed)) as hub:
        await hub.venue(VENUE)
        playlist = (await hub.store.create_playlist(VENUE, "house", 0)).playlist_id
        for n, url in enumerate(INTERNAL_MEDIA_URLS):
            song = {**SONG, "videoId": url}
            status, body = await hub.call("POST", f"/api/v1/venues/{VENUE}/requests",
                                          {"song": song, "paymentId": f"p{n}"})
            assert (status, body["field"]) == (400, "song.videoId"), (url, body)
            assert "refused" in body["error"]
            status, body = await hub.call("POST", f"/api/v1/venues/{VENUE}/playlists/{playlist}/tracks",
                                          {"song": song}, hub.staff(VENUE))
            assert (status, body["field"]) == (400, "song.videoId"), (url, body)
        assert (await hub.store.queue_snapshot(VENUE)).priority == ()
        staff = hub.staff(VENUE)
        status, body = await hub.call("POST", f"/api/v1/venues/{VENUE}/queue/next",
                                      {"song": {**SONG, "videoId": "http://10.0.0.1/x.mp4"}}, staff)
        assert (status, body["field"]) == (400, "song.videoId"), body
        lines = "http://127.0.0.1:8080/x.mp4 | Band | Inside | 3:00\nhttp://93.184.216.34/y.mp4 | Band | Outside | 3:00"
        status, body = await hub.call("POST", f"/api/v1/venues/{VENUE}/playlists/{playlist}/tracks/import",
                                      {"text": lines}, staff)
        assert status == 201, body
        assert [song["title"] for song in body["added"]] == ["Outside"]
        assert [(p["line"], "refused" in p["error"]) for p in body["problems"]] == [(1, True)]
        for n, url in enumerate(["http://93.184.216.34/x.mp4", "http://192.168.1.20/x.mp4"]):
            status, body = await hub.call("POST", f"/api/v1/venues/{VENUE}/requests",
                                          {"song": {**SONG, "videoId": url}, "paymentId": f"ok{n}"})
            assert status == 201, (url, body)


HOSTILE_IDS = ["%00", "ok%00ok", "%ED%A0%80", "%F0%9F%92%A5" * 50, "x" * 5000, "..%2F..", "' OR 1=1 --", "user-nobody"]


async def test_a_venue_owners_team_calls_take_any_hostile_value_without_a_5xx(hub: Hub) -> None:
    """A venue's owner reaches code the admin does not (adding staff only where they are free to join; acting
    on staff of their venue only): every field and every user id an owner may send is a 4xx naming it."""
    await hub.venue(VENUE)
    await hub.store.upsert_user(User("owner-bad", "owner-bad@example.com", VENUE, "owner"), 0)
    owner = {"Authorization": f"Bearer {hub.user_token('owner', VENUE, 'owner-bad')}"}
    template = {"email": "a@example.com", "role": "staff", "venueId": VENUE}
    for field_path in _paths(template):
        for value in HOSTILE:
            status, body = await hub.call("PUT", "/api/v1/users", _replace(template, field_path, value), owner)
            assert status < 500 and (status == 200 or body["field"]), (field_path, value, status, body)
            assert status != 200 or body["venueId"] == VENUE  # a left-out venue is the owner's own
        for text in UNSTORABLE:
            status, body = await hub.call("PUT", "/api/v1/users", _replace(template, field_path, text), owner)
            assert (status, body["field"]) == (400, field_path[0]), (text, body)
    for user_id in HOSTILE_IDS:
        for method, tail in (("DELETE", ""), ("POST", "/sign-out")):
            status, body = await hub.call(method, f"/api/v1/users/{user_id}{tail}", headers=owner)
            assert (status, body["field"]) in ((400, "userId"), (404, "userId")), (user_id, status, body)
    assert (await hub.call("GET", "/api/v1/me", headers=owner))[0] == 200  # nothing of theirs changed
