"""Keeping what plays next downloaded: the media cache fetches ahead of the engine.

Whenever the queue or the engine changes, the next few entries that are not local files
(video ids, URLs) are fetched by the media cache, each in a task of its own: a video that
cannot be had (an offline box, a dead link retrying with backoff) never holds up the ones
after it, and a fetch whose entry is no longer upcoming (the queue was replaced meanwhile)
is cancelled. Each fetch that settles (downloaded, or found gone) wakes the engine, so it
stops passing over that entry at once. Every upcoming entry is protected from eviction, and
the playing one is marked played for least-recently-played eviction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from djamms_edge.edge.player.engine import EngineStatus
from djamms_edge.edge.queue.source import QueueSource
from djamms_edge.shared.tasks import TaskOwner

if TYPE_CHECKING:
    from djamms_edge.edge.config import EdgeConfig
    from djamms_edge.edge.media.cache import CacheEntry, MediaCache

log = logging.getLogger(__name__)


class CacheFeeder(Protocol):
    async def ensure(self, key: str, protected: Collection[str] = ()) -> CacheEntry: ...

    async def mark_played(self, key: str) -> None: ...


class EngineView(Protocol):
    """What the prefetcher needs of the playback engine."""

    def status(self) -> EngineStatus: ...

    def subscribe(self, on_change: Callable[[], None]) -> None: ...

    def media_ready(self) -> None: ...


def needs_cache(sources: Sequence[str]) -> bool:
    """Whether any source must be downloaded (anything but a local file path)."""
    return any(not Path(source).is_absolute() for source in sources)


async def keep_prefetched(
    queue: QueueSource, cache: CacheFeeder, engine: EngineView, *, fetch: int, protect: int
) -> None:
    """The prefetcher's task, until cancelled: fetch the first ``fetch`` upcoming downloads at once,
    protect the first ``protect`` from eviction."""
    changed = asyncio.Event()
    changed.set()
    queue.subscribe(changed.set)
    engine.subscribe(changed.set)
    fetches = TaskOwner("prefetch")
    running: dict[str, asyncio.Task[None]] = {}
    settled: dict[str, str] = {}  # key -> the cache status last seen: the engine is woken when one changes
    refused: set[str] = set()

    async def fetch_one(key: str, protected: frozenset[str]) -> None:
        try:
            status = (await cache.ensure(key, protected)).status
        except ValueError as exc:  # InvalidSource: the queue holds something no fetcher may see
            if key not in refused:
                refused.add(key)
                log.warning("not prefetching %r: %s", key, exc)
            return
        finally:
            if running.get(key) is asyncio.current_task():
                del running[key]
        if settled.get(key) != status:
            settled[key] = status
            engine.media_ready()

    marked: str | None = None
    failed = asyncio.ensure_future(fetches.failed.wait())
    try:
        while True:
            woken = asyncio.ensure_future(changed.wait())
            await asyncio.wait([woken, failed], return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            if fetches.failure is not None:
                raise fetches.failure
            changed.clear()
            playing = engine.status().now_playing
            if playing is not None and playing.play_id != marked:
                marked = playing.play_id
                if needs_cache([playing.entry.source]):
                    await cache.mark_played(playing.entry.source)
            upcoming = list(dict.fromkeys(e.source for e in await queue.upcoming(protect) if needs_cache([e.source])))
            wanted = upcoming[:fetch]
            for key in [k for k in running if k not in wanted]:
                log.info("no longer upcoming: stopped fetching %s", key)
                running.pop(key).cancel()
            protected = frozenset(upcoming)
            for key in wanted:
                if key not in running:
                    running[key] = fetches.start(fetch_one(key, protected), key)
    finally:
        failed.cancel()
        await fetches.close()


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
