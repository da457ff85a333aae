"""The queue replica on real SQLite: snapshots, ordered changes, and what plays next."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.edge.sync.replica import NeedSnapshot, Replica, ReplicaEntry, next_entry, upcoming
from djamms_edge.edge.sync.store import open_sync_db
from djamms_edge.shared.sqlite import Database

VENUE = "v1"


def entry(entry_id: str, queue: str = "main", video: str = "aaaaaaaaaaa", **extra: Any) -> dict[str, Any]:
    return {
        "entryId": entry_id,
        "queue": queue,
        "videoId": video,
        "title": f"title {entry_id}",
        "artist": "artist",
        "duration": 200.0,
        "isRequest": queue == "priority",
        **extra,
    }


def snapshot(version: int, priority: Sequence[str] = (), main: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    return {
        "venueId": VENUE,
        "version": version,
        "epoch": 2,
        "master": {"deviceId": "box-b", "epoch": 2},
        "nowPlaying": None,
        "priorityQueue": [entry(e, "priority") for e in priority],
        "mainQueue": [entry(e) for e in main],
        **extra,
    }


async def ids(replica: Replica) -> tuple[list[str], list[str]]:
    view = await replica.view()
    return [e.entry_id for e in view.priority], [e.entry_id for e in view.main]


async def test_a_snapshot_replaces_everything(db: Database) -> None:
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(5, ["p1"], ["m1", "m2"]))
    await replica.load_snapshot(snapshot(9, [], ["m3"]))
    assert await ids(replica) == ([], ["m3"])
    view = await replica.view()
    assert (view.version, view.master_device, view.epoch) == (9, "box-b", 2)


async def test_changes_apply_in_version_order(db: Database) -> None:
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(5, [], ["m1", "m2"]))
    version = await replica.apply(
        [
            {"version": 6, "type": "entry_added", "entry": entry("p1", "priority")},
            {"version": 7, "type": "entry_removed", "entryId": "m1"},
            {"version": 8, "type": "entry_added", "entry": entry("m3")},
            {"version": 9, "type": "now_playing", "nowPlaying": entry("m1") | {"deviceId": "box-b"}},
            {"version": 10, "type": "master", "master": {"deviceId": "box-c", "epoch": 3}},
        ]
    )
    assert version == 10
    assert await ids(replica) == (["p1"], ["m2", "m3"])
    view = await replica.view()
    assert view.now_playing is not None and view.now_playing["entryId"] == "m1"
    assert (view.master_device, view.epoch) == ("box-c", 3)


async def test_a_change_seen_twice_is_applied_once(db: Database) -> None:
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(5, [], ["m1"]))
    added = {"version": 6, "type": "entry_added", "entry": entry("m2")}
    await replica.apply([added])
    assert await replica.apply([added]) == 6
    assert await ids(replica) == ([], ["m1", "m2"])


@pytest.mark.parametrize(
    "changes",
    [
        [{"version": 7, "type": "entry_removed", "entryId": "m1"}],  # 6 is missing
        [{"version": 6, "type": "entry_removed", "entryId": "m1"}, {"version": 7, "type": "venue_renamed"}],
        [{"version": 6, "type": "entry_removed", "entryId": "m1"}, {"version": 7, "type": "entry_added"}],
    ],
    ids=["gap", "unknown type", "malformed"],
)
async def test_a_gap_unknown_or_malformed_change_asks_for_a_snapshot_and_changes_nothing(
    db: Database, changes: list[dict[str, Any]]
) -> None:
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(5, [], ["m1"]))
    with pytest.raises(NeedSnapshot):
        await replica.apply(changes)
    assert await ids(replica) == ([], ["m1"])
    assert await replica.version() == 5


async def test_changes_from_the_first_version_build_the_replica_from_nothing(db: Database) -> None:
    replica = Replica(db, VENUE)
    await replica.apply([{"version": 1, "type": "main_replaced", "entries": [entry("m1"), entry("m2")]}])
    assert await ids(replica) == ([], ["m1", "m2"])
    with pytest.raises(NeedSnapshot):
        await Replica(db, "other-venue").apply([{"version": 4, "type": "entry_removed", "entryId": "x"}])


async def test_paid_entries_play_before_the_rotation(db: Database) -> None:
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(5, ["p1", "p2"], ["m1", "m2"]))
    assert [e.entry_id for e in await replica.upcoming(4)] == ["p1", "p2", "m1", "m2"]


async def test_what_this_box_started_is_not_offered_again_until_the_hub_confirms(db: Database) -> None:
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(5, ["p1"], ["m1", "m2"]))
    first = next_entry(await replica.view())
    assert first is not None and first.entry_id == "p1"
    await db.write(lambda conn: replica.consume_in(conn, first))
    # The hub has not seen our report yet (offline, or just slower than us): a fresh snapshot still lists p1.
    await replica.load_snapshot(snapshot(6, ["p1"], ["m1", "m2"]))
    after = next_entry(await replica.view())
    assert after is not None and after.entry_id == "m1"
    # Once the hub took p1 off the queue the mark is dropped.
    await replica.apply([{"version": 7, "type": "entry_removed", "entryId": "p1"}])
    assert "p1" not in (await replica.view()).consumed


async def test_offline_rotation_wraps_least_recently_played_first_under_new_ids(db: Database) -> None:
    clock = iter(range(1000, 100000, 10))
    replica = Replica(db, VENUE, clock=lambda: next(clock))
    await replica.load_snapshot(snapshot(5, [], ["m1", "m2", "m3"]))
    played: list[ReplicaEntry] = []
    for _ in range(7):
        chosen = next_entry(await replica.view())
        assert chosen is not None
        played.append(chosen)
        await db.write(lambda conn, e=chosen: replica.consume_in(conn, e))  # type: ignore[misc]
    sources = [e.source_id or e.entry_id for e in played]
    assert sources == ["m1", "m2", "m3", "m1", "m2", "m3", "m1"]
    assert len({e.entry_id for e in played}) == 7  # each play is its own history record
    assert all(e.entry_id.startswith("local-") for e in played[3:])
    assert all(e.data["entryId"] == e.entry_id for e in played)


async def test_an_empty_queue_offers_nothing(db: Database) -> None:
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(1))
    assert next_entry(await replica.view()) is None
    assert upcoming(await replica.view(), 3) == []


async def test_the_replica_survives_a_restart(tmp_path: Path) -> None:
    first = open_sync_db(tmp_path)
    await first.open()
    await Replica(first, VENUE).load_snapshot(snapshot(5, ["p1"], ["m1"]))
    await first.close()
    second = open_sync_db(tmp_path)
    await second.open()
    try:
        assert await ids(Replica(second, VENUE)) == (["p1"], ["m1"])
    finally:
        await second.close()


async def test_a_wrapped_rotation_offers_the_same_ids_until_something_plays(db: Database) -> None:
    # The player compares entries on every re-plan: changing ids would throw away its prefetch.
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(5, [], ["m1", "m2"]))
    for entry_id in ("m1", "m2"):
        await db.write(lambda conn, e=entry_id: replica.consume_in(conn, ReplicaEntry(e, "main", {})))  # type: ignore[misc]
    first, again = await replica.upcoming(3), await replica.upcoming(3)
    assert [e.entry_id for e in first] == [e.entry_id for e in again]
    assert len({e.entry_id for e in first}) == 3
    await db.write(lambda conn: replica.consume_in(conn, first[0]))
    assert (await replica.upcoming(1))[0].entry_id != first[0].entry_id


async def test_banned_songs_leave_the_rotation_but_paid_requests_still_play(db: Database) -> None:
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(5, ["p1"], ["m1", "m2", "m3"]))
    # m2 by a banned artist (folded like the hub folds it), m3 a video flagged explicit while those are off.
    await replica.apply([
        {"version": 6, "type": "entry_removed", "entryId": "m2"},
        {"version": 7, "type": "entry_added", "entry": entry("m2", artist="Banned  BAND", video="bbbbbbbbbbb")},
        {"version": 8, "type": "entry_removed", "entryId": "m3"},
        {"version": 9, "type": "entry_added", "entry": entry("m3", video="ccccccccccc")},
        {"version": 10, "type": "rules", "rules": {"allowExplicit": False, "marks": [
            {"markId": "k1", "kind": "ban_artist", "value": "banned band"},
            {"markId": "k2", "kind": "explicit", "value": "ccccccccccc"},
            {"markId": "k3", "kind": "ban_video", "value": "aaaaaaaaaaa"},
        ]}},
    ])
    # p1 (video aaaaaaaaaaa, banned after it was paid for) still plays; m1 (same video) and m2, m3 do not.
    assert [e.entry_id for e in await replica.upcoming(3)] == ["p1"]
    await replica.apply([{"version": 11, "type": "rules", "rules": {"allowExplicit": True, "marks": []}}])
    assert [e.entry_id for e in await replica.upcoming(4)] == ["p1", "m1", "m2", "m3"]
    # A snapshot carries the rules too (a fresh box, or one that fell behind the log).
    banned = {"marks": [{"kind": "ban_video", "value": "aaaaaaaaaaa"}]}
    await replica.load_snapshot(snapshot(12, [], ["m1"], rules=banned))
    assert await replica.upcoming(2) == []


async def test_staff_play_next_goes_to_the_head_and_skip_changes_nothing(db: Database) -> None:
    replica = Replica(db, VENUE)
    await replica.load_snapshot(snapshot(5, ["p1"], ["m1"]))
    await replica.apply([
        {"version": 6, "type": "entry_added", "entry": entry("s1", "priority"), "at": "head"},
        {"version": 7, "type": "skip", "entryId": "m0", "at": 123},
    ])
    assert [e.entry_id for e in await replica.upcoming(3)] == ["s1", "p1", "m1"]
    assert (await replica.view()).version == 7
