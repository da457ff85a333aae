"""The venue queue mirrored in local SQLite, kept current from the hub's change feed.

The hub is the source of truth. The replica holds its last known state (version,
master, now playing, priority and main queues) so a standby is ready to take
over and a master can keep playing when the hub is unreachable. Changes are
applied only in version order; a gap or a change type this edge does not know
means "fetch a snapshot" rather than guess.

What this box itself started playing is recorded as *consumed* until the hub's
state no longer lists it, so a replica that is behind the outbox (after an
outage, or for the few milliseconds before the feed echoes our own write) never
offers the same entry twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from djamms_edge.edge.queue.rotation import Bans
from djamms_edge.shared.sqlite import Database

Json = dict[str, Any]


@dataclass(frozen=True)
class ReplicaEntry:
    """One queued song as the hub described it (``data`` is the hub's JSON, kept whole)."""

    entry_id: str
    queue: str
    data: Json = field(compare=False)
    source_id: str | None = None  # a local replay of this main entry (offline rotation wrapped around)

    @property
    def video_id(self) -> str:
        return str(self.data["videoId"])

    @property
    def is_request(self) -> bool:
        return bool(self.data.get("isRequest"))

    def song(self) -> Json:
        return {k: self.data.get(k) for k in ("videoId", "title", "artist", "duration")}


@dataclass(frozen=True)
class ReplicaView:
    version: int
    epoch: int
    master_device: str | None
    now_playing: Json | None
    priority: tuple[ReplicaEntry, ...]
    main: tuple[ReplicaEntry, ...]
    consumed: dict[str, int]  # entry id -> when this box started it (ms)
    bans: Bans = field(default_factory=Bans)  # the venue's ban list: the rotation passes these songs over
    request_limit_s: float | None = None  # the venue's own limit on a paid request's length (None: the hub's)


class NeedSnapshot(Exception):
    """The changes cannot be applied in order (a gap, or an unknown change type)."""


class Replica:
    def __init__(self, db: Database, venue_id: str, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.venue_id = venue_id
        self._clock = clock
        # Entries started here whose "consumed" mark the disk refused (full, read-only): kept in memory, so the
        # rotation moves on instead of offering them again.
        self._consumed_unwritten: dict[str, int] = {}

    # --- reading ------------------------------------------------------------------------------

    async def view(self) -> ReplicaView:
        view = await self._db.read(self._view)
        if not self._consumed_unwritten:
            return view
        consumed = dict(view.consumed)
        for entry_id, at in self._consumed_unwritten.items():
            consumed[entry_id] = max(at, consumed.get(entry_id, 0))
        return dataclasses.replace(view, consumed=consumed)

    async def version(self) -> int:
        return (await self.view()).version

    def _view(self, conn: sqlite3.Connection) -> ReplicaView:
        meta = conn.execute("SELECT * FROM replica_meta WHERE venue_id = ?", (self.venue_id,)).fetchone()
        rows = conn.execute(
            "SELECT entry_id, queue, data FROM replica_entries WHERE venue_id = ? ORDER BY position", (self.venue_id,)
        ).fetchall()
        entries = [ReplicaEntry(r["entry_id"], r["queue"], json.loads(r["data"])) for r in rows]
        consumed = {
            r["entry_id"]: r["consumed_ms"]
            for r in conn.execute(
                "SELECT entry_id, consumed_ms FROM replica_consumed WHERE venue_id = ?", (self.venue_id,)
            )
        }
        rules = json.loads(meta["rules"]) if meta and meta["rules"] else None
        return ReplicaView(
            version=meta["version"] if meta else 0,
            epoch=meta["epoch"] if meta else 0,
            master_device=meta["master_device"] if meta else None,
            now_playing=json.loads(meta["now_playing"]) if meta and meta["now_playing"] else None,
            priority=tuple(e for e in entries if e.queue == "priority"),
            main=tuple(e for e in entries if e.queue == "main"),
            consumed=consumed,
            bans=Bans.from_rules(rules),
            request_limit_s=_limit(rules),
        )

    async def upcoming(self, count: int) -> list[ReplicaEntry]:
        """What will play next, in order (for prefetching): priority first, then the main rotation."""
        view = await self.view()
        return upcoming(view, count)

    # --- applying the hub's state -----------------------------------------------------------------

    async def load_snapshot(self, snapshot: Json) -> None:
        await self._db.write(lambda conn: self._load_snapshot(conn, snapshot))

    def _load_snapshot(self, conn: sqlite3.Connection, snapshot: Json) -> None:
        master = snapshot.get("master") or None
        conn.execute(
            "INSERT OR REPLACE INTO replica_meta (venue_id, version, epoch, master_device, now_playing, synced_ms,"
            " rules) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self.venue_id,
                int(snapshot["version"]),
                int(snapshot.get("epoch") or 0),
                master["deviceId"] if master else None,
                _dump(snapshot.get("nowPlaying")),
                self._now_ms(),
                _dump(snapshot.get("rules")),
            ),
        )
        conn.execute("DELETE FROM replica_entries WHERE venue_id = ?", (self.venue_id,))
        for entry in [*snapshot.get("priorityQueue", []), *snapshot.get("mainQueue", [])]:
            self._add(conn, entry)
        self._forget_confirmed(conn)

    async def apply(self, changes: Iterable[Json]) -> int:
        """Apply changes (each ``{"version": n, "type": ..., ...}``) in one transaction; the new version.

        Raises NeedSnapshot on a gap or an unknown type; nothing is applied then."""
        batch = list(changes)
        return await self._db.write(lambda conn: self._apply(conn, batch))

    def _apply(self, conn: sqlite3.Connection, changes: list[Json]) -> int:
        meta = conn.execute("SELECT version FROM replica_meta WHERE venue_id = ?", (self.venue_id,)).fetchone()
        if meta is None:  # version 0 is a venue with nothing in it: changes from 1 on build it up
            self._load_snapshot(conn, {"version": 0})
        version = int(meta["version"]) if meta else 0
        for change in changes:
            number = int(change["version"])
            if number <= version:
                continue  # already applied (a poll and the socket overlapping)
            if number != version + 1:
                raise NeedSnapshot(f"gap: have {version}, got {number}")
            try:
                self._apply_one(conn, change)
            except (KeyError, TypeError, ValueError) as exc:
                raise NeedSnapshot(f"malformed change {number}: {exc!r}") from None
            version = number
        conn.execute(
            "UPDATE replica_meta SET version = ?, synced_ms = ? WHERE venue_id = ?",
            (version, self._now_ms(), self.venue_id),
        )
        self._forget_confirmed(conn)
        return version

    def _apply_one(self, conn: sqlite3.Connection, change: Json) -> None:
        kind = change.get("type")
        if kind == "entry_added":
            self._add(conn, change["entry"], first=change.get("at") == "head")
        elif kind == "entry_removed":
            conn.execute(
                "DELETE FROM replica_entries WHERE venue_id = ? AND entry_id = ?", (self.venue_id, change["entryId"])
            )
        elif kind == "main_replaced":
            conn.execute("DELETE FROM replica_entries WHERE venue_id = ? AND queue = 'main'", (self.venue_id,))
            for entry in change["entries"]:
                self._add(conn, entry)
        elif kind == "now_playing":
            conn.execute(
                "UPDATE replica_meta SET now_playing = ? WHERE venue_id = ?",
                (_dump(change.get("nowPlaying")), self.venue_id),
            )
        elif kind == "master":
            master = change.get("master") or None
            conn.execute(
                "UPDATE replica_meta SET master_device = ?, epoch = max(epoch, ?) WHERE venue_id = ?",
                (master["deviceId"] if master else None, master["epoch"] if master else 0, self.venue_id),
            )
        elif kind == "rules":
            conn.execute("UPDATE replica_meta SET rules = ? WHERE venue_id = ?",
                         (_dump(dict(change["rules"])), self.venue_id))
        elif kind == "skip":
            pass  # nothing to keep: the player skips (EdgeSync tells it), the queue is unchanged
        else:
            raise NeedSnapshot(f"unknown change type {kind!r}")

    def _add(self, conn: sqlite3.Connection, entry: Json, *, first: bool = False) -> None:
        """Append ``entry``; ``first``: before every other entry (staff's play-next)."""
        (position,) = conn.execute(
            "SELECT COALESCE(MIN(position), 1) - 1 FROM replica_entries WHERE venue_id = ?" if first else
            "SELECT COALESCE(MAX(position), 0) + 1 FROM replica_entries WHERE venue_id = ?", (self.venue_id,)
        ).fetchone()
        conn.execute(
            "INSERT OR REPLACE INTO replica_entries (venue_id, entry_id, queue, position, data) VALUES (?, ?, ?, ?, ?)",
            (self.venue_id, entry["entryId"], entry["queue"], position, json.dumps(entry)),
        )

    def _forget_confirmed(self, conn: sqlite3.Connection) -> None:
        # The hub took an entry out of its queue: our "consumed" mark has done its job.
        conn.execute(
            "DELETE FROM replica_consumed WHERE venue_id = ? AND entry_id NOT IN"
            " (SELECT entry_id FROM replica_entries WHERE venue_id = ?)",
            (self.venue_id, self.venue_id),
        )

    # --- this box playing -----------------------------------------------------------------------

    def consume_in(self, conn: sqlite3.Connection, entry: ReplicaEntry) -> None:
        """Record (inside the caller's transaction) that this box started ``entry``."""
        for entry_id in {entry.entry_id, entry.source_id or entry.entry_id}:
            conn.execute(
                "INSERT OR REPLACE INTO replica_consumed (venue_id, entry_id, consumed_ms) VALUES (?, ?, ?)",
                (self.venue_id, entry_id, self._now_ms()),
            )

    def remember_consumed(self, entry: ReplicaEntry) -> None:
        """``consume_in``'s record, in memory only: its write was refused by the disk."""
        for entry_id in {entry.entry_id, entry.source_id or entry.entry_id}:
            self._consumed_unwritten[entry_id] = self._now_ms()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def next_entry(view: ReplicaView) -> ReplicaEntry | None:
    """What this box plays next (pure): the oldest paid entry, else the head of the main rotation.

    While the hub cannot take entries off its queue (offline), a main rotation
    that this box has played through starts over with fresh local ids, so each
    play is its own history record and nothing repeats before the whole playlist has."""
    items = upcoming(view, 1)
    return items[0] if items else None


def upcoming(view: ReplicaView, count: int) -> list[ReplicaEntry]:
    # Banned songs leave the rotation; a paid request accepted before its ban still plays (staff who do not
    # want it remove it, and it is refunded).
    main = [e for e in view.main if not view.bans.bans(e.video_id, str(e.data.get("artist") or ""))]
    fresh = [e for e in (*view.priority, *main) if e.entry_id not in view.consumed]
    # The rotation wraps around: replay main entries, least recently played first, under new ids.
    rotation = sorted(main, key=lambda e: view.consumed.get(e.entry_id, 0))
    cycle = 0
    while len(fresh) < count and rotation:
        fresh.extend(_replay(e, view.consumed.get(e.entry_id, 0), cycle) for e in rotation)
        cycle += 1
    return fresh[:count]


def _replay(entry: ReplicaEntry, consumed_ms: int, cycle: int) -> ReplicaEntry:
    # Stable for as long as the source entry was not played again, so the player's prefetch is kept
    # across re-plans; new once it has been (each play is its own history record).
    digest = hashlib.sha256(f"{entry.entry_id}:{consumed_ms}:{cycle}".encode()).hexdigest()[:16]
    new_id = f"local-{digest}"
    return ReplicaEntry(new_id, "main", entry.data | {"entryId": new_id}, source_id=entry.entry_id)


def _limit(rules: Json | None) -> float | None:
    value = (rules or {}).get("maxDurationS")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
