"""Keeping what plays next downloaded: the media cache fetches ahead of the engine.

Whenever the queue or the engine changes, the next few entries that are not local files
(video ids, URLs) are fetched by the media cache, each in a task of its own: a video that
cannot be had (an offline box, a dead link retrying with backoff) never holds up the ones
after it, and a fetch whose entry is no longer upcoming (the queue was replaced meanwhile)
is cancelled. Each fetch that settles (downloaded, or found gone) wakes the engine, so it
stops passing over that entry at once. Every upcoming entry is protected from eviction, and
the playing one is marked played for least-recently-played eviction.

The queue always moves: an entry in trouble (its last fetch failed, or its fetch has run longer
than ``slow_after_s`` — a dead server, a retry in backoff) keeps its fetch, or is tried again
when the cache allows, but no longer counts among the ``fetch`` downloads: the window widens
past it, so three unfetchable paid requests at the head do not stop the playlist behind them.

Nothing that goes wrong in one fetch stops the prefetcher (and with it the daemon): an entry whose fetch raised
is in trouble like one that failed. A disk that refuses writes (full, read-only: the cache index or the cache
directory) pauses every fetch, FIRST_PAUSE_S doubling to MAX_PAUSE_S, until one works again: the music that is
cached plays on meanwhile, and the trouble is reported once (edge/disk_trouble.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from djamms_edge.edge.player.engine import EngineStatus
from djamms_edge.edge.queue.source import QueueView
from djamms_edge.shared.sqlite import is_storage_error
from djamms_edge.shared.tasks import TaskOwner

if TYPE_CHECKING:
    from djamms_edge.edge.config import EdgeConfig
    from djamms_edge.edge.disk_trouble import DiskTrouble
    from djamms_edge.edge.media.analysis import TrackAnalysis
    from djamms_edge.edge.media.cache import CacheEntry, MediaCache
    from djamms_edge.shared.song_details import SongDetails

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


SLOW_AFTER_S = 10.0  # a fetch running longer than this stops holding up the entries after it
RECHECK_S = 30.0  # how often entries whose fetch failed are offered to the cache again (it decides when to retry)
FIRST_PAUSE_S = 5.0  # the disk refused a write: no fetch starts for this long, doubling for each refusal in a row
MAX_PAUSE_S = 300.0
CACHE_DIRECTORY = "the media cache directory"  # the disk-trouble area of the cache's files (its index is media.db)


def fetch_window(upcoming: Sequence[str], fetch: int, in_trouble: Callable[[str], bool]) -> list[str]:
    """The upcoming keys to fetch now: from the head, until ``fetch`` of them are not in trouble."""
    window: list[str] = []
    healthy = 0
    for key in upcoming:
        if healthy >= fetch:
            break
        window.append(key)
        healthy += not in_trouble(key)
    return window


async def keep_prefetched(
    queue: QueueView, cache: CacheFeeder, engine: EngineView, *, fetch: int, protect: int,
    slow_after_s: float = SLOW_AFTER_S, recheck_s: float = RECHECK_S, first_pause_s: float = FIRST_PAUSE_S,
    trouble: DiskTrouble | None = None,
) -> None:
    """The prefetcher's task, until cancelled: fetch the first ``fetch`` upcoming downloads that are not in
    trouble at once (and keep at the ones in trouble before them), protect the first ``protect`` from eviction.
    ``trouble`` hears of the cache directory's files refusing writes (the index's database reports its own)."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    changed.set()
    queue.subscribe(changed.set)
    engine.subscribe(changed.set)
    fetches = TaskOwner("prefetch")
    running: dict[str, asyncio.Task[None]] = {}
    started: dict[str, float] = {}  # key -> loop time its running fetch began
    settled: dict[str, str] = {}  # key -> the cache status last seen: the engine is woken when one changes
    refused: set[str] = set()
    unexpected: set[str] = set()  # keys whose fetch raised something no rule expects: logged once each
    disk_refusals = 0  # in a row: the pause doubles
    paused_until = 0.0  # loop time: no fetch starts before (the disk refused a write)

    def in_trouble(key: str) -> bool:
        if key in running:
            return loop.time() - started[key] >= slow_after_s
        return settled.get(key, "ready") != "ready"

    def due(key: str) -> bool:
        """Whether to (re)start the fetch of ``key``: a failed one only every ``recheck_s`` (the cache itself
        decides whether it is time to download again; asking it is cheap, but not in a loop)."""
        if key in running or loop.time() < paused_until:
            return False
        return not in_trouble(key) or loop.time() - started[key] >= recheck_s

    def next_look() -> float | None:
        """Seconds until a running fetch turns slow or a failed one is due again; None: nothing to wait for."""
        now = loop.time()
        deadlines = [started[k] + slow_after_s for k in running]
        deadlines += [started[k] + recheck_s for k, status in settled.items() if status != "ready" and k in started]
        deadlines.append(paused_until)
        future = [d - now for d in deadlines if d > now]
        return min(future) if future else None

    async def fetch_one(key: str, protected: frozenset[str]) -> None:
        nonlocal disk_refusals, paused_until
        try:
            status = (await cache.ensure(key, protected)).status
        except ValueError as exc:  # InvalidSource: the queue holds something no fetcher may see
            if key not in refused:
                refused.add(key)
                log.warning("not prefetching %r: %s", key, exc)
            return
        except Exception as exc:  # one track's error, never the prefetcher's end
            if is_storage_error(exc):  # the disk's trouble, not the track's: every fetch waits, then this one again
                disk_refusals += 1
                paused_until = loop.time() + min(first_pause_s * 2 ** (disk_refusals - 1), MAX_PAUSE_S)
                if trouble is not None and not isinstance(exc, sqlite3.Error):  # the database reports its own
                    trouble.failed(CACHE_DIRECTORY, exc)
                changed.set()  # the loop's next look waits for the pause
                return
            status = "failed"
            if key not in unexpected:
                unexpected.add(key)
                log.exception("fetching %s failed unexpectedly; it is tried again later", key)
        else:
            if settled.get(key) != status and disk_refusals:  # a fetch settled: the disk took its writes
                disk_refusals = 0
                if trouble is not None:
                    trouble.worked(CACHE_DIRECTORY)
        finally:
            if running.get(key) is asyncio.current_task():
                del running[key]
        if settled.get(key) != status:
            settled[key] = status
            engine.media_ready()
            changed.set()  # the window may move: this one is in trouble now, or out of it

    marked: str | None = None
    failed = asyncio.ensure_future(fetches.failed.wait())
    try:
        while True:
            woken = asyncio.ensure_future(changed.wait())
            await asyncio.wait([woken, failed], timeout=next_look(), return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            if fetches.failure is not None:
                raise fetches.failure
            changed.clear()
            playing = engine.status().now_playing
            if playing is not None and playing.play_id != marked:
                marked = playing.play_id
                if needs_cache([playing.entry.source]):
                    try:
                        await cache.mark_played(playing.entry.source)
                    except Exception as exc:  # eviction order only: a full disk costs that (the database reports)
                        if not is_storage_error(exc):
                            raise
            # Entries in trouble widen the window, so look as much further down the queue.
            looking = protect + sum(map(in_trouble, {*running, *settled}))
            upcoming = list(dict.fromkeys(e.source for e in await queue.upcoming(looking) if needs_cache([e.source])))
            wanted = fetch_window(upcoming, fetch, in_trouble)
            for key in [k for k in running if k not in wanted]:
                log.info("no longer upcoming: stopped fetching %s", key)
                running.pop(key).cancel()
            protected = frozenset(upcoming)
            for key in wanted:
                if due(key):
                    started[key] = loop.time()
                    running[key] = fetches.start(fetch_one(key, protected), key)
    finally:
        failed.cancel()
        await fetches.close()


@contextlib.asynccontextmanager
async def open_media_cache(
    edge: EdgeConfig, on_analysed: Callable[[str, TrackAnalysis], Awaitable[None]] | None = None,
    on_described: Callable[[str, SongDetails], Awaitable[None]] | None = None,
) -> AsyncIterator[MediaCache]:
    """The media cache with the yt-dlp fetcher (yt-dlp itself runs in media worker processes), closed on the
    way out. ``on_analysed``: each fetch-time analysis (the hub's catalog learns the trimmed length as soon as
    the box has the track); ``on_described``: what each download is (the hub fills in songs added by URL alone)."""
    from djamms_edge.edge.media.cache import WORK_DIR_NAME, MediaCache
    from djamms_edge.edge.media.fetcher import YtDlpFetcher

    fetcher = YtDlpFetcher(edge.fetch, edge.cache_dir / WORK_DIR_NAME)
    cache = MediaCache(edge.state_dir / "media.db", edge.cache_dir, fetcher, edge.analysis, edge.cache,
                       on_analysed=on_analysed, on_described=on_described)
    try:
        await cache.open()
        yield cache
    finally:
        await cache.close()  # closes the fetcher too: the cache owns it
