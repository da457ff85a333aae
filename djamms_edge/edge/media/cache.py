"""The local media cache: downloaded files, their index and their analysis, in one SQLite file.

Interface for the playback engine and the daemon (all methods are coroutines; ``key`` is a
source key as ``djamms_edge.shared.ids.parse_source`` accepts it: a video id or an http(s) URL)::

    cache = MediaCache(db_path, cache_dir, fetcher, analysis_config, cache_config)
    await cache.open()                          # migrations, then reconcile files with the index
    track = await cache.playable(key)           # CachedTrack (path, duration, real_start, real_end,
                                                #   loudness_lufs) or None if not cached
    entry = await cache.ensure(key, protected)  # fetch + fast analysis if missing; CacheEntry with status
    await cache.prefetch(upcoming_keys)         # the first prefetch_count; all of them protected
    await cache.mark_played(key)                # feeds least-recently-played eviction
    await cache.set_override(key, real_start=…, real_end=…, loudness_lufs=…)  # manual values always win
    await cache.store_analysis(key, analysis)   # results from elsewhere (the hub's catalog)
    keys = await cache.needing_full_analysis()  # cached tracks without loudness (idle nights)
    await cache.reanalyze(key, full=True)       # run and store a full pass
    await cache.close()

Files appear under their final name only by atomic rename and are indexed only after that, so a
download killed at any moment leaves scratch (removed on open) or an unindexed file (removed on
open), never an entry that looks complete. Eviction removes the index row before the file.
Statuses: ``ready``; ``unavailable`` (clearly gone at the source: removed, private; never retried
by itself); ``broken`` (downloaded but not playable media, or its analysis worker crashed on it
``MAX_ANALYSIS_CRASHES`` times in a row; never retried by itself); ``failed`` (network trouble; YouTube
refusing this box: a 403, missing formats, a bot check; no process could be started to analyse the download;
the analysis worker was killed, crashed or hung on it fewer times than that: failure class ``crashed``;
retried by an ensure once ``retry_failed_seconds`` have passed, doubling for each refusal in a row up to
``retry_refused_max_seconds``, and at once when yt-dlp is a new version).
``clear_failures`` (``djamms-edge cache retry``) forgets any of these marks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import re
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from djamms_edge.edge.media.analysis import TrackAnalysis
from djamms_edge.edge.media.config import AnalysisConfig, CacheConfig
from djamms_edge.edge.media.eviction import Resident, choose_evictions
from djamms_edge.edge.media.fetcher import (
    FailureClass,
    Fetched,
    Fetcher,
    FetchFailed,
    FetchUnavailable,
    classify_failure,
)
from djamms_edge.edge.media.ffmpeg import MediaError
from djamms_edge.edge.media.worker import AnalysisCrashed, AnalysisNotRun, analyze
from djamms_edge.shared.ids import MediaSource, is_video_id, parse_source
from djamms_edge.shared.song_details import SongDetails
from djamms_edge.shared.sqlite import Database, Migrations

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)

Status = Literal["ready", "unavailable", "broken", "failed"]
# Why a ``failed`` entry failed: the fetcher's classes, or ``crashed`` (its analysis worker died on the download).
FailureKind = FailureClass | Literal["crashed"]
WORK_DIR_NAME = ".partial"
# An analysis worker killed (its limit, the out-of-memory killer) or crashing this many times in a row on the same
# track makes it broken. Once is often the box: a 1 GB Pi short of memory while a download and a night analysis
# run, a slow card past the limit. Each try is a new download and a fresh worker at least ``retry_failed_seconds``
# apart, so three in a row is the file (one that crashes libav every time), at the cost of two more downloads.
MAX_ANALYSIS_CRASHES = 3

migrations = Migrations("edge.media")


@migrations()
def m001_cache(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE media_files (
            key TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ('ready', 'unavailable', 'broken', 'failed')),
            file_name TEXT,
            size_bytes INTEGER,
            duration REAL,
            title TEXT,
            fetched_at REAL,
            last_played_at REAL,
            error TEXT,
            updated_at REAL NOT NULL,
            CHECK (status != 'ready' OR (file_name IS NOT NULL AND size_bytes IS NOT NULL))
        )"""
    )
    db.execute(
        """CREATE TABLE track_analysis (
            key TEXT PRIMARY KEY,
            real_start REAL,
            real_end REAL,
            duration REAL,
            loudness_lufs REAL,
            method TEXT,
            analyzed_at REAL,
            override_start REAL,
            override_end REAL,
            override_loudness_lufs REAL
        )"""
    )


@migrations()
def m002_failure_classes(db: sqlite_utils.Database) -> None:
    db.execute("ALTER TABLE media_files ADD COLUMN failures INTEGER NOT NULL DEFAULT 0")  # in a row, for backoff
    db.execute("ALTER TABLE media_files ADD COLUMN failure_class TEXT")  # transient or environment
    db.execute("ALTER TABLE media_files ADD COLUMN tool_version TEXT")  # the fetcher's (yt-dlp's) version then
    # Before failure classes a 403 or "format not available" (a box without a JS runtime) was marked unavailable
    # and never fetched again: those rows become retryable failures.
    rows = db.execute("SELECT key, error FROM media_files WHERE status = 'unavailable'").fetchall()
    for key, error in rows:
        if classify_failure(error or "") == "environment":
            db.execute(
                "UPDATE media_files SET status = 'failed', failure_class = 'environment', failures = 1 WHERE key = ?",
                (key,),
            )


@dataclass(frozen=True, slots=True)
class CachedTrack:
    """What the player needs: a local file and the effective cues (manual override > analysis > whole file)."""

    key: str
    path: Path
    duration: float
    real_start: float
    real_end: float
    loudness_lufs: float | None
    title: str | None


@dataclass(frozen=True, slots=True)
class CacheEntry:
    key: str
    status: Status
    size_bytes: int | None = None
    error: str | None = None
    updated_at: float | None = None
    failures: int = 0  # failures of the same class in a row
    failure_class: FailureKind | None = None
    tool_version: str | None = None  # the fetcher's version when it last failed


class MediaCache:
    def __init__(
        self,
        db_path: Path,
        cache_dir: Path,
        fetcher: Fetcher,
        analysis_config: AnalysisConfig,
        config: CacheConfig,
        *,
        clock: Callable[[], float] = time.time,
        on_analysed: Callable[[str, TrackAnalysis], Awaitable[None]] | None = None,
        on_described: Callable[[str, SongDetails], Awaitable[None]] | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.work_dir = cache_dir / WORK_DIR_NAME
        self._db = Database(db_path, migrations, move_damaged_aside=True)
        self._fetcher = fetcher
        self._analysis_config = analysis_config
        self._config = config
        self._clock = clock
        self._on_analysed = on_analysed  # told of each fetch-time analysis (the daemon reports it to the hub)
        # Told what each download is (artist, title, measured length): the hub fills in songs added by URL alone.
        self._on_described = on_described
        self._in_flight: dict[str, asyncio.Future[CacheEntry]] = {}
        self._closed = False

    async def open(self, *, reconcile: bool = True) -> None:
        """``reconcile=False`` opens only the index: for a tool running beside the daemon, whose downloads
        in flight a reconcile would delete."""
        await asyncio.to_thread(self.cache_dir.mkdir, parents=True, exist_ok=True)
        await self._db.open()
        if self._db.damaged is not None:
            await self.index_files_on_disk()
        # An index opened read-only (a full disk at start) may miss the last downloads: nothing is deleted by it.
        if reconcile and self._db.read_only is None:
            await self.reconcile()

    async def close(self) -> None:
        """Close the fetcher (the cache owns it) and the database; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        await self._fetcher.close()
        await self._db.close()

    @property
    def database(self) -> Database:
        """The index's database (its ``damaged`` says whether it was rebuilt from the files on disk at open)."""
        return self._db

    async def index_files_on_disk(self) -> int:
        """Index every finished media file in the cache directory again (the index was lost): each becomes
        a ready entry without analysis, analysed again (not downloaded) when it is next wanted. A file named
        after a video id is found under that id at once; a URL's file (named by a hash of the URL) under its
        file stem, until the URL is asked for again. Scratch is left for ``reconcile`` to remove."""
        found = await asyncio.to_thread(self._media_files_on_disk)
        now = self._clock()
        await self._db.write(
            lambda c: c.executemany(
                """INSERT OR IGNORE INTO media_files (key, status, file_name, size_bytes, fetched_at, updated_at)
                   VALUES (?, 'ready', ?, ?, ?, ?)""",
                [(path.name.split(".", 1)[0], path.name, size, mtime, now) for path, size, mtime in found],
            )
        )
        log.warning("cache index rebuilt from the files on disk: %d media files kept, none downloaded again",
                    len(found))  # fmt: skip
        return len(found)

    def _media_files_on_disk(self) -> list[tuple[Path, int, float]]:
        found = []
        database_files = self._database_files()
        for path in self.cache_dir.iterdir():
            stem = path.name.split(".", 1)[0]
            named_by_us = is_video_id(stem) or re.fullmatch(r"url-[0-9a-f]{24}", stem) is not None
            if named_by_us and "." in path.name and path.is_file() and path.resolve() not in database_files:
                stat = path.stat()
                found.append((path, stat.st_size, stat.st_mtime))
        return found

    def _database_files(self) -> set[Path]:
        """The SQLite file with its -wal/-shm: it may live in the cache directory, and it is not media."""
        database = self._db.path.resolve()
        return {database.parent / (database.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")}

    # --- reading -------------------------------------------------------------------------

    async def playable(self, key: str) -> CachedTrack | None:
        row = await self._db.read(lambda c: c.execute(_PLAYABLE_SQL, (key,)).fetchone())
        if row is None:
            return None
        path = self.cache_dir / row["file_name"]
        if not await asyncio.to_thread(path.is_file):
            return None
        return CachedTrack(
            key=key,
            path=path,
            duration=row["duration"],
            real_start=row["real_start"],
            real_end=row["real_end"],
            loudness_lufs=row["loudness_lufs"],
            title=row["title"],
        )

    async def entry(self, key: str) -> CacheEntry | None:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT key, status, size_bytes, error, updated_at, failures, failure_class, tool_version "
                "FROM media_files WHERE key = ?", (key,)
            ).fetchone()
        )
        return None if row is None else CacheEntry(*row)

    async def usage(self) -> tuple[int, int]:
        """(files, bytes) of ready entries."""
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT count(*), coalesce(sum(size_bytes), 0) FROM media_files WHERE status = 'ready'"
            ).fetchone()
        )
        return int(row[0]), int(row[1])

    async def needing_full_analysis(self) -> list[str]:
        """Cached tracks whose loudness is unknown, least recently played last."""
        rows = await self._db.read(
            lambda c: c.execute(
                """SELECT f.key FROM media_files f LEFT JOIN track_analysis a ON a.key = f.key
                   WHERE f.status = 'ready' AND a.loudness_lufs IS NULL AND a.override_loudness_lufs IS NULL
                   ORDER BY coalesce(f.last_played_at, f.fetched_at) DESC"""
            ).fetchall()
        )
        return [row[0] for row in rows]

    # --- fetching ------------------------------------------------------------------------

    async def ensure(self, key: str, protected: Collection[str] = ()) -> CacheEntry:
        """Make ``key`` playable from the cache if it can be; raises InvalidSource before anything runs."""
        source = parse_source(key)
        current = await self.entry(source.key)
        if current is not None and current.status in ("unavailable", "broken"):
            return current  # gone for good: never fetched again
        if current is not None and current.status == "failed" and not self._may_retry(current):
            return current  # the network was down a moment ago: the queue moves on, we try later
        if current is not None and current.status == "ready" and await self.playable(source.key) is not None:
            return current
        running = self._in_flight.get(source.key)
        if running is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if running.cancelled() and task is not None and not task.cancelling():
                    return await self.ensure(key, protected)  # the fetch we joined was cancelled, not us
                raise
        future: asyncio.Future[CacheEntry] = asyncio.get_running_loop().create_future()
        self._in_flight[source.key] = future
        try:
            result = await self._fetch_and_index(source)
            future.set_result(result)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a waiter may not exist
            raise
        finally:
            del self._in_flight[source.key]
        if result.status == "ready":
            await self.evict({*protected, source.key})
        return result

    def _may_retry(self, failed: CacheEntry) -> bool:
        if failed.updated_at is None or failed.tool_version != self._fetcher.version:
            return True  # a new yt-dlp is the usual fix for YouTube's changes: try it at once
        return self._clock() - failed.updated_at >= self.retry_delay(failed)

    def retry_delay(self, failed: CacheEntry) -> float:
        """Network trouble: ``retry_failed_seconds``. YouTube refusing this box: that, doubled for each refusal
        in a row, up to ``retry_refused_max_seconds`` (a box that is refused asks rarely, not never)."""
        base = self._config.retry_failed_seconds
        if failed.failure_class != "environment":
            return base
        return min(base * 2 ** max(failed.failures - 1, 0), max(base, self._config.retry_refused_max_seconds))

    async def clear_failures(self, keys: Collection[str] | None = None) -> list[str]:
        """Forget failure marks (unavailable, broken, failed) of ``keys``, or of every entry when None, so the
        next ensure fetches again. Returns the keys cleared."""

        def clear(conn: sqlite3.Connection) -> list[str]:
            marked = "status IN ('unavailable', 'broken', 'failed')"
            if keys is None:
                rows = conn.execute(f"SELECT key FROM media_files WHERE {marked}").fetchall()
            else:
                wanted = list(keys)
                rows = conn.execute(
                    f"SELECT key FROM media_files WHERE {marked} AND key IN ({', '.join('?' * len(wanted))})", wanted
                ).fetchall()
            cleared = [row[0] for row in rows]
            conn.executemany("DELETE FROM media_files WHERE key = ?", [(key,) for key in cleared])
            return cleared

        return await self._db.write(clear)

    async def failures(self) -> list[CacheEntry]:
        """Entries marked unavailable, broken or failed, most recent first."""
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT key, status, size_bytes, error, updated_at, failures, failure_class, tool_version "
                "FROM media_files WHERE status != 'ready' ORDER BY updated_at DESC"
            ).fetchall()
        )
        return [CacheEntry(*row) for row in rows]

    async def prefetch(self, upcoming: Sequence[str]) -> dict[str, Status]:
        """Fetch the first ``prefetch_count`` upcoming entries, protecting every upcoming one from eviction."""
        protected = set(upcoming)
        outcome: dict[str, Status] = {}
        for key in list(upcoming)[: self._config.prefetch_count]:
            try:
                outcome[key] = (await self.ensure(key, protected)).status
            except ValueError as exc:  # InvalidSource: the queue holds something no fetcher may see
                log.warning("not prefetching %r: %s", key, exc)
        return outcome

    async def _fetch_and_index(self, source: MediaSource) -> CacheEntry:
        found = await self._found_on_disk(source)
        if found is not None:
            try:
                return await self._analyse_and_index(source, found, how="found on disk")
            except MediaError as exc:  # damaged on the card as well: download it again
                log.warning("%s on disk is not playable media (%s); downloading it again", source.key, exc)
                await asyncio.to_thread(found.path.unlink, True)
        await asyncio.to_thread(self.work_dir.mkdir, parents=True, exist_ok=True)
        try:
            fetched = await self._fetcher.fetch(source, self.cache_dir / _file_stem(source))
        except FetchUnavailable as exc:
            log.warning("%s is unavailable: %s", source.key, exc)
            return await self._set_status(source.key, "unavailable", str(exc))
        except FetchFailed as exc:
            log.warning("could not fetch %s: %s", source.key, exc)
            return await self._set_status(source.key, "failed", str(exc), exc.failure_class, exc.tool_version)
        try:
            return await self._analyse_and_index(source, fetched, how="cached")
        except AnalysisNotRun as exc:  # the file was never looked at (a fork failed): not broken, tried again later
            log.warning("could not analyse %s: %s", source.key, exc)
            await asyncio.to_thread(fetched.path.unlink, True)
            return await self._set_status(source.key, "failed", str(exc), "transient")
        except AnalysisCrashed as exc:  # maybe the box (memory, load), maybe the file: broken only if it repeats
            await asyncio.to_thread(fetched.path.unlink, True)
            failed = await self._set_status(source.key, "failed", str(exc), "crashed")
            if failed.failures < MAX_ANALYSIS_CRASHES:
                log.warning("could not analyse %s (%d of %d tries): %s", source.key, failed.failures,
                            MAX_ANALYSIS_CRASHES, exc)
                return failed
            log.warning("%s is not playable media: %s (%d times in a row)", source.key, exc, failed.failures)
            return await self._set_status(source.key, "broken", f"{exc} ({failed.failures} times in a row)")
        except MediaError as exc:
            log.warning("%s is not playable media: %s", source.key, exc)
            await asyncio.to_thread(fetched.path.unlink, True)
            return await self._set_status(source.key, "broken", str(exc))
        except Exception:  # the index refused it (a full disk): the unindexed file would only take up space
            with contextlib.suppress(OSError):
                await asyncio.to_thread(fetched.path.unlink, True)
            raise

    async def _found_on_disk(self, source: MediaSource) -> Fetched | None:
        """The file of ``source`` indexed from disk after the index was lost (no analysis yet), if still there."""
        stem = _file_stem(source)
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT file_name, size_bytes FROM media_files WHERE key IN (?, ?) AND status = 'ready' "
                "AND duration IS NULL AND file_name LIKE ? ESCAPE '\\'",
                (source.key, stem, stem.replace("_", "\\_") + ".%"),
            ).fetchone()
        )
        if row is None:
            return None
        path = self.cache_dir / row["file_name"]
        size = await asyncio.to_thread(lambda: path.stat().st_size if path.is_file() else None)
        return Fetched(path, size, None) if size == row["size_bytes"] else None

    async def _analyse_and_index(self, source: MediaSource, fetched: Fetched, how: str) -> CacheEntry:
        """Index a finished file as ready, analysing it first unless its analysis is known; raises MediaError."""
        known = await self._analysis(source.key)
        duration = known.duration if known is not None else None
        if known is None:
            analysis = await analyze(fetched.path, self._analysis_config)
            await self.store_analysis(source.key, analysis)
            if self._on_analysed is not None:
                try:
                    await self._on_analysed(source.key, analysis)
                except Exception as exc:  # a report for the hub's catalog: the track is ready all the same
                    log.warning("could not report the analysis of %s: %s", source.key, exc)
            duration = analysis.duration
        now = self._clock()
        stem = _file_stem(source)

        def index(conn: sqlite3.Connection) -> None:
            # A URL's file indexed from disk under its stem now has its real key.
            conn.execute("DELETE FROM media_files WHERE key = ? AND key != ?", (stem, source.key))
            conn.execute(
                """INSERT INTO media_files (key, status, file_name, size_bytes, duration, title, fetched_at, updated_at)
                   VALUES (?, 'ready', ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET status = 'ready', file_name = excluded.file_name,
                     size_bytes = excluded.size_bytes, duration = excluded.duration, title = excluded.title,
                     fetched_at = excluded.fetched_at, error = NULL, updated_at = excluded.updated_at,
                     failures = 0, failure_class = NULL""",
                (source.key, fetched.path.name, fetched.size, duration, fetched.title, now, now),
            )

        await self._db.write(index)
        log.info("%s %s (%.1f MB)", how, source.key, fetched.size / 1e6)
        if fetched.details is not None and self._on_described is not None:
            measured = dataclasses.replace(fetched.details, duration=duration or fetched.details.duration)
            try:
                await self._on_described(source.key, measured)
            except Exception:  # what the song is named never costs the download (the sync state may be in trouble)
                log.warning("could not pass on the details of %s", source.key, exc_info=True)
        return CacheEntry(source.key, "ready", fetched.size, None, now)

    async def _set_status(
        self, key: str, status: Status, error: str, failure_class: FailureKind | None = None,
        tool_version: str | None = None,
    ) -> CacheEntry:
        now, version = self._clock(), tool_version or self._fetcher.version

        def write(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                """INSERT INTO media_files (key, status, error, updated_at, failures, failure_class, tool_version)
                   VALUES (?, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET status = excluded.status, error = excluded.error,
                     file_name = NULL, size_bytes = NULL, updated_at = excluded.updated_at,
                     failures = CASE WHEN media_files.status = excluded.status
                                      AND media_files.failure_class IS excluded.failure_class
                                     THEN media_files.failures + 1 ELSE 1 END,
                     failure_class = excluded.failure_class, tool_version = excluded.tool_version
                   RETURNING failures""",
                (key, status, error, now, failure_class, version),
            ).fetchone()
            return int(row[0])

        failures = await self._db.write(write)
        return CacheEntry(key, status, None, error, now, failures, failure_class, version)

    # --- playing and analysis -------------------------------------------------------------

    async def describe(self, key: str) -> SongDetails | None:
        """What ``key`` is, looked up without downloading it (the fetcher's ``describe``); raises InvalidSource."""
        return await self._fetcher.describe(parse_source(key))

    async def mark_played(self, key: str) -> None:
        now = self._clock()
        await self._db.write(lambda c: c.execute("UPDATE media_files SET last_played_at = ? WHERE key = ?", (now, key)))

    async def store_analysis(self, key: str, analysis: TrackAnalysis) -> None:
        """Record measured cues (and loudness, if measured); a manual override stays in force."""
        now = self._clock()
        await self._db.write(
            lambda c: c.execute(
                """INSERT INTO track_analysis (key, real_start, real_end, duration, loudness_lufs, method, analyzed_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET real_start = excluded.real_start, real_end = excluded.real_end,
                     duration = excluded.duration, method = excluded.method, analyzed_at = excluded.analyzed_at,
                     loudness_lufs = coalesce(excluded.loudness_lufs, track_analysis.loudness_lufs)""",
                (
                    key,
                    analysis.real_start_offset,
                    analysis.real_end_offset,
                    analysis.duration,
                    analysis.loudness_lufs,
                    analysis.method,
                    now,
                ),
            )
        )

    async def set_override(
        self,
        key: str,
        *,
        real_start: float | None = None,
        real_end: float | None = None,
        loudness_lufs: float | None = None,
    ) -> None:
        """Manual values that win over any analysis (None clears that override)."""
        await self._db.write(
            lambda c: c.execute(
                """INSERT INTO track_analysis (key, override_start, override_end, override_loudness_lufs)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET override_start = excluded.override_start,
                     override_end = excluded.override_end, override_loudness_lufs = excluded.override_loudness_lufs""",
                (key, real_start, real_end, loudness_lufs),
            )
        )

    async def reanalyze(self, key: str, *, full: bool = True, low_priority: bool = False) -> TrackAnalysis | None:
        """Analyse a cached file again (a full pass measures loudness) and store the result.

        Raises MediaError if the file is not playable after all; cancelling stops ffmpeg at once."""
        track = await self.playable(key)
        if track is None:
            return None
        analysis = await analyze(track.path, self._analysis_config, full=full, low_priority=low_priority)
        await self.store_analysis(key, analysis)
        return analysis

    async def _analysis(self, key: str) -> TrackAnalysis | None:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT * FROM track_analysis WHERE key = ? AND real_end IS NOT NULL", (key,)
            ).fetchone()
        )
        if row is None:
            return None
        return TrackAnalysis(row["real_start"], row["real_end"], row["duration"], row["loudness_lufs"], row["method"])

    # --- keeping the disk in order ------------------------------------------------------------

    async def evict(self, protected: Collection[str] = ()) -> list[str]:
        """Delete least-recently-played files until under ``max_bytes``; never a protected key."""

        def choose_and_unindex(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                """SELECT key, file_name, size_bytes, coalesce(last_played_at, fetched_at, 0) AS used
                   FROM media_files WHERE status = 'ready'"""
            ).fetchall()
            residents = [Resident(r["key"], r["size_bytes"], r["used"]) for r in rows]
            chosen = set(choose_evictions(residents, self._config.max_bytes, set(protected)))
            files = [(r["key"], r["file_name"]) for r in rows if r["key"] in chosen]
            conn.executemany("DELETE FROM media_files WHERE key = ?", [(key,) for key, _ in files])
            return files

        evicted = await self._db.write(choose_and_unindex)
        for key, file_name in evicted:  # index first, then the file: a crash in between leaves an orphan file
            await asyncio.to_thread((self.cache_dir / file_name).unlink, True)
            log.info("evicted %s from the cache", key)
        return [key for key, _ in evicted]

    async def reconcile(self) -> None:
        """Make files and index agree: scratch and unindexed files go, rows whose file is gone or wrong go."""
        rows = await self._db.read(
            lambda c: c.execute("SELECT key, file_name, size_bytes FROM media_files WHERE status = 'ready'").fetchall()
        )
        stale = await asyncio.to_thread(self._stale_rows, rows)
        if stale:
            await self._db.write(
                lambda c: c.executemany("DELETE FROM media_files WHERE key = ?", [(k,) for k in stale])
            )
        indexed = {row["file_name"] for row in rows if row["key"] not in stale}
        removed = await asyncio.to_thread(self._remove_unindexed, indexed)
        if stale or removed:
            log.info("cache reconciled: %d index rows without their file, %d leftover files removed",
                     len(stale), removed)  # fmt: skip
        await self.evict()

    def _stale_rows(self, rows: list[sqlite3.Row]) -> list[str]:
        stale = []
        for row in rows:
            path = self.cache_dir / row["file_name"]
            if not path.is_file() or path.stat().st_size != row["size_bytes"]:
                stale.append(row["key"])
        return stale

    def _remove_unindexed(self, indexed: set[str]) -> int:
        shutil.rmtree(self.work_dir, ignore_errors=True)
        keep = self._database_files()
        removed = 0
        for path in self.cache_dir.iterdir():
            if path.name in indexed or path.resolve() in keep:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
        return removed


_PLAYABLE_SQL = """
SELECT f.file_name, f.title,
       coalesce(f.duration, a.duration) AS duration,
       coalesce(a.override_start, a.real_start, 0.0) AS real_start,
       coalesce(a.override_end, a.real_end, f.duration, a.duration) AS real_end,
       coalesce(a.override_loudness_lufs, a.loudness_lufs) AS loudness_lufs
FROM media_files f LEFT JOIN track_analysis a ON a.key = f.key
WHERE f.key = ? AND f.status = 'ready' AND coalesce(f.duration, a.duration) IS NOT NULL
"""


def _file_stem(source: MediaSource) -> str:
    """Video ids are safe file names; URLs are hashed (no path tricks, no length limits)."""
    if source.kind == "youtube":
        return source.value
    return "url-" + hashlib.sha256(source.value.encode()).hexdigest()[:24]
