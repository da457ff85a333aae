"""Free venues (no provider call, per-patron limits), requestable songs, and the patron's live event stream."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import aiohttp

from djamms_edge.hub.config import LimitsConfig
from tests.hub.conftest import Hub, HubFactory, hub_config
from tests.hub.payments.conftest import SONGS, set_up_venue

DANCING, WATERLOO, BORN, _ = (s["videoId"] for s in SONGS)


async def checkout(hub: Hub, video_id: str, patron: str | None = "p1") -> tuple[int, Any]:
    body: dict[str, Any] = {"song": {"videoId": video_id}}
    if patron is not None:
        body["requesterId"] = patron
    return await hub.call("POST", "/api/v1/venues/bar/checkout", body)


async def test_a_free_venue_queues_at_once_and_limits_each_patron(start_hub: HubFactory) -> None:
    limits = dataclasses.replace(LimitsConfig(), requests_per_client=100, requests_per_patron=2)
    async with start_hub(hub_config(limits=limits)) as hub:
        await set_up_venue(hub, "bar", 0)
        status, body = await checkout(hub, DANCING)
        assert status == 201 and body["status"] == "pending" and body["checkoutUrl"] is None
        assert body["price"] == 0
        assert (await checkout(hub, BORN))[0] == 201
        status, body = await checkout(hub, WATERLOO)
        assert status == 429 and body["field"] == "requesterId"  # this patron has had their two
        assert (await checkout(hub, WATERLOO, patron="p2"))[0] == 201  # the next phone at the bar has not
        status, queue = await hub.call("GET", "/api/v1/venues/bar/queue")
        assert [e["title"] for e in queue["queue"]] == ["Dancing Queen", "Born to Run", "Waterloo"]
        # Rules still apply at a free venue: refused, in the reference's words.
        status, body = await checkout(hub, SONGS[3]["videoId"], patron="p3")
        assert status == 422 and body["error"] == "Song duration exceeds 5 minutes"


async def test_a_price_needs_a_payment_provider(hub: Hub) -> None:
    await set_up_venue(hub, "bar", 0)
    status, body = await hub.call("PUT", "/api/v1/venues/bar/price", {"price": 100, "currency": "usd"},
                                  headers=hub.staff("bar"))
    assert status == 409 and body["field"] == "price"


async def test_songs_are_searched_by_title_and_artist(hub: Hub) -> None:
    await set_up_venue(hub, "bar", 0)

    async def titles(query: str) -> list[str]:
        status, body = await hub.call("GET", "/api/v1/venues/bar/songs", params={"q": query})
        assert status == 200
        return [s["title"] for s in body["songs"]]

    assert await titles("") == [s["title"] for s in SONGS]
    assert await titles("abba") == ["Dancing Queen", "Waterloo"]
    assert await titles("QUEEN abba") == ["Dancing Queen"]
    assert await titles("springsteen run") == ["Born to Run"]
    assert await titles("nothing like this") == []
    # A playlist that is not requestable is not offered.
    _, playlists = await hub.call("GET", "/api/v1/venues/bar/playlists", headers=hub.staff("bar"))
    [playlist] = playlists["playlists"]
    await hub.call("PATCH", f"/api/v1/venues/bar/playlists/{playlist['playlistId']}", {"requestable": False},
                   headers=hub.staff("bar"))
    assert await titles("") == []
    assert (await checkout(hub, DANCING))[0] == 404


async def read_states(resp: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = []
    async for line in resp.content:
        if line.startswith(b"data: "):
            states.append(json.loads(line[6:]))
            if len(states) == count:
                break
    return states


async def test_the_live_stream_follows_the_patrons_request_until_played(hub: Hub) -> None:
    await set_up_venue(hub, "bar", 0)
    await hub.call("POST", "/api/v1/venues/bar/players/register", {"deviceId": "box"},
                   headers=hub.device("bar", "box"))
    _, first = await checkout(hub, DANCING, "p1")
    _, mine = await checkout(hub, BORN, "p2")
    async with hub.http.get(f"{hub.url}/api/v1/venues/bar/live", params={"request": mine["requestId"]}) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        [state] = await read_states(resp, 1)
        assert state["request"]["position"] == 2 and state["request"]["status"] == "pending"
        assert [e.get("mine", False) for e in state["queue"]["queue"]] == [False, True]
        assert "requestId" not in json.dumps(state["queue"])  # other patrons' ids never leave the hub

        async def advance(finished: str | None) -> None:
            body = {"deviceId": "box", "epoch": 1, **({"finishedEntryId": finished} if finished else {})}
            status, answer = await hub.call("POST", "/api/v1/venues/bar/queue/advance", body,
                                            headers=hub.device("bar", "box"))
            assert status == 200, answer

        await advance(None)  # Dancing Queen starts: mine moves up
        [state] = await read_states(resp, 1)
        assert state["request"]["position"] == 1
        await advance(None)  # mine plays
        [state] = await read_states(resp, 1)
        assert state["request"]["playing"] is True
        await advance(None)  # and has played: the stream ends
        [state] = await asyncio.wait_for(read_states(resp, 1), 10)
        assert state["request"]["status"] == "played"
        assert (await asyncio.wait_for(resp.content.read(), 10)).strip() == b""  # the hub ended the stream
    assert first["requestId"] != mine["requestId"]
