"""The edge's sync database (``sync.db`` in the state directory): outbox, queue replica, lease memory.

One file and one writer for the three, so a replica update and the outbox item
it causes can share a transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from djamms_edge.shared.sqlite import Database, Migrations

if TYPE_CHECKING:
    from sqlite_utils import Database as UtilsDatabase

migrations = Migrations("djamms-edge-sync")


@migrations()
def m001_outbox(db: UtilsDatabase) -> None:
    db.execute(
        """
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,          -- idempotency key; the hub dedupes on it
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,             -- JSON
            epoch INTEGER,                     -- fencing token of master-only writes
            created_ms INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'rejected')),
            detail TEXT,
            done_ms INTEGER
        )
        """
    )
    db.execute("CREATE INDEX outbox_pending ON outbox (state, seq)")


@migrations()
def m002_replica(db: UtilsDatabase) -> None:
    db.execute(
        """
        CREATE TABLE replica_meta (
            venue_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            master_device TEXT,
            now_playing TEXT,                  -- JSON of the hub's nowPlaying, or NULL
            synced_ms INTEGER NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE replica_entries (
            venue_id TEXT NOT NULL,
            entry_id TEXT NOT NULL,
            queue TEXT NOT NULL CHECK (queue IN ('priority', 'main')),
            position INTEGER NOT NULL,
            data TEXT NOT NULL,                -- JSON of the hub's entry
            PRIMARY KEY (venue_id, entry_id)
        )
        """
    )
    # What this box played while it could not tell the hub: never play it again from a stale replica.
    db.execute(
        """
        CREATE TABLE replica_consumed (
            venue_id TEXT NOT NULL,
            entry_id TEXT NOT NULL,
            consumed_ms INTEGER NOT NULL,
            PRIMARY KEY (venue_id, entry_id)
        )
        """
    )


@migrations()
def m003_lease(db: UtilsDatabase) -> None:
    # The last epoch this box played on, so a restart during a hub outage resumes playing.
    db.execute("CREATE TABLE lease_memory (venue_id TEXT PRIMARY KEY, epoch INTEGER, updated_ms INTEGER NOT NULL)")


@migrations()
def m004_replica_rules(db: UtilsDatabase) -> None:
    # The venue's ban list and explicit flags (the hub's "rules"), so rotation passes banned songs over offline too.
    db.execute("ALTER TABLE replica_meta ADD COLUMN rules TEXT")


def open_sync_db(state_dir: Path) -> Database:
    # Damaged: moved aside and started afresh; the replica comes back from the hub's snapshot (version 0),
    # reports not yet delivered are lost.
    return Database(state_dir / "sync.db", migrations, move_damaged_aside=True)
