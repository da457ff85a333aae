"""HubQueue: the engine's view of the hub's queue, and what each outcome leaves behind."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from djamms_edge.edge.queue.model import EntryKind
from djamms_edge.edge.queue.source import Outcome
from djamms_edge.edge.sync.config import SyncConfig
from djamms_edge.edge.sync.engine import EdgeSync
from djamms_edge.edge.sync.fake_hub import FakeHub, FakeVenue
from djamms_edge.edge.sync.hub_api import PlayPosition
from djamms_edge.edge.sync.hub_queue import HubQueue
from djamms_edge.edge.sync.lease import Granted
from djamms_edge.shared.sqlite import Database
from tests.edge.sync.hubs import song


async def make(db: Database, wall_clock: Callable[[], float] = time.time) -> tuple[HubQueue, EdgeSync]:
    venue = FakeVenue()
    await venue.set_playlist([song(1), song(2)])
    await venue.paid_request(song(9, artist="Payer"), "pay-9")
    sync = EdgeSync(FakeHub(venue, "box-a"), db, SyncConfig(), on_play=lambda e: None, on_halt=lambda r: None,
                    wall_clock=wall_clock)
    await sync.replica.load_snapshot(venue.snapshot())
    return HubQueue(sync), sync


async def test_paid_first_as_priority_entries(db: Database) -> None:
    queue, _ = await make(db)
    first, second, third = await queue.upcoming(3)
    assert (first.kind, first.source, first.artist) == (EntryKind.PRIORITY, song(9)["videoId"], "Payer")
    assert [second.kind, third.kind] == [EntryKind.MAIN, EntryKind.MAIN]
    assert second.duration == 200.0


async def test_a_played_entry_is_reported_once_and_not_offered_again(db: Database) -> None:
    queue, sync = await make(db)
    entry = (await queue.upcoming(1))[0]
    await queue.started(entry)
    await queue.finished(entry, Outcome.PLAYED)
    assert entry.entry_id not in [e.entry_id for e in await queue.upcoming(3)]
    assert [i.kind for i in await sync.outbox.pending()] == ["now_playing", "played"]


async def test_a_failed_entry_is_skipped_here_and_the_hub_is_told_of_the_error_not_that_it_played(
    db: Database,
) -> None:
    queue, sync = await make(db)
    entry = (await queue.upcoming(1))[0]
    await queue.finished(entry, Outcome.FAILED, "file missing")
    assert entry.entry_id not in [e.entry_id for e in await queue.upcoming(3)]
    pending = await sync.outbox.pending()
    assert [(i.kind, i.payload["videoId"], i.payload["message"]) for i in pending] == [
        ("device_error", entry.source, "file missing")
    ]


async def test_the_same_failure_again_within_the_hour_is_reported_once(db: Database) -> None:
    now = [1_800_000_000.0]  # on the hour
    queue, sync = await make(db, wall_clock=lambda: now[0])
    entry = (await queue.upcoming(1))[0]
    await queue.finished(entry, Outcome.FAILED, "HTTP 403")
    # The playlist comes round: the same track, a new entry, the same failure.
    now[0] += 3599
    await queue.finished(dataclasses.replace(entry, entry_id="round-2"), Outcome.FAILED, "HTTP 403")
    await queue.finished(dataclasses.replace(entry, entry_id="round-3"), Outcome.FAILED, "HTTP 410")
    now[0] += 1  # the next hour: staff hear that it still fails
    await queue.finished(dataclasses.replace(entry, entry_id="round-4"), Outcome.FAILED, "HTTP 403")
    pending = await sync.outbox.pending()
    assert [(i.payload["message"], i.payload["at"]) for i in pending if i.kind == "device_error"] == [
        ("HTTP 403", 1_800_000_000_000),
        ("HTTP 410", 1_800_003_599_000),
        ("HTTP 403", 1_800_003_600_000),
    ]


async def test_a_refused_paid_request_is_not_offered_again_and_its_refund_goes_out_once(db: Database) -> None:
    queue, sync = await make(db)
    paid = (await queue.upcoming(1))[0]
    assert paid.kind is EntryKind.PRIORITY
    await queue.refused(paid, 412.0)
    await queue.refused(paid, 412.0)  # planned again before the replica caught up: still one report
    assert paid.entry_id not in [e.entry_id for e in await queue.upcoming(3)]
    pending = await sync.outbox.pending()
    assert [(i.kind, i.payload["requestId"], i.payload["duration"]) for i in pending] == [
        ("over_limit", "r-pay-9", 412.0)
    ]


async def test_the_request_limit_is_the_venues_own_else_the_hubs(db: Database) -> None:
    queue, sync = await make(db)
    assert await queue.request_limit() is None  # the hub has not said yet
    await sync.api.register()
    assert await queue.request_limit() == 300.0
    await sync.replica.load_snapshot({**sync.api.v.snapshot(), "rules": {"maxDurationS": 240}})  # type: ignore[attr-defined]
    assert await queue.request_limit() == 240.0


async def take_over(sync: EdgeSync) -> None:
    from djamms_edge.edge.sync import lease as L

    granted = await sync.api.register()
    assert isinstance(granted, L.Granted)
    sync.handle(granted)


async def cut_off(db: Database, *, ended: bool) -> tuple[HubQueue, str]:
    """box-old played the playlist's head 61 s in (and finished it, if ``ended``), then crashed; box-a takes over."""
    venue = FakeVenue()
    await venue.set_playlist([song(1), song(2)])
    other = FakeHub(venue, "box-old")
    granted = await other.register()
    assert isinstance(granted, Granted)
    epoch = granted.epoch
    head = venue.main[0]
    await other.now_playing(epoch, head["entryId"], None, "np:old")
    await other.heartbeat(PlayPosition(head["entryId"], 61.0))
    if ended:
        await other.played(epoch, head["entryId"], None, 1, "played:old")
    venue.master = None  # box-old crashed; its lease is gone
    sync = EdgeSync(FakeHub(venue, "box-a"), db, SyncConfig(), on_play=lambda e: None, on_halt=lambda r: None)
    await sync.replica.load_snapshot(venue.snapshot())
    await take_over(sync)
    return HubQueue(sync), head["entryId"]


async def test_a_take_over_offers_the_cut_off_entry_first_from_its_last_position(db: Database) -> None:
    queue, entry_id = await cut_off(db, ended=False)
    first = (await queue.upcoming(2))[0]
    assert (first.entry_id, first.resume_at) == (entry_id, 61.0)
    await queue.started(first)
    assert entry_id not in [e.entry_id for e in await queue.upcoming(2)]


async def test_no_take_over_resume_of_an_entry_that_ended(db: Database) -> None:
    queue, _ = await cut_off(db, ended=True)
    assert all(e.resume_at is None for e in await queue.upcoming(3))
