"""One suite, two hubs: the real hub over HTTP on loopback (through HubClient) and the in-memory fake.

What the edge relies on: the registry answers and epochs, fencing, idempotent master writes, the
change feed (backlog then live), and a clean HubUnavailable when the hub is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from djamms_edge.edge.sync.errors import HubRefused, HubUnavailable, StaleEpoch
from djamms_edge.edge.sync.hub_api import Analysis, FeedMessage, HubApi, PlayPosition
from djamms_edge.edge.sync.lease import Conflict, Granted, HeartbeatLost, HeartbeatOk
from tests.edge.sync.hubs import HubUnderTest, make_hub, song

STALE = 0.4


@pytest.fixture(params=["fake", "real"])
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HubUnderTest]:
    made = await make_hub(request.param, tmp_path, STALE)
    yield made
    await made.close()


async def test_one_master_then_conflict_then_reconnect(hub: HubUnderTest) -> None:
    a, b = hub.api("box-a"), hub.api("box-b")
    first = await a.register()
    assert isinstance(first, Granted) and first.status == "registered"
    other = await b.register()
    assert other == Conflict("box-a", first.epoch)
    again = await a.register()
    assert again == Granted("reconnected", first.epoch)


async def test_heartbeats_only_count_for_the_master(hub: HubUnderTest) -> None:
    a, b = hub.api("box-a"), hub.api("box-b")
    await a.register()
    assert isinstance(await a.heartbeat(), HeartbeatOk)
    assert isinstance(await b.heartbeat(), HeartbeatLost)


async def test_release_hands_over_with_a_higher_epoch(hub: HubUnderTest) -> None:
    a, b = hub.api("box-a"), hub.api("box-b")
    first = await a.register()
    await a.release()
    second = await b.register()
    assert isinstance(first, Granted) and isinstance(second, Granted)
    assert second.status == "registered" and second.epoch > first.epoch
    assert isinstance(await a.heartbeat(), HeartbeatLost)


async def test_a_silent_master_is_taken_over_after_staleness(hub: HubUnderTest) -> None:
    a, b = hub.api("box-a"), hub.api("box-b")
    await a.register()
    assert isinstance(await b.register(), Conflict)
    await asyncio.sleep(STALE + 0.1)
    taken = await b.register()
    assert isinstance(taken, Granted) and taken.status == "registered"
    assert isinstance(await a.register(), Conflict)


async def test_master_writes_are_fenced_by_epoch_and_deduped_by_key(hub: HubUnderTest) -> None:
    await hub.set_playlist([song(1), song(2), song(3)])
    a, b = hub.api("box-a"), hub.api("box-b")
    granted = await a.register()
    assert isinstance(granted, Granted)
    snap = await a.snapshot()
    head = snap["mainQueue"][0]
    first = await a.now_playing(granted.epoch, head["entryId"], None, key="np:1")
    assert first["nowPlaying"]["entryId"] == head["entryId"]
    version = (await a.snapshot())["version"]
    repeat = await a.now_playing(granted.epoch, head["entryId"], None, key="np:1")
    assert repeat["nowPlaying"]["entryId"] == head["entryId"]
    assert (await a.snapshot())["version"] == version  # the repeat changed nothing
    after = await a.snapshot()
    assert head["entryId"] not in [e["entryId"] for e in after["mainQueue"]]
    assert [e["videoId"] for e in after["mainQueue"]][-1] == head["videoId"]  # the playlist goes round
    with pytest.raises(StaleEpoch):
        await b.now_playing(granted.epoch, after["mainQueue"][0]["entryId"], None, key="np:b")


async def test_played_is_recorded_once_and_survives_losing_the_lease(hub: HubUnderTest) -> None:
    await hub.set_playlist([song(1), song(2)])
    a, b = hub.api("box-a"), hub.api("box-b")
    granted = await a.register()
    assert isinstance(granted, Granted)
    head = (await a.snapshot())["mainQueue"][0]
    await a.now_playing(granted.epoch, head["entryId"], None, key="np:x")
    await a.release()
    await b.register()
    # History is a fact: what box-a played on an epoch it held is still recorded, once per key.
    for _ in range(2):
        await a.played(granted.epoch, head["entryId"], head | {}, 1_700_000_000_000, key="played:x")
    history = await a.history()
    assert [h["entryId"] for h in history] == [head["entryId"]]
    with pytest.raises(StaleEpoch):
        await b.played(granted.epoch, head["entryId"], None, 1_700_000_000_000, key="played:y")


async def test_an_unqueued_entry_is_played_from_its_song(hub: HubUnderTest) -> None:
    a = hub.api("box-a")
    granted = await a.register()
    assert isinstance(granted, Granted)
    answer = await a.now_playing(granted.epoch, "local-0123456789abcdef", song(7), key="np:local")
    assert answer["nowPlaying"]["videoId"] == song(7)["videoId"]


async def test_the_feed_sends_the_backlog_then_live_changes(hub: HubUnderTest) -> None:
    await hub.set_playlist([song(1), song(2)])
    a = hub.api("box-a")
    messages: list[FeedMessage] = []
    ready = asyncio.Event()
    request_seen = asyncio.Event()

    async def listen() -> None:
        async for message in a.feed(0):
            messages.append(message)
            if message.kind == "ready":
                ready.set()
            added = message.body.get("entry") if message.body.get("type") == "entry_added" else None
            if added is not None and added["queue"] == "priority":
                request_seen.set()

    task = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(ready.wait(), 5)
        assert any(m.kind in ("change", "snapshot") for m in messages)
        await hub.paid_request(song(9), "pay-1")
        await asyncio.wait_for(request_seen.wait(), 5)
        versions = [m.version for m in messages if m.kind == "change"]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_polling_resumes_from_a_version(hub: HubUnderTest) -> None:
    await hub.set_playlist([song(1)])
    a = hub.api("box-a")
    start = (await a.snapshot())["version"]
    await hub.paid_request(song(5), "pay-5")
    batch = await a.changes(start)
    assert batch.version > start
    assert all(m.version > start for m in batch.messages)
    assert any(m.body.get("type") == "entry_added" for m in batch.messages)


async def test_analysis_reaches_the_catalog(hub: HubUnderTest) -> None:
    a = hub.api("box-a")
    await a.register()
    await a.report_analysis(Analysis("vid00000001", 200.0, 0.5, 196.25, -9.5))
    track = (await a.catalog(["vid00000001", "vid00000002"]))["vid00000001"]
    assert (track["realStartOffset"], track["realEndOffset"], track["loudness"]) == (0.5, 196.25, -9.5)


async def test_a_hub_that_is_gone_is_unavailable_not_a_crash(hub: HubUnderTest) -> None:
    a = hub.api("box-a")
    await a.register()
    await hub.go_down()
    calls: list[object] = [a.register(), a.heartbeat(), a.snapshot(), a.changes(0)]
    for call in calls:
        with pytest.raises(HubUnavailable):
            await call  # type: ignore[misc]
    await hub.come_back()
    assert isinstance(await a.register(), Granted)


async def test_a_feed_ends_with_unavailable_when_the_hub_goes(hub: HubUnderTest) -> None:
    a: HubApi = hub.api("box-a")
    ready = asyncio.Event()

    async def listen() -> None:
        async for message in a.feed(0):
            if message.kind == "ready":
                ready.set()

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 5)
    await hub.go_down()
    with pytest.raises(HubUnavailable):
        await asyncio.wait_for(task, 5)


async def test_a_device_error_is_stored_once_per_key(hub: HubUnderTest) -> None:
    a = hub.api("box-a")
    first = await a.report_error(song(1)["videoId"], "unavailable: video removed", 1_700_000_000_000, "error:k1")
    again = await a.report_error(song(1)["videoId"], "unavailable: video removed", 1_700_000_000_000, "error:k1")
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert again["errorId"] == first["errorId"]
    await a.report_error(None, "the player failed 5 tracks in a row", 1_700_000_000_001, "error:k2")
    errors = await hub.device_errors()
    assert [(e["deviceId"], e["videoId"], e["message"]) for e in errors] == [
        ("box-a", None, "the player failed 5 tracks in a row"),
        ("box-a", song(1)["videoId"], "unavailable: video removed"),
    ]


async def test_an_empty_error_message_is_refused(hub: HubUnderTest) -> None:
    with pytest.raises(HubRefused):
        await hub.api("box-a").report_error(None, "", 1_700_000_000_000, "error:k3")


async def test_the_masters_position_travels_in_its_heartbeat_and_a_played_entry_is_over(hub: HubUnderTest) -> None:
    a = hub.api("box-a")
    granted = await a.register()
    assert isinstance(granted, Granted)
    assert a.max_request_duration == 300  # the hub's limit on a paid request's measured length
    await hub.paid_request(song(3, duration=100.0), "pay-pos")
    head = (await a.snapshot())["priorityQueue"][0]
    await a.now_playing(granted.epoch, head["entryId"], None, key="np:pos")
    assert isinstance(await a.heartbeat(PlayPosition(head["entryId"], 42.5)), HeartbeatOk)
    playing = (await a.snapshot())["nowPlaying"]
    assert (playing["entryId"], playing["position"], playing.get("endedAt")) == (head["entryId"], 42.5, None)
    await a.played(granted.epoch, head["entryId"], None, 1_800_000_000_000, key="played:pos")
    assert (await a.snapshot())["nowPlaying"]["endedAt"] is not None


async def test_a_paid_request_measured_over_the_limit_is_refunded_once_by_the_master(hub: HubUnderTest) -> None:
    a, b = hub.api("box-a"), hub.api("box-b")
    granted = await a.register()
    assert isinstance(granted, Granted)
    await hub.paid_request(song(4, duration=30.0), "pay-long")
    entry = (await a.snapshot())["priorityQueue"][0]
    with pytest.raises(StaleEpoch):
        await b.report_over_limit(granted.epoch, entry["requestId"], 400.0)
    with pytest.raises(HubRefused):
        await a.report_over_limit(granted.epoch, entry["requestId"], 120.0)  # within the limit: no refund
    first = await a.report_over_limit(granted.epoch, entry["requestId"], 400.0)
    again = await a.report_over_limit(granted.epoch, entry["requestId"], 400.0)
    assert (first["changed"], first["removedEntryIds"], again["changed"]) == (True, [entry["entryId"]], False)
    assert first["request"]["status"] == "refund_due"
    assert (await a.snapshot())["priorityQueue"] == []
