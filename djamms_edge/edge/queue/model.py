"""Queue records in domain terms: entries waiting to play and plays that happened."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EntryKind(StrEnum):
    PRIORITY = "priority"  # a paid request: plays before the main queue, oldest first
    MAIN = "main"  # the venue's playlist, in rotation


@dataclass(frozen=True, slots=True)
class QueueEntry:
    entry_id: str
    source: str  # source key: a video id, an http(s) URL or a local file path
    title: str = ""
    artist: str = ""
    duration: float | None = None  # seconds, when known
    kind: EntryKind = EntryKind.MAIN
    requested_at: float = 0.0  # unix seconds: when it was paid for (priority) or added (main)
    requested_by: str = ""
    # A take-over: where (media seconds) the box that was playing this entry got to before it stopped;
    # the play continues there instead of at the cue-in.
    resume_at: float | None = None


@dataclass(frozen=True, slots=True)
class Play:
    """One entry having started to play, as the rotation rules see it."""

    entry_id: str
    source: str
    artist: str
    kind: EntryKind
    started_at: float  # unix seconds

    @classmethod
    def of(cls, entry: QueueEntry, started_at: float) -> Play:
        return cls(entry.entry_id, entry.source, entry.artist, entry.kind, started_at)
