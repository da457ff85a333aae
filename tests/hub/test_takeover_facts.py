"""What a box taking over (or enforcing the length limit) learns from a real hub: the measured length
counts in the public estimates, the master's position travels in its heartbeat, a played entry is over."""

from __future__ import annotations

from tests.hub.conftest import Hub
from tests.hub.test_queue_feed import master_of, snapshot
from tests.hub.test_registry import register
from tests.hub.test_requests import SONG, paid, request


async def heartbeat(hub: Hub, venue: str, device: str, position: dict | None = None) -> tuple[int, dict]:
    body: dict = {"deviceId": device}
    if position is not None:
        body["position"] = position
    return await hub.call("POST", f"/api/v1/venues/{venue}/players/heartbeat", body, hub.device(venue, device))


async def test_public_estimates_use_the_measured_trimmed_length_not_the_declared_one(hub: Hub) -> None:
    venue = await hub.venue()
    await master_of(hub, venue)
    await request(hub, venue, paid({**SONG, "duration": 30}))
    _, before = await hub.call("GET", f"/api/v1/venues/{venue}/queue")
    assert before["queue"][0]["playDuration"] == 30.0  # nothing measured yet: the declared length
    await hub.call("POST", "/api/v1/catalog/analysis",
                   {"videoId": SONG["videoId"], "duration": 280.0, "realStartOffset": 0.5, "realEndOffset": 279.0},
                   hub.device(venue, "box-a"))
    _, after = await hub.call("GET", f"/api/v1/venues/{venue}/queue")
    assert after["queue"][0]["playDuration"] == 278.5


async def test_register_and_heartbeat_tell_the_box_the_request_limit(hub: Hub) -> None:
    venue = await hub.venue()
    _, registered = await register(hub, venue, "box-a")
    _, beat = await heartbeat(hub, venue, "box-a")
    assert registered["maxRequestDuration"] == beat["maxRequestDuration"] == 300


async def test_the_masters_position_reaches_now_playing_and_a_played_entry_is_over(hub: Hub) -> None:
    venue = await hub.venue()
    epoch = await master_of(hub, venue)
    await request(hub, venue, paid())
    entry = (await snapshot(hub, venue))["priorityQueue"][0]
    write = {"deviceId": "box-a", "epoch": epoch, "entryId": entry["entryId"]}
    await hub.call("POST", f"/api/v1/venues/{venue}/now-playing", write, hub.device(venue, "box-a"))
    playing = (await snapshot(hub, venue))["nowPlaying"]
    assert (playing["position"], playing["endedAt"]) == (None, None)  # started, no heartbeat since

    status, _ = await heartbeat(hub, venue, "box-a", {"entryId": entry["entryId"], "seconds": 61.5})
    assert status == 200
    await heartbeat(hub, venue, "box-a")  # a heartbeat without a position keeps the last one
    playing = (await snapshot(hub, venue))["nowPlaying"]
    assert playing["position"] == 61.5 and playing["positionAt"] is not None
    await heartbeat(hub, venue, "box-a", {"entryId": "e-something-else", "seconds": 3})
    assert (await snapshot(hub, venue))["nowPlaying"]["position"] is None  # that is not what the hub has playing

    headers = {**hub.device(venue, "box-a"), "Idempotency-Key": "played-1"}
    await hub.call("POST", f"/api/v1/venues/{venue}/played", {**write, "playedAt": 123}, headers)
    assert (await snapshot(hub, venue))["nowPlaying"]["endedAt"] == 123


async def test_a_bad_position_is_a_400_naming_it(hub: Hub) -> None:
    venue = await hub.venue()
    await master_of(hub, venue)
    for position, field in (({"entryId": "e-1"}, "position.seconds"), ({"seconds": 1}, "position.entryId"),
                            ({"entryId": "e-1", "seconds": -1}, "position.seconds"), ("x", "position")):
        status, body = await heartbeat(hub, venue, "box-a", position)  # type: ignore[arg-type]
        assert (status, body["field"]) == (400, field)


async def test_a_take_over_resuming_now_playing_moves_it_to_the_new_master(hub: Hub) -> None:
    venue = await hub.venue()
    old = await master_of(hub, venue, "box-a")
    await request(hub, venue, paid())
    entry = (await snapshot(hub, venue))["priorityQueue"][0]
    write = {"deviceId": "box-a", "epoch": old, "entryId": entry["entryId"]}
    await hub.call("POST", f"/api/v1/venues/{venue}/now-playing", write, hub.device(venue, "box-a"))
    hub.clock.advance(121)  # box-a went silent (killed)
    new = await master_of(hub, venue, "box-b")
    before = (await snapshot(hub, venue))["version"]
    status, body = await hub.call("POST", f"/api/v1/venues/{venue}/now-playing",
                                  {**write, "deviceId": "box-b", "epoch": new}, hub.device(venue, "box-b"))
    assert status == 200 and (body["nowPlaying"]["deviceId"], body["nowPlaying"]["epoch"]) == ("box-b", new)
    after = await snapshot(hub, venue)
    assert (after["nowPlaying"]["entryId"], after["nowPlaying"]["deviceId"]) == (entry["entryId"], "box-b")
    assert after["nowPlaying"]["startedAt"] == body["nowPlaying"]["startedAt"]  # the same play, not a new one
    assert after["version"] == before + 1  # edges hear who plays it now
