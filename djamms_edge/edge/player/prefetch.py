"""Keeping what plays next downloaded: the media cache fetches ahead of the engine.

Whenever the queue or the engine changes, the next few entries that are not local files
(video ids, URLs) go to the cache's ``prefetch`` (which also protects them from eviction);
when one of them changes state (downloaded, or found gone) the engine is woken so it
stops passing over it. The playing entry is marked played for least-recently-played eviction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from djamms_edge.edge.player.engine import PlaybackEngine
from djamms_edge.edge.queue.source import QueueSource

if TYPE_CHECKING:
    from djamms_edge.edge.config import EdgeConfig
    from djamms_edge.edge.media.cache import MediaCache

log = logging.getLogger(__name__)


class CacheFeeder(Protocol):
    async def prefetch(self, upcoming: Sequence[str]) -> Mapping[str, str]: ...

    async def mark_played(self, key: str) -> None: ...


def needs_cache(sources: Sequence[str]) -> bool:
    """Whether any source must be downloaded (anything but a local file path)."""
    return any(not Path(source).is_absolute() for source in sources)


async def keep_prefetched(queue: QueueSource, cache: CacheFeeder, engine: PlaybackEngine, count: int) -> None:
    """The prefetcher's task: runs until cancelled."""
    changed = asyncio.Event()
    changed.set()
    queue.subscribe(changed.set)
    engine.subscribe(changed.set)
    known: Mapping[str, str] = {}
    marked: str | None = None
    while True:
        await changed.wait()
        changed.clear()
        playing = engine.status().now_playing
        if playing is not None and playing.play_id != marked:
            marked = playing.play_id
            if needs_cache([playing.entry.source]):
                await cache.mark_played(playing.entry.source)
        keys = [e.source for e in await queue.upcoming(count) if needs_cache([e.source])]
        if not keys:
            continue
        outcome = await cache.prefetch(keys)
        if any(known.get(key) != status for key, status in outcome.items()):
            engine.media_ready()
        known = outcome


@contextlib.asynccontextmanager
async def open_media_cache(edge: EdgeConfig) -> AsyncIterator[MediaCache]:
    """The media cache with the yt-dlp fetcher, closed on the way out. Imported here, not at the top:
    yt-dlp costs ~12 MB of RSS, which a box playing only local files does not need."""
    from djamms_edge.edge.media.cache import WORK_DIR_NAME, MediaCache
    from djamms_edge.edge.media.fetcher import YtDlpFetcher

    fetcher = YtDlpFetcher(edge.fetch, edge.cache_dir / WORK_DIR_NAME)
    cache = MediaCache(edge.state_dir / "media.db", edge.cache_dir, fetcher, edge.analysis, edge.cache)
    try:
        await cache.open()
        yield cache
    finally:
        await cache.close()  # closes the fetcher too: the cache owns it
