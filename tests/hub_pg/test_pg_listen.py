"""LISTEN/NOTIFY: changes announced by any connection wake listeners; a lost connection is re-established."""

from __future__ import annotations

import asyncio

import asyncpg

from djamms_edge.hub.store.pg_listen import CHANNEL, ChangeListener
from djamms_edge.hub.store.postgres import PostgresStore


async def _kill_other_backends(conn: asyncpg.Connection) -> int:
    """What a PostgreSQL restart or a dropped network does to a hub's connections."""
    killed = await conn.fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return len(killed)


async def test_listener_survives_a_dropped_connection_and_reports_the_gap(pg_url: str) -> None:
    changed: asyncio.Queue[str] = asyncio.Queue()
    gap = asyncio.Event()
    listener = ChangeListener(pg_url, changed.put_nowait, gap.set)
    await listener.start()
    other = await asyncpg.connect(pg_url)
    try:
        await other.execute("SELECT pg_notify($1, 'venue-a')", CHANNEL)
        assert await asyncio.wait_for(changed.get(), 5) == "venue-a"

        assert await _kill_other_backends(other) == 1
        await asyncio.wait_for(gap.wait(), 10)

        await other.execute("SELECT pg_notify($1, 'venue-b')", CHANNEL)
        assert await asyncio.wait_for(changed.get(), 5) == "venue-b"
        assert not listener.failed.is_set()
    finally:
        await other.close()
        await listener.close()


async def test_store_wakes_every_feed_waiter_after_a_listen_gap(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    other = await asyncpg.connect(pg_url)
    try:
        waiting = [store.change_event("venue-a"), store.change_event("venue-b")]
        await _kill_other_backends(other)  # the pool's connections go too; the pool replaces them
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in waiting)), 10)
        # The store still works after losing every connection.
        assert await store.create_venue("venue-a", "A", 0)
    finally:
        await other.close()
        await store.close()
