"""The durable outbox against a real SQLite file: order, durability, dedupe, backoff, logging."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from djamms_edge.edge.sync.errors import HubRefused, HubUnavailable, StaleEpoch
from djamms_edge.edge.sync.lease import LeaseTiming
from djamms_edge.edge.sync.outbox import Outbox, OutboxItem
from djamms_edge.edge.sync.store import open_sync_db
from djamms_edge.shared.sqlite import Database

FAST = LeaseTiming(heartbeat_interval=0.05, retry_min=0.01, retry_max=0.04)


class FlakyHub:
    """Receives outbox items; down for the first ``down`` calls; dedupes by key like the hub must."""

    def __init__(self, down: int = 0, lose_answers: int = 0) -> None:
        self.down = down
        self.lose_answers = lose_answers  # apply the item, then fail as if the answer was lost
        self.calls = 0
        self.applied: list[str] = []
        self.everything = asyncio.Event()
        self.called = asyncio.Event()
        self.expect = 0

    async def send(self, item: OutboxItem) -> None:
        self.calls += 1
        self.called.set()
        if self.calls <= self.down:
            raise HubUnavailable("connection refused")
        if item.payload.get("bad"):
            raise HubRefused(400, "field 'videoId' is invalid")
        if item.key not in self.applied:
            self.applied.append(item.key)
        if self.lose_answers:
            self.lose_answers -= 1
            raise HubUnavailable("timeout after the hub applied it")
        if len(self.applied) >= self.expect:
            self.everything.set()


async def pump(outbox: Outbox, hub: FlakyHub, expect: int) -> None:
    hub.expect = expect
    task = asyncio.create_task(outbox.run(hub.send))
    try:
        await asyncio.wait_for(hub.everything.wait(), timeout=5)
        for _ in range(50):  # the pump marks the last item right after sending it
            if (await outbox.counts())["pending"] == 0:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_repeated_key_is_not_a_second_message(db: Database) -> None:
    outbox = Outbox(db, FAST)
    assert await outbox.put("played", "played:e1", {"entryId": "e1"}, epoch=3)
    assert not await outbox.put("played", "played:e1", {"entryId": "e1"}, epoch=3)
    assert [i.key for i in await outbox.pending()] == ["played:e1"]


async def test_delivers_in_order_once_after_an_outage_logging_once_each_way(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="djamms_edge.edge.sync.outbox")
    outbox = Outbox(db, FAST)
    keys = [f"played:e{n}" for n in range(5)]
    for key in keys:
        await outbox.put("played", key, {"entryId": key}, epoch=1)
    hub = FlakyHub(down=6)
    await pump(outbox, hub, expect=5)
    assert hub.applied == keys
    assert await outbox.counts() == {"pending": 0, "delivered": 5, "rejected": 0}
    outbox_lines = [r.getMessage() for r in caplog.records]
    assert sum("hub unavailable" in line for line in outbox_lines) == 1
    assert sum("answering again" in line for line in outbox_lines) == 1


async def test_a_lost_answer_is_resent_and_the_key_keeps_it_single(db: Database) -> None:
    outbox = Outbox(db, FAST)
    await outbox.put("now_playing", "np:e1:1", {"entryId": "e1"}, epoch=1)
    await outbox.put("played", "played:e1", {"entryId": "e1"}, epoch=1)
    hub = FlakyHub(lose_answers=1)
    await pump(outbox, hub, expect=2)
    assert hub.calls == 3  # the first item went twice
    assert hub.applied == ["np:e1:1", "played:e1"]


async def test_messages_survive_a_restart(tmp_path: Path) -> None:
    first = open_sync_db(tmp_path)
    await first.open()
    await Outbox(first, FAST).put("analysis", "analysis:abcdefghijk:full", {"videoId": "abcdefghijk"})
    await first.close()  # the box reboots before the hub was reachable

    second = open_sync_db(tmp_path)
    await second.open()
    try:
        outbox = Outbox(second, FAST)
        hub = FlakyHub()
        await pump(outbox, hub, expect=1)
        assert hub.applied == ["analysis:abcdefghijk:full"]
    finally:
        await second.close()


async def test_a_refused_message_is_set_aside_and_the_rest_flows(db: Database) -> None:
    outbox = Outbox(db, FAST)
    refused: list[tuple[str, HubRefused]] = []
    outbox.on_refused = lambda item, exc: refused.append((item.key, exc))
    await outbox.put("analysis", "analysis:bad", {"bad": True})
    await outbox.put("played", "played:e2", {"entryId": "e2"}, epoch=1)
    hub = FlakyHub()
    await pump(outbox, hub, expect=1)
    assert hub.applied == ["played:e2"]
    assert [key for key, _ in refused] == ["analysis:bad"]
    assert await outbox.counts() == {"pending": 0, "delivered": 1, "rejected": 1}


async def test_a_stale_epoch_reaches_the_lease_callback(db: Database) -> None:
    outbox = Outbox(db, FAST)
    fenced: list[int | None] = []
    outbox.on_refused = lambda item, exc: fenced.append(exc.current_epoch if isinstance(exc, StaleEpoch) else -1)
    await outbox.put("now_playing", "np:e1", {"entryId": "e1"}, epoch=1)
    done = asyncio.Event()

    async def send(item: OutboxItem) -> None:
        done.set()
        raise StaleEpoch("not the venue's master", current_epoch=2)

    task = asyncio.create_task(outbox.run(send))
    await asyncio.wait_for(done.wait(), 5)
    for _ in range(100):
        if fenced:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fenced == [2]


async def test_wake_cuts_a_long_backoff_short(db: Database) -> None:
    slow = LeaseTiming(heartbeat_interval=1, retry_min=30, retry_max=30)
    outbox = Outbox(db, slow, rng=lambda: 1.0)
    await outbox.put("played", "played:e1", {"entryId": "e1"})
    hub = FlakyHub(down=1)
    hub.expect = 1
    task = asyncio.create_task(outbox.run(hub.send))
    try:
        await asyncio.wait_for(hub.called.wait(), timeout=2)
        outbox.wake()  # e.g. the change feed reconnected
        await asyncio.wait_for(hub.everything.wait(), timeout=2)  # far sooner than the 15-30 s backoff
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_only_a_bounded_tail_of_delivered_items_is_kept(db: Database) -> None:
    outbox = Outbox(db, FAST, keep_delivered=3)
    for n in range(8):
        await outbox.put("played", f"played:e{n}", {"entryId": n})
    hub = FlakyHub()
    await pump(outbox, hub, expect=8)
    assert await outbox.counts() == {"pending": 0, "delivered": 3, "rejected": 0}
