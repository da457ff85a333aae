"""Store-level behaviour every backend must share (run through the same backend fixture as the hub tests)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.hub.auth import new_link_secret
from djamms_edge.hub.seed import DEMO_TRACKS, seed_demo
from djamms_edge.hub.store.base import (
    DeviceError,
    HubStore,
    InvalidMagicLink,
    PaidRequest,
    RegistryTimings,
    RequestOutcome,
    RequestRules,
    Song,
    StoredExecution,
    UnknownVenue,
)
from djamms_edge.hub.store.sqlite import SqliteStore
from tests.hub.conftest import make_store

TIMINGS = RegistryTimings(stale_ms=120_000, expire_ms=86_400_000)
NOW = 1_800_000_000_000


@pytest.fixture
async def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[HubStore]:
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    opened = make_store(backend, tmp_path, retain_changes=1000, pg_url=pg_url)
    await opened.open()
    try:
        await opened.create_venue("v", "Venue", NOW)
        yield opened
    finally:
        await opened.close()


async def test_a_cancelled_caller_strands_no_other_write(store: HubStore) -> None:
    await store.register_player("v", "box", "ua", NOW, TIMINGS)
    beats = [asyncio.ensure_future(store.heartbeat("v", "box", NOW + i, TIMINGS)) for i in range(30)]
    await asyncio.sleep(0)
    beats[0].cancel()
    beats[7].cancel()
    done = await asyncio.wait_for(asyncio.gather(*beats, return_exceptions=True), timeout=10)
    answers = [d for d in done if not isinstance(d, BaseException)]
    assert len(answers) >= 28 and all(a.status == "updated" for a in answers)


async def test_failing_writes_fail_alone(store: HubStore) -> None:
    _, token_hash = new_link_secret()
    await store.create_magic_link(token_hash, "a@example.com", "https://x.example/", NOW + 60_000, NOW)
    attempts = await asyncio.gather(
        *(store.consume_magic_link(token_hash, NOW, auto_create=True, new_user_id=f"user-{i}") for i in range(10)),
        store.create_playlist("v", "still made", NOW),
        return_exceptions=True,
    )
    users = [a for a in attempts[:10] if not isinstance(a, BaseException)]
    assert len(users) == 1
    assert all(isinstance(a, InvalidMagicLink) for a in attempts[:10] if isinstance(a, BaseException))
    assert [p.name for p in await store.list_playlists("v")] == ["still made"]


async def test_housekeeping_drops_only_what_has_expired(store: HubStore) -> None:
    _, fresh = new_link_secret()
    _, old = new_link_secret()
    await store.create_magic_link(fresh, "a@example.com", "https://x.example/", NOW + 60_000, NOW)
    await store.create_magic_link(old, "b@example.com", "https://x.example/", NOW - 2 * 86_400_000, NOW)
    assert await store.housekeeping(NOW) == 1
    await store.consume_magic_link(fresh, NOW, auto_create=True, new_user_id="user-1")


async def test_housekeeping_drops_device_errors_after_30_days(store: HubStore) -> None:
    day = 86_400_000
    for key, received in (("old", NOW - 31 * day), ("recent", NOW - 29 * day)):
        await store.report_device_error(DeviceError("v", "box", key, key, None, received), received)
    assert await store.housekeeping(NOW) == 1
    assert [e["message"] for e in await store.device_errors("v", 10)] == ["recent"]


async def test_executions_are_kept_for_their_reader_bounded_and_expired(store: HubStore) -> None:
    def execution(n: int, reader: str = "device:v/box") -> StoredExecution:
        return StoredExecution(f"{n:020x}", "player-registry", reader, f'{{"n": {n}}}', NOW + n, NOW + 3_600_000)

    for n in range(5):
        await store.keep_execution(execution(n), keep_per_reader=3)
    await store.keep_execution(execution(9, "user:someone"), keep_per_reader=3)
    found = [await store.get_execution("player-registry", f"{n:020x}", "device:v/box", NOW) for n in range(5)]
    assert found == [None, None, '{"n": 2}', '{"n": 3}', '{"n": 4}']  # the newest three
    assert await store.get_execution("player-registry", f"{4:020x}", "user:someone", NOW) is None  # not theirs
    assert await store.get_execution("magic-link", f"{4:020x}", "device:v/box", NOW) is None
    assert await store.get_execution("player-registry", f"{4:020x}", "device:v/box", NOW + 3_600_000) is None
    assert await store.housekeeping(NOW + 3_600_000) == 4  # expired rows go
    assert await store.get_execution("player-registry", f"{9:020x}", "user:someone", NOW) is None


async def test_changes_since_walks_the_log_in_order(store: HubStore) -> None:
    playlist = await store.create_playlist("v", "p", NOW)
    for i in range(3):
        await store.add_track(playlist.playlist_id, Song(f"aaaaaaaaaa{i}", f"t{i}", "a", 100), NOW)
    await store.activate_playlist("v", playlist.playlist_id, NOW)
    await store.register_player("v", "box", "ua", NOW, TIMINGS)
    first = await store.changes_since("v", 0, 1)
    assert [c.version for c in first.changes] == [1] and first.more
    rest = await store.changes_since("v", 1, 100)
    assert [c.data["type"] for c in rest.changes] == ["master"] and not rest.more
    assert (await store.changes_since("v", rest.version, 100)).changes == ()


async def test_seeding_the_demo_twice_changes_nothing(store: HubStore) -> None:
    first = await seed_demo(store, "demo-venue", NOW)
    version = (await store.queue_snapshot("demo-venue")).version
    second = await seed_demo(store, "demo-venue", NOW + 1000)
    assert second.playlist_id == first.playlist_id
    assert second.admin.user_id == first.admin.user_id and second.staff.venue_id == "demo-venue"
    assert [(u.email, u.role) for u in await store.list_users("demo-venue")] == [
        ("owner@demo-venue.example", "owner"), ("staff@demo-venue.example", "staff")]
    assert len(await store.list_playlists("demo-venue")) == 1
    snapshot = await store.queue_snapshot("demo-venue")
    assert snapshot.version == version and len(snapshot.main) == len(DEMO_TRACKS)


def _level(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


async def test_the_sqlite_hub_syncs_every_commit_but_heartbeat_batches(tmp_path: Path) -> None:
    """An acknowledged paid request must survive power loss: synchronous=FULL, not the shared NORMAL.

    Only a batch of heartbeats alone (durable=False: losing one costs nothing) commits without a sync."""
    store = SqliteStore(tmp_path / "hub.db")
    await store.open()
    try:
        assert await store._write(_level) == 2  # FULL
        assert await store._write(_level, durable=False) == 1  # NORMAL
        # Writes queued together share one transaction: one durable write among them makes the whole batch sync.
        _, heartbeat, paid = await asyncio.gather(store._write(_level), store._write(_level, durable=False),
                                                  store._write(_level))
        assert (heartbeat, paid) == (2, 2)
        first, second = await asyncio.gather(store._write(_level, durable=False), store._write(_level, durable=False))
        assert (first, second) == (1, 1)
        # The real heartbeat is one of those.
        await store.create_venue("v", "Venue", NOW)
        await store.register_player("v", "box", "ua", NOW, TIMINGS)
        levels = []
        real_write = store._db.write

        async def spy(fn: Any, *, synchronous: str | None = None) -> Any:
            levels.append(synchronous)
            return await real_write(fn, synchronous=synchronous)  # type: ignore[arg-type]

        store._db.write = spy  # type: ignore[method-assign]
        assert (await store.heartbeat("v", "box", NOW + 1, TIMINGS)).status == "updated"
        await store.submit_paid_request(PaidRequest("v", Song("dQw4w9WgXcQ", "t", "a", 100), "pay-1", None, "ip"),
                                        RequestRules(600, 3, 3_600_000), NOW + 2)
        assert levels == ["NORMAL", "FULL"]
    finally:
        await store.close()


def _paid(payment: str, artist: str = "Band", *, venue: str = "v", duration: float = 200,
          request_id: str | None = None) -> PaidRequest:
    return PaidRequest(venue, Song("dQw4w9WgXcQ", "Song", artist, duration), payment, "patron", "ip", request_id)


def outcomes(*gathered: RequestOutcome | BaseException) -> list[RequestOutcome]:
    """Answers from ``gather(..., return_exceptions=True)`` that must all be answers, not exceptions."""
    for answer in gathered:
        assert isinstance(answer, RequestOutcome), repr(answer)
    return [answer for answer in gathered if isinstance(answer, RequestOutcome)]


async def test_paid_requests_that_arrive_together_get_the_answers_of_one_at_a_time(store: HubStore) -> None:
    """Many paid requests at once (on SQLite: one statement for the lot) answered as if they came one by one:
    a paymentId seen before is a replay, the artist limit holds, an unknown venue or a failing row fails alone,
    and each accepted one joins the priority queue with its change in the feed."""
    rules = RequestRules(max_duration_s=300, artist_limit=3, artist_window_ms=3_600_000)
    before = await store.submit_paid_request(_paid("pay-old"), rules, NOW)
    version = (await store.queue_snapshot("v")).version
    # On SQLite these queue up together and go to the store as one batch.
    first, old, *gathered_band, long, nowhere, other = await asyncio.gather(
        store.submit_paid_request(_paid("pay-0", "Other"), rules, NOW + 1),
        store.submit_paid_request(_paid("pay-old", venue="nowhere"), rules, NOW + 2),  # a replay, venue or not
        store.submit_paid_request(_paid("pay-1"), rules, NOW + 3),
        store.submit_paid_request(_paid("pay-1"), rules, NOW + 4),  # the same payment again
        store.submit_paid_request(_paid("pay-2", "  band "), rules, NOW + 5),
        store.submit_paid_request(_paid("pay-3", "BAND"), rules, NOW + 6),
        store.submit_paid_request(_paid("pay-long", duration=301), rules, NOW + 7),
        store.submit_paid_request(_paid("pay-nowhere", venue="nowhere"), rules, NOW + 8),
        store.submit_paid_request(_paid("pay-4", "Other"), rules, NOW + 9),
        return_exceptions=True,
    )
    assert isinstance(nowhere, UnknownVenue)
    first, old, long, other = outcomes(first, old, long, other)
    band = outcomes(*gathered_band)
    assert (old.request_id, old.replayed, old.accepted) == (before.request_id, True, True)
    once, again = band[:2]
    assert once.request_id == again.request_id and sorted([once.replayed, again.replayed]) == [False, True]
    # With the one stored before, "Band" may have 3: of the three new payments for it, one is refused.
    new_band = [o for o in band if not o.replayed]
    assert sorted(o.accepted for o in new_band) == [False, True, True]
    assert [o.error for o in new_band if not o.accepted] == ["Too many requests for this artist in the last 60 minutes"]
    assert (long.accepted, long.status, long.error) == (False, "refund_due", "Song duration exceeds 5 minutes")
    accepted = {o.request_id for o in (first, *new_band, other) if o.accepted}
    snapshot = await store.queue_snapshot("v")
    assert {e.request_id for e in snapshot.priority} == accepted | {before.request_id}
    assert snapshot.version == version + len(accepted)
    feed = await store.changes_since("v", version, 100)
    assert [c.version for c in feed.changes] == list(range(version + 1, version + len(accepted) + 1))
    assert [c.data for c in feed.changes] == [{"type": "entry_added", "entry": e.to_json()}
                                              for e in snapshot.priority[1:]]
    stored = {r.payment_id: r.status for r in await store.list_requests("v", None, 100)}
    assert stored == {"pay-old": "pending", "pay-0": "pending", "pay-1": once.status, "pay-2": band[2].status,
                      "pay-3": band[3].status, "pay-long": "refund_due", "pay-4": "pending"}
    # A row the database refuses (its request id is another request's) fails alone; those around it pass.
    _, gathered_left, taken, gathered_right = await asyncio.gather(
        store.submit_paid_request(_paid("pay-5", "Fifth"), rules, NOW + 10),
        store.submit_paid_request(_paid("pay-6", "Sixth"), rules, NOW + 11),
        store.submit_paid_request(_paid("pay-taken", request_id=before.request_id), rules, NOW + 12),
        store.submit_paid_request(_paid("pay-7", "Seventh"), rules, NOW + 13),
        return_exceptions=True,
    )
    assert isinstance(taken, Exception)
    left, right = outcomes(gathered_left, gathered_right)
    assert left.accepted and right.accepted
    assert {"pay-5", "pay-6", "pay-7"} <= {r.payment_id for r in await store.list_requests("v", None, 100)}


async def test_the_sqlite_hub_decides_paid_requests_that_arrive_together_in_one_statement(tmp_path: Path) -> None:
    """Why the SQLite store is fast under load: the paid requests of a batch reach SQLite as one INSERT, which
    still decides them in the order they came (the artist's fourth is refused; the queue keeps their order)."""
    store = SqliteStore(tmp_path / "hub.db")
    await store.open()
    try:
        await store.create_venue("v", "Venue", NOW)
        rules = RequestRules(max_duration_s=300, artist_limit=3, artist_window_ms=3_600_000)
        statements: list[str] = []
        real_write = store._db.write

        async def spy(fn: Any, *, synchronous: str | None = None) -> Any:
            def traced(conn: sqlite3.Connection) -> Any:
                conn.set_trace_callback(statements.append)
                try:
                    return fn(conn)
                finally:
                    conn.set_trace_callback(None)
            return await real_write(traced, synchronous=synchronous)  # type: ignore[arg-type]

        store._db.write = spy  # type: ignore[method-assign]
        artists = ["A", "B", "A", "C", "A", "A", "B", *(f"artist {i}" for i in range(14))]
        outcomes = await asyncio.gather(*(store.submit_paid_request(_paid(f"pay-{i}", artist), rules, NOW + i)
                                          for i, artist in enumerate(artists)))
        assert [o.accepted for o in outcomes] == [a != "A" or artists[:i].count("A") < 3 for i, a in enumerate(artists)]
        # SQLite traces the INSERT again for each statement of its trigger: count distinct texts.
        inserts = sorted({s for s in statements if s.startswith("INSERT")}, key=len)
        assert [(s.split(" VALUES ")[0], s.count("'pay-")) for s in inserts] == [
            ("INSERT INTO paid_request_steps", len(artists))]
        snapshot = await store.queue_snapshot("v")
        assert [e.request_id for e in snapshot.priority] == [o.request_id for o in outcomes if o.accepted]
    finally:
        await store.close()


async def test_the_sqlite_writer_gets_the_gil_sooner_only_while_writing(tmp_path: Path) -> None:
    """While write batches run, the event loop's thread gives the GIL up to the writer thread after 0.2 ms;
    afterwards the interpreter's own switch interval is back (nothing else pays for the extra switches)."""
    store = SqliteStore(tmp_path / "hub.db")
    await store.open()
    default = sys.getswitchinterval()
    try:
        seen = await asyncio.gather(*(store._write(lambda conn: sys.getswitchinterval()) for _ in range(3)))
        assert seen == [pytest.approx(0.0002)] * 3
        assert sys.getswitchinterval() == default
    finally:
        await store.close()
    assert sys.getswitchinterval() == default


async def test_stored_identities_are_renormalised_by_the_migration(backend: str, tmp_path: Path,
                                                                   request: pytest.FixtureRequest) -> None:
    """Rows written before emails had one normal form (or artists one key) are brought to it, both stores."""
    rows = [
        "INSERT INTO venues (venue_id, name, created_at_ms) VALUES ('v1', 'v1', 0)",
        "INSERT INTO users (user_id, email, role, created_at_ms) VALUES ('u1', 'Boss@ICORP.com', 'admin', 0)",
        "INSERT INTO requests (request_id, venue_id, payment_id, client_address, video_id, title, artist, artist_key,"
        " duration, status, created_at_ms) VALUES ('r1', 'v1', 'p1', 'c', 'dQw4w9WgXcQ', 't', 'АВВА', 'авва', 1,"
        " 'pending', 0)",
    ]
    if backend == "sqlite":
        import sqlite_utils

        from djamms_edge.hub.store.sqlite_schema import m008_normal_identities

        store = SqliteStore(tmp_path / "old.db")
        await store.open()
        await store.close()
        db = sqlite_utils.Database(tmp_path / "old.db")
        for row in rows:
            db.execute(row)
        m008_normal_identities(db)
        db.conn.commit()
        found = [tuple(db.execute(q).fetchone())
                 for q in ("SELECT email FROM users", "SELECT artist_key FROM requests")]
        db.close()
    else:
        import asyncpg

        from djamms_edge.hub.store.pg_schema import _renormalise_identities

        conn = await asyncpg.connect(request.getfixturevalue("pg_url"))
        try:
            for row in rows:
                await conn.execute(row)
            await _renormalise_identities(conn)
            found = [tuple(await conn.fetchrow(q)) for q in ("SELECT email FROM users",
                                                              "SELECT artist_key FROM requests")]
        finally:
            await conn.close()
    assert found == [("boss@icorp.com",), ("abba",)]
