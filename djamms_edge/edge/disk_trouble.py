"""When the box cannot write its own disk: the SD card full, remounted read-only by the kernel, or failing.

The running daemon writes to its state directory (``playback.db``: history, resume point, staff controls;
``sync.db``: the hub's queue replica, the outbox; ``media.db``: the cache index) and its cache directory
(downloads). None of those writes is worth the music. Where one fails for want of space or of a writable card
(``shared.sqlite.is_storage_error``), its caller goes on without it and the cached music plays on: the engine
does not record that play, the prefetcher downloads nothing and tries again with backoff, the feed stops taking
in the hub's changes until it can store them, the outbox holds what it could not mark sent. What must not be
forgotten meanwhile (what played, for the rotation and the replica) is kept in memory by the part that owns it.

``DiskTrouble`` turns those failures into one *episode* per area (a database file, or the cache directory):
one log line when it starts, a problem sentence on the status page, in systemd's status line and in the hub
heartbeat (the venue's dashboard) while it lasts, and a device error for the hub's "Recent problems" (through
``report``: the outbox, or straight to the hub when the outbox cannot be written either). The first write in
that area that changes something ends the episode, with one log line: the box recovers by itself once space
returns. The areas and what the box does without their writes are the daemon's (``edge/daemon.py``).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from djamms_edge.shared.sqlite import Database, is_storage_error
from djamms_edge.shared.tasks import TaskOwner

log = logging.getLogger(__name__)

Report = Callable[[str], Awaitable[None]]  # a device error for the hub, with the problem sentence


@dataclass
class Episode:
    started: float  # clock time
    failures: int
    problem: str  # the sentence the status page and the heartbeat show


def what_is_wrong(exc: BaseException) -> str:
    """The disk's trouble in a venue's words."""
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    number = exc.errno if isinstance(exc, OSError) else None
    if number == errno.ENOSPC or number == errno.EDQUOT or (code is not None and code & 0xFF == 13):
        return "the disk is full"
    if number == errno.EROFS or (code is not None and code & 0xFF == 8):
        return "the disk is read-only"
    return "the disk fails to write"


class DiskTrouble:
    """Episodes of writes the disk refused, per area. ``watch(db)`` follows every write of a ``Database``;
    ``failed``/``worked`` are for other writes (the cache directory's files)."""

    def __init__(
        self, consequences: Mapping[str, str] | None = None, *, report: Report | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consequences = dict(consequences or {})  # area -> what the box does without those writes
        self._report_with = report
        self._clock = clock
        self._episodes: dict[str, Episode] = {}
        self._reports = TaskOwner("disk-trouble")
        self._listeners: list[Callable[[], None]] = []

    def report_to(self, report: Report) -> None:
        """Send device errors with ``report`` from now on, beginning with the episodes under way (a database
        opened read-only before the hub link existed)."""
        self._report_with = report
        for area, episode in self._episodes.items():
            self._reports.start(self._report(episode.problem), f"report:{area}")

    def watch(self, db: Database) -> None:
        db.on_write = self._on_write
        if db.read_only is not None:  # opened read-only at start: no write ends this one; a restart does
            self.failed(db.path.name, db.read_only, recovers=False)

    def subscribe(self, on_change: Callable[[], None]) -> None:
        self._listeners.append(on_change)

    def problems(self) -> list[str]:
        return [episode.problem for episode in self._episodes.values()]

    def failed(self, area: str, exc: BaseException, *, recovers: bool = True) -> None:
        """A write to ``area`` failed because of ``exc`` (a storage error: the caller checked). ``recovers=False``:
        the area stays unwritable until the daemon restarts (its database was opened read-only)."""
        episode = self._episodes.get(area)
        if episode is not None:
            episode.failures += 1
            return
        consequence = self._consequences.get(area, "what it would have recorded is lost")
        then = ("it recovers by itself" if recovers else
                "then restart djamms-edge (sudo systemctl restart djamms-edge): it opened this file read-only")
        problem = (f"{area} cannot be written: {what_is_wrong(exc)} ({exc}). {consequence}. Free space on the box's "
                   f"disk (a card that turned read-only needs replacing); {then}.")
        self._episodes[area] = Episode(self._clock(), 1, problem)
        log.error("%s", problem)
        if self._report_with is not None:
            self._reports.start(self._report(problem), f"report:{area}")
        self._changed()

    def worked(self, area: str) -> None:
        """A write to ``area`` changed something: its episode, if any, is over."""
        episode = self._episodes.pop(area, None)
        if episode is None:
            return
        log.info("%s can be written again after %.0fs (failed writes meanwhile: %d)", area,
                 self._clock() - episode.started, episode.failures)
        self._changed()

    async def close(self) -> None:
        await self._reports.close()

    def _on_write(self, db: Database, exc: BaseException | None) -> None:
        if exc is None:
            self.worked(db.path.name)
        elif is_storage_error(exc):
            self.failed(db.path.name, exc)

    async def _report(self, problem: str) -> None:
        assert self._report_with is not None
        try:
            await self._report_with(problem)
        except Exception as exc:  # the hub hears it with the heartbeat's problems anyway
            log.warning("could not report the disk trouble to the hub: %s", exc)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()
