"""The playback state in SQLite (``playback.db`` in the state directory).

* ``plays``: one row per entry that started playing (the play history). A restart that resumes
  an entry continues the same row (``resumes`` counts how often), so history has no duplicates.
* ``now_playing``: at most one row, the play in progress and its position, saved every few
  seconds; after a crash the engine resumes it from there.
* ``unplayable``: sources that were missing or broken when last tried, so the rotation skips them.
* ``requests``: paid requests queued on this box (the local queue, until the hub sync feeds them).
* ``controls``: at most one row, the volume and pause staff last set, so a restart keeps them.

All writes go through ``Database.write`` (one writer thread, BEGIN IMMEDIATE), reads run off the loop. A write
the disk refuses (full, read-only: ``is_storage_error``) still raises, but what the queue needs is remembered in
memory until the process ends (the play for the rotation, an unplayable mark, a request's state), so a full
disk does not make the rotation repeat one track or retry a broken one in a loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from djamms_edge.edge.queue.model import EntryKind, Play, QueueEntry
from djamms_edge.shared.sqlite import Database, Migrations, or_remember

if TYPE_CHECKING:
    from sqlite_utils import Database as UtilsDatabase

migrations = Migrations("djamms-edge-playback")
MAX_UNWRITTEN_PLAYS = 200  # plays kept in memory while the disk refuses them: more than any rotation rule looks at


@migrations()
def m001_playback(db: UtilsDatabase) -> None:
    db.execute(
        """
        CREATE TABLE plays (
            play_id TEXT PRIMARY KEY,
            entry_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('priority', 'main')),
            source TEXT NOT NULL,
            title TEXT NOT NULL,
            artist TEXT NOT NULL,
            duration REAL,
            requested_at REAL NOT NULL,
            requested_by TEXT NOT NULL,
            started_at REAL NOT NULL,
            start_position REAL NOT NULL,      -- where playback began (the cue-in)
            resumes INTEGER NOT NULL DEFAULT 0,
            resumed_from REAL,                 -- where the last resume after a restart began
            ended_at REAL,
            end_reason TEXT                    -- finished, skipped, stopped, failed
        )
        """
    )
    db.execute("CREATE INDEX plays_started ON plays (started_at)")
    db.execute(
        """
        CREATE TABLE now_playing (
            slot INTEGER PRIMARY KEY CHECK (slot = 1),
            play_id TEXT NOT NULL REFERENCES plays (play_id),
            position REAL NOT NULL,
            saved_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE TABLE unplayable (source TEXT PRIMARY KEY, reason TEXT NOT NULL, marked_at REAL NOT NULL)")
    db.execute(
        """
        CREATE TABLE requests (
            entry_id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            title TEXT NOT NULL,
            artist TEXT NOT NULL,
            duration REAL,
            requested_at REAL NOT NULL,
            requested_by TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'playing', 'done', 'failed'))
        )
        """
    )


@migrations()
def m002_controls(db: UtilsDatabase) -> None:
    db.execute(
        """
        CREATE TABLE controls (
            slot INTEGER PRIMARY KEY CHECK (slot = 1),
            volume REAL NOT NULL,
            paused INTEGER NOT NULL,
            saved_at REAL NOT NULL
        )
        """
    )


@dataclass(frozen=True, slots=True)
class Controls:
    """What staff set on this box (volume, pause): kept across restarts and power cuts."""

    volume: float
    paused: bool


@dataclass(frozen=True, slots=True)
class PlayRecord:
    play_id: str
    entry: QueueEntry
    started_at: float
    start_position: float
    resumes: int
    resumed_from: float | None
    ended_at: float | None
    end_reason: str | None


@dataclass(frozen=True, slots=True)
class InProgress:
    """What was playing when the daemon last saved its position."""

    play: PlayRecord
    position: float
    saved_at: float


_PLAY_COLUMNS = ("play_id, entry_id, kind, source, title, artist, duration, requested_at, requested_by, "
                 "started_at, start_position, resumes, resumed_from, ended_at, end_reason")


def _entry(row: sqlite3.Row) -> QueueEntry:
    return QueueEntry(
        entry_id=row["entry_id"], source=row["source"], title=row["title"], artist=row["artist"],
        duration=row["duration"], kind=EntryKind(row["kind"]), requested_at=row["requested_at"],
        requested_by=row["requested_by"],
    )


def _play(row: sqlite3.Row) -> PlayRecord:
    return PlayRecord(row["play_id"], _entry(row), row["started_at"], row["start_position"], row["resumes"],
                      row["resumed_from"], row["ended_at"], row["end_reason"])


class PlaybackState:
    """Typed reads and writes of ``playback.db``; open and close the ``Database`` outside."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # What the disk refused to store (see the module's doc), merged into what the queue reads.
        self._unwritten_plays: list[Play] = []
        self._unwritten_unplayable: dict[str, tuple[str, float]] = {}
        self._unwritten_request_states: dict[str, str] = {}

    @classmethod
    def database(cls, state_dir: Path) -> Database:
        # Damaged (an SD card): moved aside and started afresh; history and staff controls are lost, the music is not.
        return Database(state_dir / "playback.db", migrations, move_damaged_aside=True)

    # --- now playing and history ------------------------------------------------------------------

    async def in_progress(self) -> InProgress | None:
        def read(conn: sqlite3.Connection) -> InProgress | None:
            row = conn.execute(
                f"SELECT {_PLAY_COLUMNS}, n.position, n.saved_at FROM now_playing n JOIN plays USING (play_id)"
            ).fetchone()
            return None if row is None else InProgress(_play(row), row["position"], row["saved_at"])

        return await self.db.read(read)

    async def begin(self, play_id: str, entry: QueueEntry, at: float, position: float) -> None:
        """``entry`` started playing: a new history row, and it is now playing."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO plays ({_PLAY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, NULL)",
                (play_id, entry.entry_id, entry.kind.value, entry.source, entry.title, entry.artist,
                 entry.duration, entry.requested_at, entry.requested_by, at, position),
            )
            _set_now_playing(conn, play_id, position, at)

        await or_remember(self.db.write(write), lambda: self._remember_play(Play.of(entry, at)))

    def _remember_play(self, play: Play) -> None:
        self._unwritten_plays = [*self._unwritten_plays, play][-MAX_UNWRITTEN_PLAYS:]

    async def resume(self, play_id: str, at: float, position: float) -> None:
        """A play interrupted by a restart continues: same history row, one more resume."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE plays SET resumes = resumes + 1, resumed_from = ? WHERE play_id = ?", (position, play_id)
            )
            _set_now_playing(conn, play_id, position, at)

        await self.db.write(write)

    async def save_position(self, play_id: str, position: float, at: float) -> None:
        await self.db.write(
            lambda conn: conn.execute(
                "UPDATE now_playing SET position = ?, saved_at = ? WHERE play_id = ?", (position, at, play_id)
            )
        )

    async def end(self, play_id: str, reason: str, at: float) -> None:
        """The play is over; it leaves now-playing. Ending it twice keeps the first ending."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE plays SET ended_at = ?, end_reason = ? WHERE play_id = ? AND ended_at IS NULL",
                (at, reason, play_id),
            )
            conn.execute("DELETE FROM now_playing WHERE play_id = ?", (play_id,))

        await self.db.write(write)

    async def history(self, limit: int = 100) -> list[PlayRecord]:
        """The most recent plays, oldest first."""
        rows = await self.db.read(
            lambda conn: conn.execute(
                f"SELECT {_PLAY_COLUMNS} FROM plays ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [_play(row) for row in reversed(rows)]

    async def recent_plays(self, since: float, at_least: int) -> list[Play]:
        """What the rotation rules need, oldest first: plays started since ``since``, the last ``at_least``
        plays, and the last main-queue play (where the rotation continues)."""

        def read(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                f"SELECT {_PLAY_COLUMNS} FROM plays WHERE started_at >= ? "
                "OR play_id IN (SELECT play_id FROM plays ORDER BY started_at DESC, rowid DESC LIMIT ?) "
                "OR play_id = (SELECT play_id FROM plays WHERE kind = 'main' ORDER BY started_at DESC, rowid DESC "
                "LIMIT 1) ORDER BY started_at, rowid",
                (since, at_least),
            ).fetchall()

        plays = [Play.of(_entry(row), row["started_at"]) for row in await self.db.read(read)]
        return sorted([*plays, *self._unwritten_plays], key=lambda play: play.started_at)

    # --- staff controls ------------------------------------------------------------------------------

    async def controls(self) -> Controls | None:
        row = await self.db.read(lambda conn: conn.execute("SELECT volume, paused FROM controls").fetchone())
        return None if row is None else Controls(row["volume"], bool(row["paused"]))

    async def save_controls(self, controls: Controls, at: float) -> None:
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO controls (slot, volume, paused, saved_at) VALUES (1, ?, ?, ?) ON CONFLICT (slot) "
                "DO UPDATE SET volume = excluded.volume, paused = excluded.paused, saved_at = excluded.saved_at",
                (controls.volume, int(controls.paused), at),
            )
        )

    # --- unplayable sources -------------------------------------------------------------------------

    async def mark_unplayable(self, source: str, reason: str, at: float) -> None:
        await or_remember(self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO unplayable (source, reason, marked_at) VALUES (?, ?, ?) "
                "ON CONFLICT (source) DO UPDATE SET reason = excluded.reason, marked_at = excluded.marked_at",
                (source, reason, at),
            )
        ), lambda: self._unwritten_unplayable.__setitem__(source, (reason, at)))

    async def clear_unplayable(self, sources: Collection[str] | None = None) -> int:
        """Forget unplayable marks of ``sources`` (all when None); returns how many were cleared."""
        if sources is None:
            self._unwritten_unplayable.clear()
            return await self.db.write(lambda conn: conn.execute("DELETE FROM unplayable").rowcount)
        wanted = list(sources)
        for source in wanted:
            self._unwritten_unplayable.pop(source, None)
        return await self.db.write(
            lambda conn: conn.executemany("DELETE FROM unplayable WHERE source = ?", [(s,) for s in wanted]).rowcount
        )

    async def unplayable_since(self, since: float) -> dict[str, str]:
        rows = await self.db.read(
            lambda conn: conn.execute("SELECT source, reason FROM unplayable WHERE marked_at >= ?", (since,)).fetchall()
        )
        remembered = {source: reason for source, (reason, at) in self._unwritten_unplayable.items() if at >= since}
        return {row["source"]: row["reason"] for row in rows} | remembered

    # --- local paid requests ------------------------------------------------------------------------

    async def add_request(self, entry: QueueEntry) -> None:
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO requests (entry_id, source, title, artist, duration, requested_at, requested_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.entry_id, entry.source, entry.title, entry.artist, entry.duration, entry.requested_at,
                 entry.requested_by),
            )
        )

    async def waiting_requests(self) -> list[QueueEntry]:
        rows = await self.db.read(
            lambda conn: conn.execute(
                "SELECT *, 'priority' AS kind FROM requests WHERE state = 'waiting' ORDER BY requested_at, entry_id"
            ).fetchall()
        )
        not_waiting = {entry_id for entry_id, state in self._unwritten_request_states.items() if state != "waiting"}
        return [_entry(row) for row in rows if row["entry_id"] not in not_waiting]

    async def set_request_state(self, entry_id: str, state: str) -> None:
        await or_remember(self.db.write(
            lambda conn: conn.execute("UPDATE requests SET state = ? WHERE entry_id = ?", (state, entry_id))
        ), lambda: self._unwritten_request_states.__setitem__(entry_id, state))


def _set_now_playing(conn: sqlite3.Connection, play_id: str, position: float, at: float) -> None:
    conn.execute(
        "INSERT INTO now_playing (slot, play_id, position, saved_at) VALUES (1, ?, ?, ?) "
        "ON CONFLICT (slot) DO UPDATE SET play_id = excluded.play_id, position = excluded.position, "
        "saved_at = excluded.saved_at",
        (play_id, position, at),
    )


