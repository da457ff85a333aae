"""The shared SQLite access: writes are serialised and atomic, reads run beside them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from sqlite_utils.migrations import Migrations

from djamms_edge.shared.sqlite import Database

migrations = Migrations("test")


@migrations()
def m001_counter(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
    db.execute("INSERT INTO counter VALUES (1, 0)")


def _increment(conn: sqlite3.Connection) -> int:
    (value,) = conn.execute("SELECT value FROM counter WHERE id = 1").fetchone()
    conn.execute("UPDATE counter SET value = ? WHERE id = 1", (value + 1,))
    return value + 1


async def test_concurrent_read_modify_writes_lose_nothing(tmp_path: Path) -> None:
    first, second = Database(tmp_path / "t.db", migrations), Database(tmp_path / "t.db", migrations)
    await first.open()
    await second.open()
    try:
        # Two Database objects on one file behave like two processes: BEGIN IMMEDIATE serialises them.
        results = await asyncio.gather(*(db.write(_increment) for _ in range(100) for db in (first, second)))
        assert sorted(results) == list(range(1, 201))
        assert await first.read(lambda c: c.execute("SELECT value FROM counter").fetchone()[0]) == 200
    finally:
        await first.close()
        await second.close()


async def test_a_failed_write_is_rolled_back(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.db", migrations)
    await db.open()
    try:

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE counter SET value = 99")
            raise ValueError("rule broken")

        with pytest.raises(ValueError):
            await db.write(half_then_fail)
        assert await db.read(lambda c: c.execute("SELECT value FROM counter").fetchone()[0]) == 0
    finally:
        await db.close()


def _synchronous(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


@pytest.mark.parametrize(("options", "level"), [({}, 1), ({"synchronous": "NORMAL"}, 1),
                                               ({"synchronous": "FULL"}, 2)])
async def test_synchronous_is_normal_unless_asked(tmp_path: Path, options: dict[str, Any], level: int) -> None:
    # NORMAL in WAL mode may lose the last commits on power loss (fine for a cache that can be rebuilt);
    # FULL syncs the WAL at every commit, for data acknowledged to someone else.
    db = Database(tmp_path / "t.db", migrations, **options)
    await db.open()
    try:
        assert await db.write(_synchronous) == level
        assert await db.read(_synchronous) == level
    finally:
        await db.close()


async def test_one_write_may_skip_the_sync_and_the_next_syncs_again(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.db", migrations, synchronous="FULL")
    await db.open()
    try:
        assert await db.write(_synchronous, synchronous="NORMAL") == 1
        assert await db.write(_synchronous) == 2
        assert await db.write(_increment, synchronous="NORMAL") == 1  # and the write is kept
        assert await db.read(lambda c: c.execute("SELECT value FROM counter").fetchone()[0]) == 1
    finally:
        await db.close()
