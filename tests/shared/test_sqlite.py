"""The shared SQLite access: writes are serialised and atomic, reads run beside them."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from djamms_edge.shared.sqlite import KEEP_DAMAGED, Database, Migrations, is_storage_error
from tests.damage import DAMAGE, garbage_header
from tests.small_disk import fill, small_disk

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


# --- damaged files (an SD card) ---------------------------------------------------------------------


async def _filled(path: Path, *, move_damaged_aside: bool = True) -> Database:
    db = Database(path, migrations, move_damaged_aside=move_damaged_aside)
    await db.open()
    await db.write(lambda c: c.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)"))
    await db.write(lambda c: c.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {n} " * 20,) for n in
                                                                                  range(2000)]))
    return db


@pytest.mark.parametrize("damage", sorted(DAMAGE))
async def test_a_damaged_file_is_moved_aside_and_started_afresh(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "state.db"
    await (await _filled(path)).close()
    DAMAGE[damage](path)
    original = path.read_bytes()

    db = Database(path, migrations, move_damaged_aside=True)
    await db.open()
    try:
        assert db.damaged is not None
        assert db.damaged.kept_as.parent == tmp_path and db.damaged.kept_as.name.startswith("state.db.damaged-")
        assert db.damaged.kept_as.read_bytes() == original  # kept as it was, for inspection
        # A fresh, migrated, working file:
        await db.write(_increment)
        assert await db.read(lambda c: c.execute("SELECT value FROM counter").fetchone()[0]) == 1
        assert await db.read(lambda c: c.execute("PRAGMA quick_check").fetchone()[0]) == "ok"
    finally:
        await db.close()


async def test_a_sound_file_is_left_alone_and_damage_is_not_moved_aside_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    await (await _filled(path)).close()
    db = Database(path, migrations, move_damaged_aside=True)
    await db.open()
    assert db.damaged is None
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM notes").fetchone()[0]) == 2000
    await db.close()

    garbage_header(path)
    strict = Database(path, migrations)  # the hub's paid requests: never moved aside behind anyone's back
    with pytest.raises(sqlite3.DatabaseError):
        await strict.open()
    await strict.close()
    assert path.exists() and not await asyncio.to_thread(lambda: list(tmp_path.glob("*.damaged-*")))


async def test_only_the_last_few_damaged_copies_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    for _ in range(KEEP_DAMAGED + 2):
        await (await _filled(path)).close()
        garbage_header(path)
        db = Database(path, migrations, move_damaged_aside=True)
        await db.open()
        assert db.damaged is not None
        await db.close()
    copies = await asyncio.to_thread(lambda: list(tmp_path.glob("state.db.damaged-*")))
    kept = [p for p in copies if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == KEEP_DAMAGED


async def test_a_migration_added_later_is_applied_once_at_the_next_open(tmp_path: Path) -> None:
    """The file is checked for pending migrations before sqlite-utils is imported to apply them: a file that is
    current is opened as it is, one that lacks a newer migration gets it (an upgraded box), each exactly once."""
    grown = Migrations("test")
    grown()(m001_counter)
    for _ in range(2):
        db = Database(tmp_path / "t.db", migrations)
        await db.open()
        await db.write(_increment)
        await db.close()

    @grown()
    def m002_label(db: sqlite_utils.Database) -> None:
        db.execute("ALTER TABLE counter ADD COLUMN label TEXT NOT NULL DEFAULT 'counted'")

    conn = sqlite3.connect(tmp_path / "t.db")
    assert (migrations.pending(conn), grown.pending(conn)) == ([], ["m002_label"])
    conn.close()
    for _ in range(2):
        db = Database(tmp_path / "t.db", grown)
        await db.open()
        await db.close()
    conn = sqlite3.connect(tmp_path / "t.db")
    assert conn.execute("SELECT value, label FROM counter").fetchall() == [(2, "counted")]
    assert conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id").fetchall() == [("m001_counter",),
                                                                                          ("m002_label",)]
    conn.close()


async def test_a_full_disk_is_a_storage_error_and_the_write_watch_hears_failures_and_real_writes(
    tmp_path: Path,
) -> None:
    """What the daemon's disk-trouble watch relies on, on a real full file system: SQLITE_FULL counts as the disk's
    trouble (a broken rule does not), a failed write is heard, and only a write that changed something ends it."""
    with small_disk(tmp_path / "disk", "2m") as disk:
        db = Database(disk / "x.db")
        await db.open()
        heard: list[BaseException | None] = []
        db.on_write = lambda _db, exc: heard.append(exc)
        try:
            await db.write(lambda c: c.execute("CREATE TABLE t (x UNIQUE)"))
            await db.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
            assert heard == [None]
            with pytest.raises(sqlite3.IntegrityError) as broken_rule:
                await db.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
            assert not is_storage_error(broken_rule.value)
            filler = fill(disk)
            with pytest.raises(sqlite3.OperationalError) as full:
                await db.write(lambda c: c.execute("INSERT INTO t VALUES (?)", ("x" * 20_000,)))
            assert is_storage_error(full.value) and heard[-1] is full.value
            await db.write(lambda c: c.execute("UPDATE t SET x = 2 WHERE x = 99"))  # changes nothing: proves nothing
            assert heard[-1] is full.value
            assert await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 1  # reads go on
            filler.unlink()
            await db.write(lambda c: c.execute("INSERT INTO t VALUES (?)", ("x" * 20_000,)))
            assert heard[-1] is None
        finally:
            await db.close()
    assert is_storage_error(OSError(errno.EROFS, "Read-only file system"))
    assert not is_storage_error(OSError(errno.ENOENT, "No such file or directory"))
