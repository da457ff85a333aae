"""The playback engine's ``QueueSource`` over the hub's queue replica (what plays when a hub is configured).

Order comes from the hub (paid entries oldest first, then the venue playlist in rotation), read from
the local replica so it works offline. A standby's engine is halted (the lease's Halt), so it plans
nothing; ``upcoming`` still answers, so the standby's status page shows the mirrored queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from djamms_edge.edge.queue.model import EntryKind, QueueEntry
from djamms_edge.edge.queue.source import Outcome
from djamms_edge.edge.sync.engine import EdgeSync
from djamms_edge.edge.sync.replica import ReplicaEntry

log = logging.getLogger(__name__)


def queue_entry(entry: ReplicaEntry, resume_at: float | None = None) -> QueueEntry:
    data = entry.data
    duration = data.get("duration")
    return QueueEntry(
        entry.entry_id,
        str(data["videoId"]),
        title=str(data.get("title") or ""),
        artist=str(data.get("artist") or ""),
        duration=float(duration) if isinstance(duration, (int, float)) else None,
        kind=EntryKind.PRIORITY if entry.queue == "priority" else EntryKind.MAIN,
        requested_by=str(data.get("requesterId") or ""),
        resume_at=resume_at,
    )


class HubQueue:
    def __init__(self, sync: EdgeSync) -> None:
        self._sync = sync
        self._offered: dict[str, ReplicaEntry] = {}
        self._listeners: list[Callable[[], None]] = []

    def changed(self) -> None:
        """The replica or the lease changed: the engine should look again."""
        for listener in self._listeners:
            listener()

    def subscribe(self, on_change: Callable[[], None]) -> None:
        self._listeners.append(on_change)

    async def upcoming(self, count: int) -> list[QueueEntry]:
        # After a take-over, what the last master was cut off in plays first, from where it was.
        interrupted = await self._sync.interrupted()
        entries = await self._sync.upcoming(count)
        self._offered.update((e.entry_id, e) for e in entries)
        planned = [queue_entry(e) for e in entries]
        if interrupted is None or count < 1:
            return planned
        self._offered[interrupted.entry.entry_id] = interrupted.entry
        first = queue_entry(interrupted.entry, resume_at=interrupted.position)
        return [first, *[e for e in planned if e.entry_id != first.entry_id]][:count]

    async def request_limit(self) -> float | None:
        return await self._sync.request_limit()

    async def refused(self, entry: QueueEntry, measured_s: float) -> None:
        found = self._offered.pop(entry.entry_id, None) or ReplicaEntry(
            entry.entry_id, str(entry.kind), _song_data(entry)
        )
        log.warning("not playing paid request %s (%s): it measures %.0f s, over the limit; refund reported",
                    entry.entry_id, entry.source, measured_s)
        await self._sync.refuse(found, measured_s)

    async def started(self, entry: QueueEntry) -> None:
        self._sync.interrupted_handled(entry.entry_id)
        found = self._offered.get(entry.entry_id)
        if found is None:
            # A play resumed after a restart: its entry is in the replica's now playing, not the queue.
            found = ReplicaEntry(entry.entry_id, str(entry.kind), _song_data(entry))
        await self._sync.started(found)

    async def finished(self, entry: QueueEntry, outcome: Outcome, detail: str = "") -> None:
        self._sync.interrupted_handled(entry.entry_id)
        found = self._offered.pop(entry.entry_id, None) or ReplicaEntry(
            entry.entry_id, str(entry.kind), _song_data(entry)
        )
        if outcome is Outcome.FAILED:
            # Never offered again by this box; the hub keeps it for a box that can play it.
            await self._sync.skip(found)
            log.warning("entry %s (%s) failed here: %s", entry.entry_id, entry.source, detail)
            await self._sync.report_error(entry.source, detail)
            return
        await self._sync.finished(found)


def _song_data(entry: QueueEntry) -> dict[str, object]:
    return {
        "entryId": entry.entry_id,
        "videoId": entry.source,
        "title": entry.title,
        "artist": entry.artist,
        "duration": entry.duration,
    }
