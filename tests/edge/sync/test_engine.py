"""EdgeSync end to end on one host: two boxes, one hub (the fake, and the real hub on loopback).

A small simulated player stands in for libmpv here (the daemon tests use the real one): when the lease
says play it takes the next entry from the replica and reports it; ``finish()`` ends the current track.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from djamms_edge.edge.queue.source import Outcome
from djamms_edge.edge.sync.config import SyncConfig
from djamms_edge.edge.sync.engine import EdgeSync
from djamms_edge.edge.sync.fake_hub import FakeHub
from djamms_edge.edge.sync.hub_api import FeedMessage
from djamms_edge.edge.sync.hub_queue import HubQueue, queue_entry
from djamms_edge.edge.sync.lease import Role
from djamms_edge.edge.sync.replica import ReplicaEntry
from djamms_edge.edge.sync.store import open_sync_db
from djamms_edge.shared.song_details import SongDetails
from djamms_edge.shared.sqlite import Database
from tests.edge.sync.hubs import HubUnderTest, eventually, make_hub, song

STALE = 0.6
CONFIG = SyncConfig(
    heartbeat_interval_s=0.1, retry_min_s=0.05, retry_max_s=0.2, request_timeout_s=1.0, poll_interval_s=0.2
)


class SimBox:
    """One venue box: its own SQLite, its EdgeSync, and a pretend player."""

    def __init__(self, name: str, hub: HubUnderTest, tmp_path: Path) -> None:
        self.name = name
        self.api = hub.api(name)
        self.db: Database = open_sync_db(tmp_path / name)
        self.sync = EdgeSync(
            self.api, self.db, CONFIG, on_play=self._play, on_halt=self._halt, on_queue_changed=self._queue_changed
        )
        self.playing: ReplicaEntry | None = None
        self.is_playing = False
        self.played: list[ReplicaEntry] = []
        self._busy = asyncio.Lock()

    async def start(self) -> None:
        await self.db.open()
        await self.sync.start()

    def _play(self, epoch: int) -> None:
        if not self.is_playing:
            self.is_playing = True
            asyncio.get_running_loop().create_task(self._next())

    def _queue_changed(self) -> None:
        if self.is_playing and self.playing is None:  # idle master: something to play may have arrived
            asyncio.get_running_loop().create_task(self._next())

    def _halt(self, reason: str) -> None:
        self.is_playing = False
        self.playing = None

    async def _next(self) -> None:
        async with self._busy:
            if not self.is_playing or self.playing is not None:
                return
            entry = await self.sync.next_entry()
            self.playing = entry
            if entry is not None:
                await self.sync.started(entry)

    async def finish(self) -> ReplicaEntry:
        """The current track reached its end."""
        async with self._busy:
            entry = self.playing
            assert entry is not None and self.is_playing
            self.played.append(entry)
            self.playing = None
            await self.sync.finished(entry)
        await self._next()
        return entry

    async def crash(self) -> None:
        """kill -9: tasks vanish, nothing is released or flushed."""
        self.is_playing = False
        await self.sync._tasks.close()
        await self.db.close()

    async def stop(self) -> None:
        await self.sync.stop()
        await self.db.close()


@pytest.fixture(params=["fake", "real"])
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HubUnderTest]:
    made = await make_hub(request.param, tmp_path, STALE)
    await made.set_playlist([song(n) for n in range(1, 6)])
    yield made
    await made.close()


@pytest.fixture
async def boxes(hub: HubUnderTest, tmp_path: Path) -> AsyncIterator[list[SimBox]]:
    made = [SimBox("box-a", hub, tmp_path), SimBox("box-b", hub, tmp_path)]
    await made[0].start()
    await eventually(lambda: made[0].is_playing and made[0].playing is not None)
    await made[1].start()
    await eventually(lambda: made[1].sync.lease.role is Role.STANDBY)
    yield made
    for box in made:
        if box.sync.lease.role is not Role.STOPPED and not box.sync._tasks._closing:
            await box.stop()


def players(boxes: list[SimBox]) -> list[str]:
    return [b.name for b in boxes if b.is_playing]


async def test_exactly_one_box_plays(boxes: list[SimBox]) -> None:
    await asyncio.sleep(STALE * 2)  # several heartbeats and register retries later
    assert players(boxes) == ["box-a"]
    assert boxes[1].sync.lease.master_device == "box-a"


async def test_the_standby_mirrors_the_queue_and_what_plays(boxes: list[SimBox]) -> None:
    a, b = boxes
    first = a.playing
    assert first is not None
    await eventually(lambda: _now_playing_on(b, first.entry_id))
    assert [e.video_id for e in await b.sync.upcoming(3)] == [e.video_id for e in await a.sync.upcoming(3)]


async def _now_playing_on(box: SimBox, entry_id: str) -> bool:
    view = await box.sync.replica.view()
    return view.now_playing is not None and view.now_playing["entryId"] == entry_id


async def test_crash_the_standby_takes_over_with_the_next_entry(boxes: list[SimBox], hub: HubUnderTest) -> None:
    a, b = boxes
    await a.finish()
    current = a.playing
    assert current is not None
    await eventually(lambda: _now_playing_on(b, current.entry_id))
    expected_next = (await b.sync.upcoming(1))[0]
    crashed_at = asyncio.get_running_loop().time()
    await a.crash()
    await eventually(lambda: b.is_playing and b.playing is not None, within=STALE + 3)
    took = asyncio.get_running_loop().time() - crashed_at
    assert took <= STALE + CONFIG.heartbeat_interval_s + 0.5
    assert b.playing is not None and b.playing.video_id == expected_next.video_id
    assert b.playing.video_id != current.video_id


async def test_graceful_stop_hands_over_within_two_seconds(boxes: list[SimBox]) -> None:
    a, b = boxes
    stopped_at = asyncio.get_running_loop().time()
    await a.stop()
    await eventually(lambda: b.is_playing, within=2.0)
    assert asyncio.get_running_loop().time() - stopped_at < 2.0


async def test_the_lease_tells_its_listeners_the_moment_the_role_changes(boxes: list[SimBox]) -> None:
    a, b = boxes
    roles: list[Role] = []
    b.sync.subscribe_lease(lambda: roles.append(b.sync.lease.role))  # the status page listens like this
    await a.stop()
    await eventually(lambda: b.is_playing, within=2.0)
    assert roles[-1] is Role.MASTER and b.sync.lease.role is Role.MASTER  # told when it happened, not polled


async def test_a_paid_request_plays_next(boxes: list[SimBox], hub: HubUnderTest) -> None:
    a, _ = boxes
    await hub.paid_request(song(42, artist="Requested"), "pay-42")
    await eventually(lambda: _has_priority(a))
    await a.finish()
    assert a.playing is not None and a.playing.video_id == song(42)["videoId"]


async def _has_priority(box: SimBox) -> bool:
    return bool((await box.sync.replica.view()).priority)


async def test_hub_outage_master_plays_on_and_history_is_complete_once(boxes: list[SimBox], hub: HubUnderTest) -> None:
    a, b = boxes
    await a.finish()
    await hub.go_down()
    await eventually(lambda: a.sync.lease.role is Role.MASTER_OFFLINE)
    for _ in range(6):  # more than the playlist: the offline rotation wraps around
        await a.finish()
    assert a.is_playing and not b.is_playing
    await hub.come_back()
    await eventually(lambda: a.sync.lease.role is Role.MASTER and b.sync.lease.hub_ok, within=5)
    await eventually(_drained(a), within=5)
    history = await a.api.history(100)
    played_ids = [e.entry_id for e in a.played]
    assert sorted(h["entryId"] for h in history) == sorted(played_ids)
    assert len({h["entryId"] for h in history}) == len(history)  # no duplicate
    assert [h["videoId"] for h in reversed(history)] == [e.video_id for e in a.played]
    assert players(boxes) == ["box-a"]
    await eventually(lambda: _now_playing_on(b, a.playing.entry_id if a.playing else ""))


def _drained(box: SimBox) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await box.sync.outbox.counts())["pending"] == 0

    return check


# Cutting one box off needs the fake's per-edge switch; the daemon tests cut a real socket instead.
@pytest.mark.parametrize("hub", ["fake"], indirect=True)
async def test_partition_the_cut_off_master_yields_when_it_hears_from_the_hub(
    boxes: list[SimBox], hub: HubUnderTest
) -> None:
    a, b = boxes
    assert isinstance(a.api, FakeHub)
    await a.api.set_cut(True)
    await eventually(lambda: b.is_playing, within=STALE + 2)
    # Venue first: box-a cannot tell a partition from an outage, so it plays on until it learns.
    assert a.is_playing and a.sync.lease.role is Role.MASTER_OFFLINE
    await a.finish()  # played during the partition: history, but no queue write under a lost lease
    await a.api.set_cut(False)
    await eventually(lambda: not a.is_playing, within=CONFIG.retry_max_s + 2)
    assert players(boxes) == ["box-b"]
    await eventually(_drained(a), within=5)
    counts = await a.sync.outbox.counts()
    assert counts["rejected"] >= 1  # the queue write of the lost lease was refused, not applied
    assert any(h["deviceId"] == "box-a" for h in await a.api.history(100))


async def test_a_fresh_box_starts_from_the_current_queue_not_the_whole_history(
    hub: HubUnderTest, tmp_path: Path
) -> None:
    await hub.set_playlist([song(n) for n in range(10, 13)])  # the first playlist is history now
    box = SimBox("box-new", hub, tmp_path)
    asked: list[int] = []
    feed = box.api.feed

    def recording_feed(since: int) -> AsyncGenerator[FeedMessage, None]:
        asked.append(since)
        return feed(since)

    box.api.feed = recording_feed  # type: ignore[method-assign]
    await box.start()
    try:
        await eventually(lambda: box.playing is not None)
        assert box.playing is not None and box.playing.video_id == song(10)["videoId"]
        # The box plays from the snapshot; its feed task may ask the hub a moment later on a loaded machine.
        await eventually(lambda: bool(asked))
        assert asked[0] > 0  # resumed the feed after the snapshot: no replay of the first playlist
    finally:
        await box.stop()


async def test_a_track_that_fails_here_reaches_the_hubs_device_errors_after_an_outage(
    boxes: list[SimBox], hub: HubUnderTest
) -> None:
    a = boxes[0]
    queue = HubQueue(a.sync)
    entry = queue_entry((await a.sync.upcoming(1))[0])
    await hub.go_down()
    await queue.finished(entry, Outcome.FAILED, "unavailable: This video has been removed")
    await asyncio.sleep(0.3)
    await hub.come_back()

    async def reported() -> bool:
        return bool(await hub.device_errors())

    await eventually(reported, within=10)
    errors = await hub.device_errors()
    assert [(e["deviceId"], e["videoId"], e["message"]) for e in errors] == [
        ("box-a", entry.source, "unavailable: This video has been removed")
    ]


async def test_what_a_box_fetched_fills_in_a_song_added_by_url_alone(hub: HubUnderTest, tmp_path: Path) -> None:
    """The box's details go through its outbox to the hub, which fills the pending entry; the feed brings the
    filled entry back to the replica (what the status page and the box's reports show)."""
    pending = {"videoId": "vid00000042", "title": "", "artist": "", "duration": 0.0, "detailsPending": True}
    await hub.set_playlist([song(7), pending])
    box = SimBox("box-a", hub, tmp_path)
    await box.start()
    try:
        await eventually(lambda: box.playing is not None)
        await box.sync.report_details("vid00000042", SongDetails("Cobalt", "Blue Hour", 201.5))

        async def described() -> bool:
            entry = next(e for e in await box.sync.upcoming(5) if e.video_id == "vid00000042")
            return (entry.data["artist"], entry.data["title"], entry.data["duration"]) == ("Cobalt", "Blue Hour",
                                                                                          201.5)

        await eventually(described)
    finally:
        await box.stop()
