"""From a queue entry to what the player needs: which file, which cue offsets, which gain.

``TrackResolver`` is the engine's only view of the media side, so the engine does not
depend on how files are fetched or analysed. ``LocalFileResolver`` serves the local
playlist: the entry's source is a file path, the offsets come from the media pipeline's
``analyze()`` (head/tail silence detection, in a media worker process), and the gain from its loudness
when measured.
``CachedMediaResolver`` serves video ids and URLs from the media cache (and local paths
through a ``LocalFileResolver``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from djamms_edge.edge.media.analysis import TrackAnalysis
from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.media.ffmpeg import MediaError
from djamms_edge.edge.media.worker import analyze
from djamms_edge.edge.queue.model import QueueEntry

if TYPE_CHECKING:  # only the cache's record types are needed here
    from djamms_edge.edge.media.cache import CachedTrack, CacheEntry

log = logging.getLogger(__name__)


class Unplayable(Exception):
    """This entry cannot be played; the message says why in a few words.

    ``retry_after`` None: it is broken or gone (the engine reports it failed and moves on). A number: it
    is not ready yet (still downloading); the engine passes over it for that many seconds, reporting nothing.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Cue:
    """Where and how loud to play a file: seconds of media time, ``end`` None = to the end."""

    path: Path
    start: float = 0.0
    end: float | None = None
    gain_db: float = 0.0


class TrackResolver(Protocol):
    async def resolve(self, entry: QueueEntry) -> Cue:
        """The cue for ``entry``; raises Unplayable."""
        ...


def levelling_gain(loudness_lufs: float | None, target_lufs: float, max_gain_db: float) -> float:
    """The gain that brings a track to the target loudness, within ±``max_gain_db`` (0 when unmeasured)."""
    if loudness_lufs is None:
        return 0.0
    return round(max(-max_gain_db, min(max_gain_db, target_lufs - loudness_lufs)), 2)


Analyze = Callable[[Path, AnalysisConfig], Awaitable[TrackAnalysis]]


class LocalFileResolver:
    """Local files, analysed once per file version (path, size, mtime) and remembered for the process."""

    def __init__(
        self, config: AnalysisConfig, *, target_lufs: float, max_gain_db: float, trim: bool = True,
        analyzer: Analyze = analyze,
    ) -> None:
        self._config = config
        self._target = target_lufs
        self._max_gain = max_gain_db
        self._trim = trim
        self._analyze = analyzer
        self._known: dict[tuple[str, int, int], Cue] = {}

    async def resolve(self, entry: QueueEntry) -> Cue:
        path = Path(entry.source)
        if not path.is_absolute():
            raise Unplayable("not a local file (needs the media cache)")
        try:
            stat = await asyncio.to_thread(path.stat)
        except OSError:
            raise Unplayable("file missing") from None
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key in self._known:
            return self._known[key]
        if not self._trim:
            cue = Cue(path)
        else:
            try:
                found = await self._analyze(path, self._config)
            except MediaError as exc:
                raise Unplayable(str(exc)) from None
            gain = levelling_gain(found.loudness_lufs, self._target, self._max_gain)
            cue = Cue(path, found.real_start_offset, found.real_end_offset, gain)
            log.debug("%s: plays %.2f-%.2fs of %.2fs at %+.1f dB", path.name, cue.start, found.real_end_offset,
                      found.duration, gain)
        self._known[key] = cue
        return cue


class MediaLookup(Protocol):
    """The two questions the player asks the media cache (``MediaCache`` answers them)."""

    async def playable(self, key: str) -> CachedTrack | None: ...

    async def entry(self, key: str) -> CacheEntry | None: ...


class CachedMediaResolver:
    """Video ids and URLs from the media cache, with its cues (a manual override wins there); local paths
    through ``local``. Fetching is the cache's prefetcher's job: an entry not downloaded yet is "not ready"."""

    def __init__(
        self, cache: MediaLookup, local: TrackResolver, *, target_lufs: float, max_gain_db: float,
        not_ready_retry_s: float = 5.0,
    ) -> None:
        self._cache = cache
        self._local = local
        self._target = target_lufs
        self._max_gain = max_gain_db
        self._retry = not_ready_retry_s

    async def resolve(self, entry: QueueEntry) -> Cue:
        if Path(entry.source).is_absolute():
            return await self._local.resolve(entry)
        track = await self._cache.playable(entry.source)
        if track is not None:
            gain = levelling_gain(track.loudness_lufs, self._target, self._max_gain)
            return Cue(track.path, track.real_start, track.real_end, gain)
        known = await self._cache.entry(entry.source)
        if known is not None and known.status in ("unavailable", "broken"):
            raise Unplayable(known.error or known.status)
        raise Unplayable("not downloaded yet", retry_after=self._retry)
