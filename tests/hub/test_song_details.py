"""Songs added by URL alone: pending until the venue's box describes them (both stores, a real hub on loopback).

What staff notice: a URL alone is accepted and shown as pending; once their box reports what it fetched, the
playlist, the queue and the patrons' search show artist, title and length. What an attacker gets: nothing
beyond their own venue (a box of venue A never changes what venue B sees), and no hostile text."""

from __future__ import annotations

from typing import Any

from tests.hub.conftest import Hub

V = "/api/v1/venues/"
VID = "dQw4w9WgXcQ"
TYPED = {"videoId": "aaaaaaaaaa1", "title": "Typed Song", "artist": "Typed Artist", "duration": 200}


async def new_playlist(hub: Hub, venue: str, *songs: dict[str, Any], requestable: bool = False) -> str:
    staff = hub.staff(venue)
    status, body = await hub.call("POST", f"{V}{venue}/playlists", {"name": "Tonight"}, staff)
    assert status == 201, body
    pid = str(body["playlistId"])
    for song in songs:
        status, body = await hub.call("POST", f"{V}{venue}/playlists/{pid}/tracks", {"song": song}, staff)
        assert status == 201, body
    if requestable:
        status, body = await hub.call("PATCH", f"{V}{venue}/playlists/{pid}", {"requestable": True}, staff)
        assert status == 200, body
    return pid


async def tracks(hub: Hub, venue: str, pid: str) -> list[dict[str, Any]]:
    status, body = await hub.call("GET", f"{V}{venue}/playlists/{pid}", headers=hub.staff(venue))
    assert status == 200, body
    return list(body["tracks"])


def details(**fields: Any) -> dict[str, Any]:
    return {"videoId": VID, "title": "Never Gonna Give You Up", "artist": "Rick Astley", "duration": 212.5, **fields}


async def describe(hub: Hub, venue: str, body: dict[str, Any], device_venue: str | None = None) -> tuple[int, Any]:
    headers = hub.device(device_venue or venue, "box-1")
    return await hub.call("POST", f"{V}{venue}/songs/details", body, headers)


async def test_a_url_alone_is_pending_until_the_box_describes_it(hub: Hub) -> None:
    venue = await hub.venue()
    staff = hub.staff(venue)
    status, body = await hub.call("POST", f"{V}{venue}/playlists", {"name": "Tonight"}, staff)
    pid = body["playlistId"]
    status, body = await hub.call("POST", f"{V}{venue}/playlists/{pid}/tracks",
                                  {"song": {"videoId": VID}}, staff)
    assert status == 201, body
    assert body["song"] == {"videoId": VID, "title": "", "artist": "", "duration": 0.0, "detailsPending": True}
    assert body["realEndOffset"] is None
    await hub.call("POST", f"{V}{venue}/playlists/{pid}/tracks", {"song": TYPED}, staff)
    status, _ = await hub.call("PUT", f"{V}{venue}/active-playlist", {"playlistId": pid}, staff)
    assert status == 200
    before = (await hub.store.queue_snapshot(venue)).version
    assert (await hub.store.queue_snapshot(venue)).main[0].song.pending
    async with hub.http.get(f"{hub.url}/v/{venue}") as page:  # patrons see a queued pending song unnamed
        html = await page.text()
        assert page.status == 200 and "A song from the venue&#39;s playlist" in html and "Typed Song" in html

    status, body = await describe(hub, venue, details())
    assert status == 200, body
    assert body == {"videoId": VID, "filled": 2}  # the playlist's track and the queued entry
    first, second = await tracks(hub, venue, pid)
    assert first == {"videoId": VID, "title": "Never Gonna Give You Up", "artist": "Rick Astley",
                     "duration": 212.5, "detailsFrom": "box"}
    assert second == TYPED  # untouched
    snap = await hub.store.queue_snapshot(venue)
    assert snap.main[0].song.title == "Never Gonna Give You Up"
    status, body = await hub.call("GET", f"{V}{venue}/changes?since={before}", headers=staff)
    change = body["messages"][-1]["change"]
    assert change["type"] == "main_replaced" and change["entries"][0]["artist"] == "Rick Astley"
    # Told again (an outbox resend, another box): nothing is pending any more, nothing changes.
    status, body = await describe(hub, venue, details(title="Something Else"))
    assert status == 200 and body["filled"] == 0
    assert (await tracks(hub, venue, pid))[0]["title"] == "Never Gonna Give You Up"


async def test_details_staff_typed_always_win(hub: Hub) -> None:
    venue = await hub.venue()
    typed = {**TYPED, "videoId": VID}
    pid = await new_playlist(hub, venue, typed)
    status, body = await describe(hub, venue, details())
    assert status == 200 and body["filled"] == 0
    assert (await tracks(hub, venue, pid)) == [typed]
    # Added by URL alone at the same venue now: the hub knows what staff typed, nothing is pending.
    other = await new_playlist(hub, venue, {"videoId": VID})
    assert (await tracks(hub, venue, other)) == [typed]


async def test_a_box_describes_songs_for_its_own_venue_only(hub: Hub) -> None:
    a, b = await hub.venue(), await hub.venue()
    pid_a = await new_playlist(hub, a, {"videoId": VID})
    pid_b = await new_playlist(hub, b, {"videoId": VID})
    # A's device token naming venue B: refused; B's song stays pending.
    status, body = await describe(hub, b, details(), device_venue=a)
    assert status == 403, body
    status, body = await describe(hub, a, details())
    assert status == 200 and body["filled"] == 1
    assert (await tracks(hub, a, pid_a))[0]["artist"] == "Rick Astley"
    assert (await tracks(hub, b, pid_b))[0]["detailsPending"] is True
    # Added by URL at B afterwards: A's box's words are not B's; at A they are.
    later_b = await new_playlist(hub, b, {"videoId": VID})
    assert (await tracks(hub, b, later_b))[0]["detailsPending"] is True
    later_a = await new_playlist(hub, a, {"videoId": VID})
    assert (await tracks(hub, a, later_a))[0]["title"] == "Never Gonna Give You Up"
    # ...and a box's length is never a staff-declared one the catalog's trust rule leans on.
    assert await hub.store.known_durations(VID) == []
    # Staff and admins type details; they do not speak for a box.
    for headers in (hub.staff(a), hub.admin()):
        status, body = await hub.call("POST", f"{V}{a}/songs/details", details(), headers)
        assert status == 403, body


async def test_hostile_text_is_cleaned_or_refused(hub: Hub) -> None:
    venue = await hub.venue()
    pid = await new_playlist(hub, venue, {"videoId": VID})
    for body in (details(title="x" * 1001), details(artist="\u202e\u200b \x07"), details(duration=0),
                 details(duration=10 ** 9), details(title=7), details(videoId="../etc")):
        status, answer = await describe(hub, venue, body)
        assert status == 400, (body, answer)
    assert (await tracks(hub, venue, pid))[0]["detailsPending"] is True
    status, answer = await describe(hub, venue, details(
        title="Never\x00 Gonna", artist="\u202eyeltsA kciR\u202c\r\n\tEvil  " + "e" * 500))
    assert status == 400  # NUL: never stored
    status, answer = await describe(hub, venue, details(
        title="Never\x1b[31m Gonna\u200b", artist="\u202eyeltsA kciR\u202c\r\n\tEvil  " + "e" * 500))
    assert status == 200, answer
    track = (await tracks(hub, venue, pid))[0]
    assert track["title"] == "Never[31m Gonna"
    assert track["artist"].startswith("yeltsA kciR Evil ee") and len(track["artist"]) == 120
    assert not any(c in track["artist"] for c in "\u202e\u202c\r\n\t")


async def test_patrons_find_a_song_once_its_box_described_it(hub: Hub) -> None:
    venue = await hub.venue()
    await new_playlist(hub, venue, {"videoId": VID}, TYPED, requestable=True)
    status, body = await hub.call("GET", f"{V}{venue}/songs")
    assert status == 200 and [s["videoId"] for s in body["songs"]] == [TYPED["videoId"]]
    status, body = await hub.call("POST", f"{V}{venue}/checkout", {"song": {"videoId": VID}})
    assert status == 404, body
    await describe(hub, venue, details())
    status, body = await hub.call("GET", f"{V}{venue}/songs?q=astley")
    assert [(s["videoId"], s["title"]) for s in body["songs"]] == [(VID, "Never Gonna Give You Up")]


async def test_import_adds_unknown_urls_pending_and_a_box_may_report_them_playing(hub: Hub) -> None:
    venue = await hub.venue()
    pid = await new_playlist(hub, venue)
    status, body = await hub.call("POST", f"{V}{venue}/playlists/{pid}/tracks/import",
                                  {"text": f"https://www.youtube.com/watch?v={VID}\nnot a url"}, hub.staff(venue))
    assert status == 201, body
    assert body["added"] == [{"videoId": VID, "title": "", "artist": "", "duration": 0.0, "detailsPending": True}]
    assert [p["line"] for p in body["problems"]] == [2]
    status, _ = await hub.call("PUT", f"{V}{venue}/active-playlist", {"playlistId": pid}, hub.staff(venue))
    device = hub.device(venue, "box-1")
    status, body = await hub.call("POST", f"{V}{venue}/players/register", {"deviceId": "box-1"}, device)
    assert status == 200
    entry = (await hub.store.queue_snapshot(venue)).main[0]
    # An edge sends the entry's song as the feed gave it (pending): accepted, not a 400 that loses the report.
    for path in ("now-playing", "played"):
        body = {"deviceId": "box-1", "epoch": 1, "entryId": entry.entry_id, "song": entry.song.to_json(),
                "playedAt": 1}
        status, answer = await hub.call("POST", f"{V}{venue}/{path}", body, {**device, "Idempotency-Key": path})
        assert status == 200, (path, answer)


async def test_a_venues_boxes_learn_which_songs_are_pending(hub: Hub) -> None:
    a, b = await hub.venue(), await hub.venue()
    first = await new_playlist(hub, a, {"videoId": VID}, TYPED, {"videoId": "bbbbbbbbbb2"})
    await new_playlist(hub, a, {"videoId": "bbbbbbbbbb2"}, {"videoId": "ccccccccccc"})
    await new_playlist(hub, b, {"videoId": "ddddddddddd"})
    path = f"{V}{a}/songs/pending"
    status, body = await hub.call("GET", path, headers=hub.device(a, "box-1"))
    assert status == 200 and sorted(body["videoIds"]) == sorted([VID, "bbbbbbbbbb2", "ccccccccccc"])  # each once
    status, body = await hub.call("GET", path + "?limit=1", headers=hub.staff(a))
    assert len(body["videoIds"]) == 1
    for headers in (hub.device(b, "box-1"), hub.staff(b), {}):
        status, body = await hub.call("GET", path, headers=headers)
        assert status in (401, 403), body
    await describe(hub, a, details())
    status, body = await hub.call("GET", path, headers=hub.device(a, "box-1"))
    assert sorted(body["videoIds"]) == ["bbbbbbbbbb2", "ccccccccccc"]
    assert len(await tracks(hub, a, first)) == 3


async def test_staff_correct_what_the_box_said_and_it_stays_theirs(hub: Hub) -> None:
    a, b = await hub.venue(), await hub.venue()
    pid = await new_playlist(hub, a, TYPED, {"videoId": VID})
    await hub.call("PUT", f"{V}{a}/active-playlist", {"playlistId": pid}, hub.staff(a))
    await describe(hub, a, details(title="Never Gonna Give You Up (Remastered 4K)"))
    before = (await hub.store.queue_snapshot(a)).version
    path = f"{V}{a}/playlists/{pid}/tracks/2/details"
    typed = {"videoId": VID, "title": "Never Gonna Give You Up", "artist": "Rick Astley", "duration": 213}
    status, body = await hub.call("PUT", path, typed, hub.staff(a))
    assert status == 200, body
    assert body["tracks"][1] == {**typed, "duration": 213.0}  # no "detailsFrom": staff's now
    queued = [e for e in (await hub.store.queue_snapshot(a)).main if e.song.video_id == VID]
    assert [e.song.title for e in queued] == ["Never Gonna Give You Up"]
    status, body = await hub.call("GET", f"{V}{a}/changes?since={before}", headers=hub.staff(a))
    assert body["messages"][-1]["change"]["type"] == "main_replaced"
    # Staff-typed now: the trust rule counts its length, and no box report changes it again.
    assert [k.seconds for k in await hub.store.known_durations(VID)] == [213.0]
    status, body = await describe(hub, a, details(title="Something Else"))
    assert body["filled"] == 0
    # A list edited meanwhile is never changed blindly; another venue's staff and a box may not.
    status, body = await hub.call("PUT", f"{V}{a}/playlists/{pid}/tracks/1/details", typed, hub.staff(a))
    assert status == 409, body
    for headers in (hub.staff(b), hub.device(a, "box-1")):
        status, body = await hub.call("PUT", path, typed, headers)
        assert status == 403, body
    status, body = await hub.call("PUT", path, {**typed, "title": " "}, hub.staff(a))
    assert (status, body["field"]) == (400, "title")
