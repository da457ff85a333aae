"""The staff console's REST endpoints (issue 12) on both stores: what staff do, what the feed carries,
and who may do it (staff of venue A never touch venue B)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from djamms_edge.hub.config import ScheduleConfig
from djamms_edge.hub.store.base import Song
from tests.edge.sync.hubs import eventually
from tests.hub.conftest import Hub, HubFactory, hub_config

V = "/api/v1/venues/"
IDS = ["aaaaaaaaaa1", "bbbbbbbbbb2", "ccccccccccc", "ddddddddddd"]


def song(i: int, artist: str = "Artist") -> dict[str, Any]:
    return {"videoId": IDS[i], "title": f"Song {i}", "artist": f"{artist} {i}", "duration": 180}


async def playlist(hub: Hub, venue: str, n: int = 3, *, active: bool = True) -> str:
    status, body = await hub.call("POST", f"{V}{venue}/playlists", {"name": "Evening"}, hub.staff(venue))
    assert status == 201
    pid = body["playlistId"]
    for i in range(n):
        status, _ = await hub.call("POST", f"{V}{venue}/playlists/{pid}/tracks", {"song": song(i)}, hub.staff(venue))
        assert status == 201
    if active:
        status, _ = await hub.call("PUT", f"{V}{venue}/active-playlist", {"playlistId": pid}, hub.staff(venue))
        assert status == 200
    return pid


async def changes(hub: Hub, venue: str, since: int) -> list[dict[str, Any]]:
    status, body = await hub.call("GET", f"{V}{venue}/changes?since={since}", headers=hub.staff(venue))
    assert status == 200
    return [m["change"] for m in body["messages"]]


async def version(hub: Hub, venue: str) -> int:
    return (await hub.store.queue_snapshot(venue)).version


async def test_playlist_rename_requestable_tracks_and_delete(hub: Hub) -> None:
    venue = await hub.venue()
    pid = await playlist(hub, venue, active=False)
    staff = hub.staff(venue)
    status, body = await hub.call("PATCH", f"{V}{venue}/playlists/{pid}", {"name": " Late ", "requestable": True},
                                  staff)
    assert status == 200 and body["name"] == "Late" and body["requestable"] is True
    status, body = await hub.call("PATCH", f"{V}{venue}/playlists/{pid}/tracks/1",
                                  {"videoId": IDS[0], "toPosition": 3}, staff)
    assert status == 200
    assert [t["videoId"] for t in body["tracks"]] == [IDS[1], IDS[2], IDS[0]]
    # A stale view (track 1 is no longer IDS[0]) is refused, never applied blindly.
    status, body = await hub.call("DELETE", f"{V}{venue}/playlists/{pid}/tracks/1?videoId={IDS[0]}", headers=staff)
    assert status == 409, body
    status, body = await hub.call("DELETE", f"{V}{venue}/playlists/{pid}/tracks/1?videoId={IDS[1]}", headers=staff)
    assert status == 200 and [t["videoId"] for t in body["tracks"]] == [IDS[2], IDS[0]]
    status, _ = await hub.call("DELETE", f"{V}{venue}/playlists/{pid}", headers=staff)
    assert status == 200
    status, _ = await hub.call("GET", f"{V}{venue}/playlists/{pid}", headers=staff)
    assert status == 404


async def test_the_active_playlist_cannot_be_deleted_and_its_track_removal_reaches_the_queue(hub: Hub) -> None:
    venue = await hub.venue()
    pid = await playlist(hub, venue)
    staff = hub.staff(venue)
    status, body = await hub.call("DELETE", f"{V}{venue}/playlists/{pid}", headers=staff)
    assert status == 409 and "activate another" in body["error"]
    before = await version(hub, venue)
    status, _ = await hub.call("DELETE", f"{V}{venue}/playlists/{pid}/tracks/2?videoId={IDS[1]}", headers=staff)
    assert status == 200
    snap = await hub.store.queue_snapshot(venue)
    assert [e.song.video_id for e in snap.main] == [IDS[0], IDS[2]]
    assert [c["type"] for c in await changes(hub, venue, before)] == ["entry_removed"]


async def test_import_fills_known_songs_and_names_the_lines_it_cannot(hub: Hub) -> None:
    venue = await hub.venue()
    pid = await playlist(hub, venue, n=1, active=False)
    other = await playlist(hub, venue, n=0, active=False)
    text = "\n".join([
        "# from the old jukebox",
        f"https://www.youtube.com/watch?v={IDS[0]}",  # known: the first playlist has it
        f"https://youtu.be/{IDS[3]} | New Artist | New Song | 3:05",
        IDS[2],  # never seen: added with its details pending (the venue's box describes it)
        "https://example.com/not-youtube",
    ])
    status, body = await hub.call("POST", f"{V}{venue}/playlists/{other}/tracks/import", {"text": text},
                                  hub.staff(venue))
    assert status == 201, body
    assert body["added"] == [song(0), {"videoId": IDS[3], "title": "New Song", "artist": "New Artist",
                                       "duration": 185.0},
                             {"videoId": IDS[2], "title": "", "artist": "", "duration": 0.0, "detailsPending": True}]
    assert [(p["line"], "YouTube" in p["error"]) for p in body["problems"]] == [(5, True)]
    assert pid != other


async def test_remove_reorder_skip_and_play_next(hub: Hub) -> None:
    venue = await hub.venue()
    await playlist(hub, venue)
    staff = hub.staff(venue)
    main = (await hub.store.queue_snapshot(venue)).main
    before = await version(hub, venue)
    status, body = await hub.call("PATCH", f"{V}{venue}/queue/entries/{main[2].entry_id}", {"position": 1}, staff)
    assert status == 200
    assert [e["videoId"] for e in body["mainQueue"]] == [IDS[2], IDS[0], IDS[1]]
    status, body = await hub.call("DELETE", f"{V}{venue}/queue/entries/{main[0].entry_id}", headers=staff)
    assert status == 200 and body["refund"] is None
    status, body = await hub.call("POST", f"{V}{venue}/queue/next", {"videoId": f"https://youtu.be/{IDS[1]}"}, staff)
    assert status == 201 and body["queue"] == "priority" and body["paidCredit"] == 0
    kinds = [(c["type"], c.get("at")) for c in await changes(hub, venue, before)]
    assert kinds == [("main_replaced", None), ("entry_removed", None), ("entry_added", "head")]
    # Nothing playing: nothing to skip.
    status, body = await hub.call("POST", f"{V}{venue}/skip", {}, staff)
    assert status == 404
    device = hub.device(venue, "box-1")
    status, _ = await hub.call("POST", f"{V}{venue}/players/register", {"deviceId": "box-1"}, device)
    assert status == 200
    status, body = await hub.call("POST", f"{V}{venue}/queue/advance", {"deviceId": "box-1", "epoch": 1}, device)
    assert status == 200
    playing = body["nowPlaying"]["entryId"]
    status, body = await hub.call("POST", f"{V}{venue}/skip", {}, staff)
    assert status == 200 and body["type"] == "skip" and body["entryId"] == playing
    assert (await changes(hub, venue, body["version"] - 1))[0]["entryId"] == playing


async def test_play_next_goes_before_waiting_paid_requests(hub: Hub) -> None:
    venue = await hub.venue()
    await playlist(hub, venue)
    status, _ = await hub.call("POST", f"{V}{venue}/requests", {"song": song(3), "paymentId": "pay-1"})
    assert status == 201
    status, _ = await hub.call("POST", f"{V}{venue}/queue/next", {"song": song(0)}, hub.staff(venue))
    assert status == 201
    assert [e.song.video_id for e in (await hub.store.queue_snapshot(venue)).priority] == [IDS[0], IDS[3]]


async def test_bans_and_explicit_flag_refuse_requests_and_reach_the_feed(hub: Hub) -> None:
    venue = await hub.venue()
    staff = hub.staff(venue)
    before = await version(hub, venue)
    status, rules = await hub.call("POST", f"{V}{venue}/marks", {"kind": "ban_artist", "value": "  BANNED  band "},
                                   staff)
    assert status == 201 and rules["marks"][0]["value"] == "BANNED  band"
    status, rules = await hub.call("POST", f"{V}{venue}/marks", {"kind": "explicit", "value": IDS[1]}, staff)
    assert status == 201
    status, body = await hub.call("POST", f"{V}{venue}/requests",
                                  {"song": {**song(0), "artist": "banned BAND"}, "paymentId": "p-ban"})
    assert status == 422 and body["status"] == "refund_due" and "not played" in body["error"]
    # Explicit songs are allowed until staff switch them off.
    status, _ = await hub.call("POST", f"{V}{venue}/requests", {"song": song(1), "paymentId": "p-ex1"})
    assert status == 201
    status, rules = await hub.call("PATCH", f"{V}{venue}/rules", {"allowExplicit": False}, staff)
    assert status == 200 and rules["allowExplicit"] is False
    status, _ = await hub.call("POST", f"{V}{venue}/requests", {"song": song(1), "paymentId": "p-ex2"})
    assert status == 422
    feed = [c for c in await changes(hub, venue, before) if c["type"] == "rules"]
    assert len(feed) == 3 and feed[-1]["rules"]["allowExplicit"] is False
    snapshot = (await hub.store.queue_snapshot(venue)).to_json()
    assert {m["kind"] for m in snapshot["rules"]["marks"]} == {"ban_artist", "explicit"}
    mark = next(m for m in rules["marks"] if m["kind"] == "ban_artist")
    status, rules = await hub.call("DELETE", f"{V}{venue}/marks/{mark['markId']}", headers=staff)
    assert status == 200 and [m["kind"] for m in rules["marks"]] == ["explicit"]
    status, _ = await hub.call("POST", f"{V}{venue}/requests",
                               {"song": {**song(2), "artist": "Banned Band"}, "paymentId": "p-ok"})
    assert status == 201


async def test_venue_request_limits_win_over_the_hub_defaults(hub: Hub) -> None:
    venue = await hub.venue()
    status, rules = await hub.call("PATCH", f"{V}{venue}/rules", {"maxDurationS": 120, "artistLimit": 1},
                                   hub.staff(venue))
    assert status == 200 and (rules["maxDurationS"], rules["artistLimit"]) == (120, 1)
    status, body = await hub.call("POST", f"{V}{venue}/requests", {"song": song(0), "paymentId": "long"})
    assert status == 422 and "2 minutes" in body["error"]
    ok = {**song(1), "duration": 100}
    status, _ = await hub.call("POST", f"{V}{venue}/requests", {"song": ok, "paymentId": "one"})
    assert status == 201
    status, body = await hub.call("POST", f"{V}{venue}/requests", {"song": ok, "paymentId": "two"})
    assert status == 422 and "artist" in body["error"]


async def test_schedule_switches_the_playlist_once_per_window(start_hub: HubFactory) -> None:
    async with start_hub(config=hub_config(schedule=ScheduleConfig(check_interval_s=0.05))) as hub:
        venue = await hub.venue()
        staff = hub.staff(venue)
        day = await playlist(hub, venue, n=1)
        night = await playlist(hub, venue, n=2, active=False)
        status, _ = await hub.call("PATCH", f"{V}{venue}/rules", {"timezone": "Asia/Tokyo"}, staff)
        assert status == 200
        # The hub's clock jumps to 21:59:30 Tokyo time on a Wednesday; the window opens at 22:00.
        target = datetime(2031, 1, 8, 12, 59, 30, tzinfo=UTC)
        hub.clock.offset = target.timestamp() - datetime.now(UTC).timestamp()
        status, slot = await hub.call("POST", f"{V}{venue}/schedule",
                                      {"playlistId": night, "weekday": 2, "start": "22:00", "end": "24:00"}, staff)
        assert status == 201, slot
        await asyncio.sleep(0.3)
        assert await active(hub, venue) == day
        hub.clock.advance(60)
        await wait_for_active(hub, venue, night)
        # Staff choose another list inside the window: the schedule does not fight them.
        status, _ = await hub.call("PUT", f"{V}{venue}/active-playlist", {"playlistId": day}, staff)
        await asyncio.sleep(0.3)
        assert await active(hub, venue) == day
        status, body = await hub.call("GET", f"{V}{venue}/schedule", headers=staff)
        assert body["appliedSlotId"] == slot["slotId"] and body["timezone"] == "Asia/Tokyo"
        status, _ = await hub.call("DELETE", f"{V}{venue}/playlists/{night}", headers=staff)
        assert status == 200
        status, body = await hub.call("GET", f"{V}{venue}/schedule", headers=staff)
        assert body["slots"] == []


async def active(hub: Hub, venue: str) -> str | None:
    found = await hub.store.get_venue(venue)
    return None if found is None else found.active_playlist_id


async def wait_for_active(hub: Hub, venue: str, playlist_id: str) -> None:
    async def switched() -> bool:
        return await active(hub, venue) == playlist_id

    await eventually(switched)


async def test_known_songs_come_from_playlists_and_requests(hub: Hub) -> None:
    venue = await hub.venue()
    await playlist(hub, venue, n=1, active=False)
    await hub.call("POST", f"{V}{venue}/requests", {"song": song(3), "paymentId": "p-k"})
    known = await hub.store.known_songs([IDS[0], IDS[3], IDS[2]])
    assert known == {IDS[0]: Song(IDS[0], "Song 0", "Artist 0", 180.0),
                     IDS[3]: Song(IDS[3], "Song 3", "Artist 3", 180.0)}


def console_writes(venue: str) -> list[tuple[str, str, Any]]:
    """Every console write, aimed at ``venue`` (the ids need not exist: the role check comes first)."""
    pl = f"{V}{venue}/playlists/pl-x"
    return [
        ("DELETE", f"{V}{venue}/queue/entries/e-x", None),
        ("PATCH", f"{V}{venue}/queue/entries/e-x", {"position": 1}),
        ("POST", f"{V}{venue}/skip", {}),
        ("POST", f"{V}{venue}/queue/next", {"song": song(0)}),
        ("PATCH", pl, {"name": "x"}),
        ("DELETE", pl, None),
        ("DELETE", f"{pl}/tracks/1?videoId={IDS[0]}", None),
        ("PATCH", f"{pl}/tracks/1", {"videoId": IDS[0], "toPosition": 2}),
        ("POST", f"{pl}/tracks/import", {"text": IDS[0]}),
        ("GET", f"{V}{venue}/rules", None),
        ("PATCH", f"{V}{venue}/rules", {"allowExplicit": False}),
        ("POST", f"{V}{venue}/marks", {"kind": "ban_video", "value": IDS[0]}),
        ("DELETE", f"{V}{venue}/marks/mk-x", None),
        ("GET", f"{V}{venue}/schedule", None),
        ("POST", f"{V}{venue}/schedule", {"playlistId": "pl-x", "weekday": 0, "start": "10:00", "end": "11:00"}),
        ("DELETE", f"{V}{venue}/schedule/slot-x", None),
    ]


@pytest.mark.parametrize("case", range(len(console_writes("x"))))
async def test_staff_of_one_venue_cannot_touch_another(hub: Hub, case: int) -> None:
    mine, theirs = await hub.venue(), await hub.venue()
    method, path, body = console_writes(theirs)[case]
    before = await version(hub, theirs)
    for headers, expected in ((hub.staff(mine), 403), (hub.device(theirs, "box-1"), 403), ({}, 401)):
        status, answer = await hub.call(method, path, body, headers)
        assert status == expected, (method, path, status, answer)
    assert await version(hub, theirs) == before
