"""SQLite for asyncio code: one writer thread, reads in a small pool, WAL.

Every write runs on the single writer thread inside ``BEGIN IMMEDIATE``, so a
read-modify-write (check a rule, then insert) is atomic against every other
writer in this process *and* in other processes sharing the file. Reads use
their own connections in worker threads; WAL lets them run while a write is in
progress. Nothing here touches the event loop thread.

A ``Database`` opened with ``move_damaged_aside=True`` (the edge's files, which can be rebuilt) checks
the file at open: one that SQLite calls corrupt or not a database is renamed aside (kept for
inspection) and a fresh one is created, so a damaged SD card costs the box its history, not its music.
``damaged`` then says what happened and the owner rebuilds what it can. Such a file that the disk refuses to open
for writing (full: SQLite cannot even make its -shm; read-only) is opened read-only instead, as it is on disk
(``read_only`` says why): a box restarted on a full card reads its queue, history and cache index and plays, and
its writes fail as storage errors (``is_storage_error``), which the daemon's writers go on without.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    import sqlite_utils
    import sqlite_utils.migrations

T = TypeVar("T")
Migration = TypeVar("Migration", bound="Callable[[sqlite_utils.Database], None]")

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
# NORMAL (in WAL mode): a power cut may lose the last commits, never corrupt the file; right for the
# edge's replica and cache, which can be rebuilt. FULL syncs the WAL at every commit: for data that was
# acknowledged to someone else (the hub's paid requests).
Synchronous = Literal["NORMAL", "FULL"]


def connect(path: Path, synchronous: Synchronous = "NORMAL") -> sqlite3.Connection:
    """A connection configured the way every part of the project expects."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    set_synchronous(conn, synchronous)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def connect_read_only(path: Path) -> sqlite3.Connection:
    """The file as it is on disk, never written: immutable (no lock, no -shm; a -wal left by a crash is not read,
    so its last commits are not seen). Writes fail with SQLITE_READONLY."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def set_synchronous(conn: sqlite3.Connection, synchronous: Synchronous) -> None:
    """Outside a transaction only: SQLite refuses to change the safety level inside one."""
    if synchronous not in ("NORMAL", "FULL"):  # it is spliced into the statement
        raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
    conn.execute(f"PRAGMA synchronous={synchronous}")


def run_in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` inside BEGIN IMMEDIATE; commit on success, roll back on any error.

    A full disk, an I/O error or a lock timeout may make SQLite roll the transaction back itself; the
    error that did it is what the caller sees (not "cannot rollback - no transaction is active")."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


class Migrations:
    """A named, ordered set of schema migrations, registered as sqlite-utils' are (``@migrations()``) and applied
    by sqlite-utils into its own ``_sqlite_migrations`` table. sqlite-utils itself is imported only when one is
    pending: its import (click, pluggy, dateutil and 50 more modules) was ~3 MiB of the playing daemon's RSS,
    and a box whose files are current (every start but the first after an upgrade) never needs it."""

    TABLE = "_sqlite_migrations"

    def __init__(self, name: str) -> None:
        self.name = name
        self._registered: list[tuple[str, Callable[[sqlite_utils.Database], None], bool]] = []

    def __call__(self, *, name: str | None = None, transactional: bool = True) -> Callable[[Migration], Migration]:
        def register(migration: Migration) -> Migration:
            self._registered.append((name or migration.__name__, migration, transactional))
            return migration

        return register

    def pending(self, conn: sqlite3.Connection) -> list[str]:
        """The names of the migrations the file has no record of, in order."""
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.TABLE,)).fetchone():
            applied = {name for (name,) in conn.execute(f"SELECT name FROM {self.TABLE} WHERE migration_set = ?",
                                                        (self.name,))}
        else:
            applied = set()
        return [name for name, _, _ in self._registered if name not in applied]

    def apply(self, conn: sqlite3.Connection) -> None:
        if self.pending(conn):
            import sqlite_utils

            self.as_sqlite_utils().apply(sqlite_utils.Database(conn))

    def as_sqlite_utils(self) -> sqlite_utils.migrations.Migrations:
        from sqlite_utils.migrations import Migrations as UtilsMigrations

        migrations = UtilsMigrations(self.name)
        for name, migration, transactional in self._registered:
            migrations(name=name, transactional=transactional)(migration)
        return migrations


def apply_migrations(path: Path, migrations: Migrations) -> None:
    conn = connect(path)
    try:
        migrations.apply(conn)
    finally:
        conn.close()


# SQLITE_CORRUPT and SQLITE_NOTADB (primary codes; extended codes carry them in the low byte). "Locked",
# "busy" or "read-only" are not damage: such a file is never moved aside.
_DAMAGE_CODES = {11, 26}
KEEP_DAMAGED = 3  # damaged copies kept per file; older ones go, so a dying card does not fill up with them


@dataclass(frozen=True, slots=True)
class Damage:
    """A database file found damaged at open and moved aside."""

    problem: str  # what SQLite said
    kept_as: Path  # where the damaged file is now


# SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN (primary codes), and the file system's own words for
# the same: the disk is full, read-only (a card the kernel remounted after errors) or failing. Not the data's fault.
_STORAGE_CODES = {8, 10, 13, 14}
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT}


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the disk refusing a write (full, read-only, failing), from SQLite or the file system."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _STORAGE_CODES
    return isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS


async def or_remember(write: Awaitable[object], remember: Callable[[], object]) -> None:
    """Await ``write``; if the disk refused it (``is_storage_error``), call ``remember`` (keep what it meant in
    memory) and raise all the same."""
    try:
        await write
    except Exception as exc:
        if is_storage_error(exc):
            remember()
        raise


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    return type(exc) is sqlite3.DatabaseError  # without a code: the plain class is what corruption raises


def check_file(path: Path) -> str | None:
    """What is wrong with the database file at ``path`` (SQLite's words), or None if it opens and passes
    ``PRAGMA quick_check`` (every page of every table and index read once; milliseconds for the edge's files)."""
    if not path.exists():
        return None
    try:
        conn = connect(path)
        try:
            rows = conn.execute("PRAGMA quick_check(3)").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        return str(exc)
    problems = [str(row[0]) for row in rows if row[0] != "ok"]
    return "; ".join(problems) or None


def move_aside(path: Path, problem: str) -> Damage:
    """Rename a damaged database (with its -wal/-shm) to ``NAME.damaged-TIME`` beside it; keep the last few."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while kept.exists():
        n += 1
        kept = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.replace(kept.with_name(kept.name + suffix))
    older = sorted(path.parent.glob(f"{path.name}.damaged-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    copies = [p for p in older if not p.name.endswith(("-wal", "-shm", "-journal"))]
    for stale in copies[KEEP_DAMAGED:]:
        for suffix in ("", "-wal", "-shm", "-journal"):
            stale.with_name(stale.name + suffix).unlink(missing_ok=True)
    log.warning("%s is damaged (%s): moved aside to %s; starting it afresh", path, problem, kept.name)
    return Damage(problem, kept)


class Database:
    """An SQLite file shared by asyncio code. Open with ``await open()``, close with ``await close()``."""

    def __init__(self, path: Path, migrations: Migrations | None = None, *, readers: int = 2,
                 synchronous: Synchronous = "NORMAL", move_damaged_aside: bool = False) -> None:
        self.path = path
        self.synchronous = synchronous
        self._migrations = migrations
        self._move_damaged_aside = move_damaged_aside
        self.damaged: Damage | None = None  # set by open() when the file was damaged and moved aside
        self.read_only: BaseException | None = None  # set by open(): why the disk refused to open it for writing
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-writer-{path.name}")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix=f"sqlite-reader-{path.name}")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_conns_lock = threading.Lock()
        self._write_conn: sqlite3.Connection | None = None
        self._write_level = synchronous
        # Told of each write on the loop's thread: None for one that changed something, else what it raised (the
        # daemon's disk-trouble watch: edge/disk_trouble.py). A write that changed nothing proves nothing.
        self.on_write: Callable[[Database, BaseException | None], None] | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._open_writer)

    def _open_writer(self) -> None:
        try:
            self._open_for_writing()
        except (sqlite3.Error, OSError) as exc:
            if not self._move_damaged_aside or not is_storage_error(exc) or not self.path.is_file():
                raise
            self.read_only = _disk_full_or(exc, self.path.parent)
            log.warning("%s cannot be opened for writing (%s): opened read-only as it is on disk", self.path, exc)
            self._write_conn = connect_read_only(self.path)

    def _open_for_writing(self) -> None:
        if self._move_damaged_aside:
            problem = check_file(self.path)
            if problem is not None:
                self.damaged = move_aside(self.path, problem)
        try:
            self._migrate_and_connect()
        except sqlite3.DatabaseError as exc:
            if not self._move_damaged_aside or self.damaged is not None or not is_damage(exc):
                raise
            self.damaged = move_aside(self.path, str(exc))
            self._migrate_and_connect()

    def _migrate_and_connect(self) -> None:
        if self._migrations is not None:
            apply_migrations(self.path, self._migrations)
        self._write_conn = connect(self.path, self.synchronous)

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, synchronous: Synchronous | None = None) -> T:
        """Run ``fn(conn)`` on the writer thread in one immediate transaction.

        ``synchronous`` overrides the database's level for this commit only. In WAL mode commits stay
        ordered: a NORMAL commit lost to a power cut is never followed by a surviving FULL one."""
        loop = asyncio.get_running_loop()
        try:
            result, changed = await loop.run_in_executor(self._writer, self._write_now, fn,
                                                         synchronous or self.synchronous)
        except Exception as exc:
            if self.on_write is not None:
                self.on_write(self, exc)
            raise
        if changed and self.on_write is not None:
            self.on_write(self, None)
        return result

    def _write_now(self, fn: Callable[[sqlite3.Connection], T], synchronous: Synchronous) -> tuple[T, bool]:
        if self._write_conn is None:
            raise RuntimeError(f"database {self.path} is not open")
        if synchronous != self._write_level:
            set_synchronous(self._write_conn, synchronous)
            self._write_level = synchronous
        before = self._write_conn.total_changes
        return run_in_transaction(self._write_conn, fn), self._write_conn.total_changes != before

    async def data_version(self) -> int:
        """SQLite's ``data_version`` on the writer connection: it moves when *another* connection commits. This
        process writes through that connection only, so a move is another process's write."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._data_version_now)

    def _data_version_now(self) -> int:
        if self._write_conn is None:
            raise RuntimeError(f"database {self.path} is not open")
        return int(self._write_conn.execute("PRAGMA data_version").fetchone()[0])

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a reader thread (a consistent snapshot for its duration)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_now, fn)

    def _read_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self.synchronous) if self.read_only is None else connect_read_only(self.path)
            self._local.conn = conn
            with self._reader_conns_lock:
                self._reader_conns.append(conn)
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._close_writer)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._reader_conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    def _close_writer(self) -> None:
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None


def _disk_full_or(exc: BaseException, directory: Path) -> BaseException:
    """``exc``, or ENOSPC when the directory's file system has no room left: SQLite says "disk I/O error" when it
    cannot make its -shm on a full disk, which would send the venue looking for a broken card."""
    try:
        full = shutil.disk_usage(directory).free < 64 * 1024
    except OSError:
        full = False
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if full else exc
