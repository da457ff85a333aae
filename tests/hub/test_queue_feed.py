"""The venue queue on a real hub: epoch-fenced master writes, idempotency, the public view, the change feed."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp

from tests.hub.conftest import Hub, HubFactory
from tests.hub.test_registry import register
from tests.hub.test_requests import SONG, paid, request

TRACKS = [
    {"videoId": "aaaaaaaaaa1", "title": "One", "artist": "A", "duration": 200},
    {"videoId": "aaaaaaaaaa2", "title": "Two", "artist": "B", "duration": 100},
    {"videoId": "aaaaaaaaaa3", "title": "Three", "artist": "C", "duration": 150},
]


async def venue_with_playlist(hub: Hub) -> str:
    venue = await hub.venue()
    _, playlist = await hub.call("POST", f"/api/v1/venues/{venue}/playlists", {"name": "House"}, hub.staff(venue))
    for song in TRACKS:
        status, _ = await hub.call("POST", f"/api/v1/venues/{venue}/playlists/{playlist['playlistId']}/tracks",
                                   {"song": song}, hub.staff(venue))
        assert status == 201
    status, _ = await hub.call("PUT", f"/api/v1/venues/{venue}/active-playlist",
                               {"playlistId": playlist["playlistId"]}, hub.staff(venue))
    assert status == 200
    return venue


async def master_of(hub: Hub, venue: str, device: str = "box-a") -> int:
    _, body = await register(hub, venue, device)
    assert body["status"] == "registered"
    return int(body["epoch"])


async def advance(hub: Hub, venue: str, epoch: int, device: str = "box-a", **extra: Any) -> tuple[int, dict]:
    headers = hub.device(venue, device)
    if "key" in extra:
        headers["Idempotency-Key"] = extra.pop("key")
    return await hub.call("POST", f"/api/v1/venues/{venue}/queue/advance",
                          {"deviceId": device, "epoch": epoch, **extra}, headers)


async def snapshot(hub: Hub, venue: str) -> dict:
    return (await hub.call("GET", f"/api/v1/venues/{venue}/queue/full", headers=hub.staff(venue)))[1]


async def test_paid_requests_play_before_the_playlist_and_the_playlist_rotates(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    epoch = await master_of(hub, venue)
    await request(hub, venue, paid())
    played = []
    for _ in range(5):
        status, body = await advance(hub, venue, epoch)
        assert status == 200 and body["advanced"] is True
        played.append(body["nowPlaying"]["title"])
    assert played == ["Never Gonna Give You Up", "One", "Two", "Three", "One"]
    snap = await snapshot(hub, venue)
    assert [e["title"] for e in snap["mainQueue"]] == ["Two", "Three", "One"]
    assert snap["nowPlaying"]["deviceId"] == "box-a" and snap["nowPlaying"]["epoch"] == epoch


async def test_stale_epoch_is_refused_with_a_clear_error(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    old = await master_of(hub, venue, "box-a")
    hub.clock.advance(121)
    new = await master_of(hub, venue, "box-b")
    status, body = await advance(hub, venue, old, "box-a")
    assert status == 409
    assert body["error"] == "stale_epoch"
    assert body["currentEpoch"] == new and body["currentMaster"] == "box-b"
    assert "box-b" in body["message"]
    assert (await advance(hub, venue, new, "box-b"))[0] == 200
    # A device that never held the lease, with the right number, is still refused.
    assert (await advance(hub, venue, new, "box-c"))[0] == 409


async def test_a_released_master_can_no_longer_write(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    epoch = await master_of(hub, venue)
    await hub.call("POST", f"/api/v1/venues/{venue}/players/release", {"deviceId": "box-a"},
                   hub.device(venue, "box-a"))
    assert (await advance(hub, venue, epoch))[0] == 409


async def test_advance_naming_the_finished_entry_never_pops_twice(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    epoch = await master_of(hub, venue)
    _, first = await advance(hub, venue, epoch)
    playing = first["nowPlaying"]["entryId"]
    _, second = await advance(hub, venue, epoch, finishedEntryId=playing)
    _, resent = await advance(hub, venue, epoch, finishedEntryId=playing)
    assert second["advanced"] is True and resent["advanced"] is False
    assert resent["nowPlaying"]["entryId"] == second["nowPlaying"]["entryId"]


async def test_idempotency_key_replays_the_first_answer(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    epoch = await master_of(hub, venue)
    _, first = await advance(hub, venue, epoch, key="adv-1")
    version = (await snapshot(hub, venue))["version"]
    _, again = await advance(hub, venue, epoch, key="adv-1")
    assert again["replayed"] is True
    assert again["nowPlaying"] == first["nowPlaying"]
    assert (await snapshot(hub, venue))["version"] == version  # nothing changed


async def test_now_playing_and_played_reach_the_history(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    epoch = await master_of(hub, venue)
    await request(hub, venue, paid())
    snap = await snapshot(hub, venue)
    entry = snap["priorityQueue"][0]
    body = {"deviceId": "box-a", "epoch": epoch, "entryId": entry["entryId"]}
    status, now = await hub.call("POST", f"/api/v1/venues/{venue}/now-playing", body, hub.device(venue, "box-a"))
    assert status == 200 and now["nowPlaying"]["entryId"] == entry["entryId"]
    assert (await snapshot(hub, venue))["priorityQueue"] == []
    headers = {**hub.device(venue, "box-a"), "Idempotency-Key": "played-1"}
    for _ in range(2):  # an outbox resend
        status, _ = await hub.call("POST", f"/api/v1/venues/{venue}/played", body, headers)
        assert status == 200
    _, history = await hub.call("GET", f"/api/v1/venues/{venue}/history", headers=hub.staff(venue))
    assert [h["videoId"] for h in history["history"]] == [SONG["videoId"]]
    assert history["history"][0]["requestId"] == entry["requestId"]
    _, played = await hub.call("GET", f"/api/v1/venues/{venue}/requests?status=played", headers=hub.staff(venue))
    assert len(played["requests"]) == 1


async def test_played_from_an_old_lease_is_still_recorded(hub: Hub) -> None:
    """Played through an outage, lost the lease meanwhile: the history must still be complete."""
    venue = await venue_with_playlist(hub)
    old = await master_of(hub, venue, "box-a")
    hub.clock.advance(121)
    await master_of(hub, venue, "box-b")
    body = {"deviceId": "box-a", "epoch": old, "song": TRACKS[0], "playedAt": int(hub.clock() * 1000) - 60_000}
    headers = {**hub.device(venue, "box-a"), "Idempotency-Key": "offline-1"}
    assert (await hub.call("POST", f"/api/v1/venues/{venue}/played", body, headers))[0] == 200
    forged = {**body, "epoch": old + 1}  # an epoch box-a never held
    headers["Idempotency-Key"] = "offline-2"
    assert (await hub.call("POST", f"/api/v1/venues/{venue}/played", forged, headers))[0] == 409


async def test_public_queue_hides_requesters_and_estimates_start_times(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    epoch = await master_of(hub, venue)
    await hub.call("POST", "/api/v1/catalog/analysis",
                   {"videoId": "aaaaaaaaaa2", "duration": 100, "realStartOffset": 2, "realEndOffset": 92},
                   hub.device(venue, "box-a"))
    await hub.call("PUT", "/api/v1/catalog/override", {"videoId": "aaaaaaaaaa2", "realEndOffset": 62},
                   hub.staff(venue))
    await request(hub, venue, paid())
    await advance(hub, venue, epoch)  # the paid request is playing now
    status, view = await hub.call("GET", f"/api/v1/venues/{venue}/queue")
    assert status == 200
    text = str(view)
    assert "requesterId" not in text and "user-456" not in text and "requestId" not in text
    playing = view["nowPlaying"]
    assert playing["title"] == "Never Gonna Give You Up"
    assert playing["estimatedEndAt"] == playing["startedAt"] + 213_000
    starts = [e["estimatedStartAt"] for e in view["queue"]]
    assert [e["title"] for e in view["queue"]] == ["One", "Two", "Three"]
    assert view["queue"][1]["playDuration"] == 60.0  # analysis start 2 s, override end 62 s wins over 92 s
    assert starts[0] == playing["estimatedEndAt"]
    assert starts[1] - starts[0] == 200_000
    assert starts[2] - starts[1] == 60_000


async def test_catalog_is_shared_when_two_venues_agree_and_override_wins(hub: Hub) -> None:
    venue_a, venue_b, venue_c = await hub.venue(), await hub.venue(), await hub.venue()
    video = {"videoId": "bbbbbbbbbb1"}
    measured = {**video, "duration": 240, "realStartOffset": 0.4, "realEndOffset": 231.5, "loudness": -13.2}
    status, own = await hub.call("POST", "/api/v1/catalog/analysis", measured, hub.device(venue_a, "box-a"))
    assert status == 200 and (own["realEndOffset"], own["source"]) == (231.5, "analysis")  # venue A's own
    _, seen = await hub.call("GET", "/api/v1/catalog?videoId=bbbbbbbbbb1", headers=hub.device(venue_c, "box-z"))
    assert seen["tracks"][0]["realEndOffset"] is None  # one venue's say is not what others see ...
    await hub.call("POST", "/api/v1/catalog/analysis", {**measured, "realEndOffset": 231.8},
                   hub.device(venue_b, "box-b"))
    _, seen = await hub.call("GET", "/api/v1/catalog?videoId=bbbbbbbbbb1", headers=hub.device(venue_c, "box-z"))
    [track] = seen["tracks"]  # ... two venues' boxes agreeing is
    assert (track["realEndOffset"], track["loudness"], track["source"]) == (231.8, -13.2, "analysis")
    await hub.call("PUT", "/api/v1/catalog/override", {**video, "realStartOffset": 3, "realEndOffset": 220},
                   hub.admin())
    # A later analysis does not undo the override.
    await hub.call("POST", "/api/v1/catalog/analysis", {**measured, "realEndOffset": 232.0},
                   hub.device(venue_a, "box-a"))
    _, seen = await hub.call("GET", "/api/v1/catalog?videoId=bbbbbbbbbb1", headers=hub.device(venue_a, "box-a"))
    [track] = seen["tracks"]
    assert (track["realStartOffset"], track["realEndOffset"], track["source"]) == (3.0, 220.0, "override")
    assert track["analysis"]["realEndOffset"] == 232.0
    # Only devices report analysis; devices set no override.
    assert (await hub.call("POST", "/api/v1/catalog/analysis", video, hub.staff(venue_a)))[0] == 403
    assert (await hub.call("PUT", "/api/v1/catalog/override", video, hub.device(venue_a, "box-a")))[0] == 403


async def test_one_venues_box_cannot_change_what_other_venues_play(hub: Hub) -> None:
    """Issue 13: a device token of one venue rewrote the shared catalog every venue's estimates use."""
    venue_a, venue_b, rogue = await hub.venue(), await hub.venue(), await hub.venue()
    video = {"videoId": "bbbbbbbbbb3", "duration": 240, "realStartOffset": 0.4, "realEndOffset": 231.5}
    for venue, box in ((venue_a, "box-a"), (venue_b, "box-b")):
        await hub.call("POST", "/api/v1/catalog/analysis", video, hub.device(venue, box))
    lie = {**video, "realStartOffset": 200.0, "realEndOffset": 201.0}  # cut every venue's song to one second
    for _ in range(3):
        status, own = await hub.call("POST", "/api/v1/catalog/analysis", lie, hub.device(rogue, "box-r"))
        assert status == 200 and own["realEndOffset"] == 201.0  # the rogue venue sees its own, alone
    for venue, box in ((venue_a, "box-a"), (venue_b, "box-b")):
        _, seen = await hub.call("GET", "/api/v1/catalog?videoId=bbbbbbbbbb3", headers=hub.device(venue, box))
        assert (seen["tracks"][0]["realStartOffset"], seen["tracks"][0]["realEndOffset"]) == (0.4, 231.5)
    _, anyone = await hub.call("GET", "/api/v1/catalog?videoId=bbbbbbbbbb3")
    assert anyone["tracks"][0]["realEndOffset"] == 231.5


async def test_two_venues_agreeing_on_an_implausible_length_change_nothing_for_others(hub: Hub) -> None:
    """Issue 13 item 3: where the hub knows a track's length from a source it trusts (another venue's staff
    declared it on a playlist; an admin measured it), boxes' reports far from it stay with their venues,
    even when two venues agree; plausible ones are shared as before."""
    declaring, rogue_a, rogue_b, viewer = [await hub.venue() for _ in range(4)]
    _, playlist = await hub.call("POST", f"/api/v1/venues/{declaring}/playlists", {"name": "Bar"},
                                 hub.staff(declaring))
    status, _ = await hub.call("POST", f"/api/v1/venues/{declaring}/playlists/{playlist['playlistId']}/tracks/import",
                               {"text": "https://youtu.be/bbbbbbbbbb4 | Artist | Title | 3:33"}, hub.staff(declaring))
    assert status == 201

    async def shared(video_id: str) -> tuple[float | None, float | None]:
        _, seen = await hub.call("GET", f"/api/v1/catalog?videoId={video_id}", headers=hub.device(viewer, "box-v"))
        _, anyone = await hub.call("GET", f"/api/v1/catalog?videoId={video_id}")
        assert seen["tracks"] == anyone["tracks"]
        return seen["tracks"][0]["duration"], seen["tracks"][0]["realEndOffset"]

    cut = {"videoId": "bbbbbbbbbb4", "duration": 1.0, "realStartOffset": 0.0, "realEndOffset": 1.0}
    for venue in (rogue_a, rogue_b, rogue_a):
        status, own = await hub.call("POST", "/api/v1/catalog/analysis", cut, hub.device(venue, "box"))
        assert status == 200 and (own["duration"], own["realEndOffset"]) == (1.0, 1.0)  # kept for that venue
    assert await shared("bbbbbbbbbb4") == (None, None)
    _, errors = await hub.call("GET", f"/api/v1/venues/{rogue_a}/device-errors", headers=hub.staff(rogue_a))
    assert [(e["deviceId"], e["videoId"], e["message"]) for e in errors["errors"]] == [(
        "box", "bbbbbbbbbb4", "this box measured bbbbbbbbbb4 as 1 s long, 1 s between its cue points, but the hub "
        "knows it as 213 s: kept for this venue only. A broken or different download?")]  # once, however often
    measured = {"videoId": "bbbbbbbbbb4", "duration": 214.2, "realStartOffset": 0.5, "realEndOffset": 212.0}
    for venue in (rogue_a, rogue_b):  # their boxes measure it right now: near 3:33, and agreeing
        await hub.call("POST", "/api/v1/catalog/analysis", measured, hub.device(venue, "box"))
    assert await shared("bbbbbbbbbb4") == (214.2, 212.0)
    _, errors = await hub.call("GET", f"/api/v1/venues/{rogue_b}/device-errors", headers=hub.staff(rogue_b))
    assert len(errors["errors"]) == 1

    # No playlist names this one, but an admin measured it: two venues' 60-second version is theirs alone.
    await hub.call("POST", "/api/v1/catalog/analysis",
                   {"videoId": "bbbbbbbbbb5", "duration": 180.0, "realEndOffset": 178.0}, hub.admin())
    short = {"videoId": "bbbbbbbbbb5", "duration": 60.0, "realStartOffset": 0.0, "realEndOffset": 59.0}
    for venue in (rogue_a, rogue_b):
        await hub.call("POST", "/api/v1/catalog/analysis", short, hub.device(venue, "box"))
    assert await shared("bbbbbbbbbb5") == (180.0, 178.0)


async def test_two_venues_reporting_the_same_videos_at_once_still_agree(hub: Hub) -> None:
    """On PostgreSQL (read committed) two venues' reports of a known video at the same moment each missed the
    other's and neither was shared; one report of a video at a time now."""
    a, b, other, viewer = [await hub.venue() for _ in range(4)]
    videos = [f"cccccccc{i:03d}" for i in range(150)]
    for video in videos:  # the catalog knows each video already (a third venue's own, different measurement)
        await hub.call("POST", "/api/v1/catalog/analysis", {"videoId": video, "duration": 100},
                       hub.device(other, "box"))
    await asyncio.gather(*(hub.call("POST", "/api/v1/catalog/analysis",
                                    {"videoId": video, "duration": 200, "realEndOffset": 198}, hub.device(venue, "box"))
                           for video in videos for venue in (a, b)))
    _, seen = await hub.call("GET", "/api/v1/catalog?" + "&".join(f"videoId={v}" for v in videos),
                             headers=hub.device(viewer, "box"))
    assert [t["duration"] for t in seen["tracks"]] == [200.0] * len(videos)


async def test_staff_override_cue_points_for_their_own_venue_only(hub: Hub) -> None:
    venue_a, venue_b = await hub.venue(), await hub.venue()
    video = {"videoId": "bbbbbbbbbb2"}
    await hub.call("POST", "/api/v1/catalog/analysis", {**video, "duration": 240, "realStartOffset": 0.4,
                                                        "realEndOffset": 231.5}, hub.admin())  # shared
    status, track = await hub.call("PUT", "/api/v1/catalog/override", {**video, "realEndOffset": 200},
                                   hub.staff(venue_a))
    assert status == 200 and (track["realEndOffset"], track["source"]) == (200.0, "venue_override")

    async def seen_by(headers: dict[str, str], query: str = "") -> tuple[float, float, str]:
        _, body = await hub.call("GET", f"/api/v1/catalog?videoId=bbbbbbbbbb2{query}", headers=headers)
        [track] = body["tracks"]
        return track["realStartOffset"], track["realEndOffset"], track["source"]

    # venue A's boxes play their staff's cue-out; venue B and the anonymous view keep the analysis.
    assert await seen_by(hub.device(venue_a, "box-a")) == (0.4, 200.0, "venue_override")
    assert await seen_by(hub.device(venue_b, "box-b")) == (0.4, 231.5, "analysis")
    assert await seen_by({}) == (0.4, 231.5, "analysis")
    assert await seen_by({}, f"&venueId={venue_a}") == (0.4, 200.0, "venue_override")
    # Staff cannot write another venue's, nor the global one by naming no venue.
    other = {**video, "venueId": venue_b, "realEndOffset": 10}
    assert (await hub.call("PUT", "/api/v1/catalog/override", other, hub.staff(venue_a)))[0] == 403
    assert await seen_by(hub.device(venue_b, "box-b")) == (0.4, 231.5, "analysis")
    # A global (admin) override reaches venue B; venue A's own still wins, field by field.
    await hub.call("PUT", "/api/v1/catalog/override", {**video, "realStartOffset": 2, "realEndOffset": 225},
                   hub.admin())
    assert await seen_by(hub.device(venue_b, "box-b")) == (2.0, 225.0, "override")
    assert await seen_by(hub.device(venue_a, "box-a")) == (2.0, 200.0, "venue_override")
    # Clearing venue A's override (both offsets null) leaves it the global one.
    status, _ = await hub.call("PUT", "/api/v1/catalog/override", video, hub.staff(venue_a))
    assert status == 200
    assert await seen_by(hub.device(venue_a, "box-a")) == (2.0, 225.0, "override")
    # An admin may set a venue's on its behalf; an unknown venue is a 404, not a 500.
    await hub.call("PUT", "/api/v1/catalog/override", {**video, "venueId": venue_b, "realEndOffset": 180},
                   hub.admin())
    assert await seen_by(hub.device(venue_b, "box-b")) == (2.0, 180.0, "venue_override")
    missing = {**video, "venueId": "no-such-venue", "realEndOffset": 1}
    assert (await hub.call("PUT", "/api/v1/catalog/override", missing, hub.admin()))[0] == 404


async def test_add_song_to_active_playlist_joins_the_rotation(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    _, lists = await hub.call("GET", f"/api/v1/venues/{venue}/playlists", headers=hub.device(venue, "box-a"))
    playlist_id = lists["playlists"][0]["playlistId"]
    song = {"videoId": "aaaaaaaaaa4", "title": "Four", "artist": "D", "duration": 180}
    status, body = await hub.call("POST", f"/api/v1/venues/{venue}/playlists/{playlist_id}/tracks",
                                  {"song": song}, hub.staff(venue))
    assert status == 201 and body["success"] is True and body["realEndOffset"] == 180
    assert [e["title"] for e in (await snapshot(hub, venue))["mainQueue"]][-1] == "Four"


# --- the change feed ---------------------------------------------------------------------------


async def next_message(ws: aiohttp.ClientWebSocketResponse) -> dict:
    return await asyncio.wait_for(ws.receive_json(), timeout=5)


async def open_feed(hub: Hub, venue: str, since: int, device: str = "box-a") -> aiohttp.ClientWebSocketResponse:
    return await hub.http.ws_connect(f"{hub.url}/api/v1/venues/{venue}/feed?since={since}",
                                     headers=hub.device(venue, device))


async def test_feed_pushes_a_request_as_it_commits(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    version = (await snapshot(hub, venue))["version"]
    ws = await open_feed(hub, venue, version)
    try:
        assert await next_message(ws) == {"type": "ready", "version": version}
        await request(hub, venue, paid())
        message = await next_message(ws)
        assert message["type"] == "change" and message["version"] == version + 1
        assert message["change"]["type"] == "entry_added"
        assert message["change"]["entry"]["queue"] == "priority"
    finally:
        await ws.close()


async def test_feed_resumes_from_a_version_with_every_missed_change(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    epoch = await master_of(hub, venue)
    since = (await snapshot(hub, venue))["version"]
    await request(hub, venue, paid())
    await advance(hub, venue, epoch)
    current = (await snapshot(hub, venue))["version"]
    ws = await open_feed(hub, venue, since)
    try:
        messages = [await next_message(ws) for _ in range(current - since + 1)]
    finally:
        await ws.close()
    assert [m["version"] for m in messages] == [*range(since + 1, current + 1), current]
    assert messages[-1]["type"] == "ready"
    types = [m["change"]["type"] for m in messages[:-1]]
    assert types == ["entry_added", "entry_removed", "now_playing"]


async def test_feed_sends_a_snapshot_when_too_far_behind(start_hub: HubFactory) -> None:
    async with start_hub(retain_changes=5) as hub:
        venue = await hub.venue()
        for i in range(101):  # pruning happens every 100 versions
            await request(hub, venue, paid({**SONG, "artist": f"artist {i}"}))
        ws = await open_feed(hub, venue, 1)
        try:
            message = await next_message(ws)
            assert message["type"] == "snapshot" and message["version"] == 101
            assert len(message["queue"]["priorityQueue"]) == 101
            assert await next_message(ws) == {"type": "ready", "version": 101}
        finally:
            await ws.close()
        # A version from the future (the hub's database was replaced) also gets a snapshot.
        _, polled = await hub.call("GET", f"/api/v1/venues/{venue}/changes?since=999", headers=hub.staff(venue))
        assert polled["messages"][0]["type"] == "snapshot"


async def test_feed_announces_master_changes(hub: Hub) -> None:
    venue = await hub.venue()
    ws = await open_feed(hub, venue, 0)
    try:
        await next_message(ws)  # ready
        await register(hub, venue, "box-a")
        assert (await next_message(ws))["change"] == {"type": "master", "master": {"deviceId": "box-a", "epoch": 1}}
        await hub.call("POST", f"/api/v1/venues/{venue}/players/release", {"deviceId": "box-a"},
                       hub.device(venue, "box-a"))
        assert (await next_message(ws))["change"] == {"type": "master", "master": None}
    finally:
        await ws.close()


async def test_poll_fallback_returns_the_same_changes(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    since = (await snapshot(hub, venue))["version"]
    await request(hub, venue, paid())
    _, polled = await hub.call("GET", f"/api/v1/venues/{venue}/changes?since={since}", headers=hub.device(venue, "x"))
    assert polled["version"] == since + 1
    assert [m["change"]["type"] for m in polled["messages"]] == ["entry_added"]


async def test_feed_needs_a_member_of_the_venue(hub: Hub) -> None:
    venue, other = await hub.venue(), await hub.venue()
    for headers in ({}, hub.device(other, "box-a")):
        try:
            await hub.http.ws_connect(f"{hub.url}/api/v1/venues/{venue}/feed", headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status in (401, 403)
        else:
            raise AssertionError("feed opened without a venue token")


async def test_many_feed_subscribers_all_see_each_change(hub: Hub) -> None:
    venue = await hub.venue()
    # Ten boxes (one token holds only hub.connections.feed_sockets_per_token sockets).
    sockets = [await open_feed(hub, venue, 0, f"box-{n}") for n in range(10)]
    try:
        for ws in sockets:
            await next_message(ws)
        await request(hub, venue, paid({**SONG, "title": uuid.uuid4().hex}))
        changes = [await next_message(ws) for ws in sockets]
        assert {m["version"] for m in changes} == {1}
    finally:
        for ws in sockets:
            await ws.close()


async def test_moving_on_marks_the_paid_request_played(hub: Hub) -> None:
    venue = await venue_with_playlist(hub)
    epoch = await master_of(hub, venue)
    await request(hub, venue, paid())
    entry = (await snapshot(hub, venue))["priorityQueue"][0]
    main = (await snapshot(hub, venue))["mainQueue"][0]
    for entry_id in (entry["entryId"], main["entryId"]):
        await hub.call("POST", f"/api/v1/venues/{venue}/now-playing",
                       {"deviceId": "box-a", "epoch": epoch, "entryId": entry_id}, hub.device(venue, "box-a"))
    _, played = await hub.call("GET", f"/api/v1/venues/{venue}/requests?status=played", headers=hub.staff(venue))
    assert [r["requestId"] for r in played["requests"]] == [entry["requestId"]]
