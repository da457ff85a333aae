"""``djamms-hub backup``: a consistent copy of the hub's SQLite store, taken while the hub serves.

Copying ``hub.db`` with cp while the hub writes can give a file that is torn or misses what sits in the
write-ahead log. SQLite's online backup copies every page under one read transaction instead: in WAL mode
that snapshot does not hold up the hub's writes, and the copy holds every commit made before it began.
The copy is checked (``PRAGMA integrity_check``), made one self-contained file (no WAL beside it), synced to
disk, and only then given its final name, so a backup that failed halfway never looks like a good one.
The newest ``keep`` backups are kept. A PostgreSQL store is backed up with PostgreSQL's own tools.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PREFIX, SUFFIX = "hub-", ".db"
BUSY_TIMEOUT_S = 30.0  # the hub's writer holds its lock for one batch at a time


class BackupFailed(Exception):
    """The backup could not be made; the message says why. No partial file is left."""


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int
    removed: tuple[Path, ...]  # older backups beyond ``keep``


def backup_name(now: datetime) -> str:
    """Sorts in time order; microseconds, so two backups in one second do not collide."""
    return f"{PREFIX}{now.astimezone(UTC):%Y%m%dT%H%M%S.%f}Z{SUFFIX}"


def backups_in(directory: Path) -> list[Path]:
    """The backups this command made in ``directory``, oldest first."""
    return sorted(p for p in directory.glob(f"{PREFIX}*{SUFFIX}") if p.is_file())


def backup_sqlite(database: Path, directory: Path, keep: int, now: datetime) -> Backup:
    if keep < 1:
        raise BackupFailed("--keep must be at least 1")
    if not database.is_file():
        raise BackupFailed(f"no hub database at {database} (hub.store.url)")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BackupFailed(f"cannot create the backup directory {directory}: {exc.strerror or exc}") from exc
    final = directory / backup_name(now)
    partial = directory / f".{final.name}.partial"
    try:
        _copy(database, partial)
        _sync(partial)
        partial.rename(final)
        _sync(directory)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise BackupFailed(f"backup of {database} to {directory} failed: {exc}") from exc
        raise
    removed = tuple(backups_in(directory)[:-keep])
    for old in removed:
        old.unlink(missing_ok=True)
    return Backup(final, final.stat().st_size, removed)


def _copy(database: Path, target: Path) -> None:
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            source.backup(copy)  # every page in one step: one snapshot, not restarted by the hub's writes
            copy.execute("PRAGMA journal_mode=DELETE")  # one file, nothing beside it to copy along
            problems = [row[0] for row in copy.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupFailed(f"the copy of {database} fails SQLite's integrity check: {'; '.join(problems[:5])}")
        finally:
            copy.close()
    finally:
        source.close()


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
