"""MediaCache on real SQLite, real files, real ffmpeg analysis, and real yt-dlp against a loopback server."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
import sqlite_utils

from djamms_edge.edge.media.cache import MediaCache, migrations
from djamms_edge.edge.media.config import CacheConfig, FetchConfig
from djamms_edge.edge.media.fetcher import FakeFetcher, Fetched, YtDlpFetcher
from djamms_edge.shared.ids import InvalidSource, MediaSource
from tests.damage import garbage_header
from tests.edge.media.conftest import TRUTHS, WINDOWED, Clock, OpenCache, files_under
from tests.edge.media.http_server import MediaServer

TOLERANCE = 0.060
FETCH = FetchConfig(attempts=2, retry_base_seconds=0.01, socket_timeout_seconds=2.0, allowed_hosts=("127.0.0.1",))


@pytest.fixture
async def cache(open_cache: OpenCache, tmp_path: Path) -> MediaCache:
    """A cache fetching with real yt-dlp."""
    return await open_cache(YtDlpFetcher(FETCH, tmp_path / "cache" / ".partial"))


async def test_a_downloaded_track_is_playable_with_its_cues(
    cache: MediaCache, server: MediaServer, tmp_path: Path
) -> None:
    url = f"{server.url}/media/leading_silence.mp4"
    entry = await cache.ensure(url)
    assert entry.status == "ready"
    track = await cache.playable(url)
    assert track is not None and track.path.is_file() and track.path.parent == tmp_path / "cache"
    truth = TRUTHS["leading_silence"]
    assert track.real_start == pytest.approx(truth.real_start, abs=TOLERANCE)
    assert track.real_end == pytest.approx(truth.real_end, abs=TOLERANCE)
    assert track.duration == pytest.approx(truth.track.duration, abs=TOLERANCE)
    # Fetched once: asking again touches neither the network nor the file.
    requests = len(server.requests)
    assert (await cache.ensure(url)).status == "ready"
    assert len(server.requests) == requests


async def test_a_hostile_id_is_refused_before_anything_runs(
    cache: MediaCache, server: MediaServer, tmp_path: Path
) -> None:
    marker = tmp_path / "x"
    for hostile in (f"a$(touch {marker})", f"dQw4w9WgXc`touch {marker}`", f"; touch {marker}", "file:///etc/passwd"):
        with pytest.raises(InvalidSource):
            await cache.ensure(hostile)
    assert await cache.prefetch([f"a$(touch {marker})"]) == {}
    assert not marker.exists()
    assert server.requests == []
    assert await cache.usage() == (0, 0)


async def test_an_unavailable_source_gets_a_status_and_is_not_fetched_again(
    cache: MediaCache, server: MediaServer
) -> None:
    url = f"{server.url}/gone/removed.mp4"
    entry = await cache.ensure(url)
    assert entry.status == "unavailable" and "404" in (entry.error or "")
    assert (await cache.ensure(url)).status == "unavailable"
    assert len(server.requests) == 1
    assert await cache.playable(url) is None


async def test_a_connection_that_keeps_dropping_leaves_a_failed_entry_and_no_file(
    cache: MediaCache, server: MediaServer, tmp_path: Path
) -> None:
    url = f"{server.url}/drop/long_fade_out.mp4"
    entry = await cache.ensure(url)
    assert entry.status == "failed"
    assert await cache.playable(url) is None
    assert files_under(tmp_path / "cache") == []


async def test_a_download_that_is_not_media_is_broken_and_removed(open_cache: OpenCache, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    cache = await open_cache(FakeFetcher({"https://venue.example/notes.mp4": text}))
    entry = await cache.ensure("https://venue.example/notes.mp4")
    assert entry.status == "broken" and "not a readable media file" in (entry.error or "")
    assert await cache.playable("https://venue.example/notes.mp4") is None
    assert files_under(tmp_path / "cache") == []


async def test_a_transient_failure_is_retried_only_after_a_pause(
    open_cache: OpenCache, clock: Clock, media_dir: Path
) -> None:
    key = "https://venue.example/a.m4a"
    fake = FakeFetcher({key: media_dir / "hard_ending.m4a"}, transient_failures=1)
    cache = await open_cache(fake)
    assert (await cache.ensure(key)).status == "failed"
    clock.now += 60  # a minute later the network may still be down: no new attempt yet
    assert (await cache.ensure(key)).status == "failed"
    assert fake.fetched == []
    clock.now += 300
    assert (await cache.ensure(key)).status == "ready"
    assert fake.fetched == [key]


async def test_a_manual_override_always_wins(open_cache: OpenCache, media_dir: Path) -> None:
    key = "https://venue.example/fade.m4a"
    cache = await open_cache(FakeFetcher({key: media_dir / "long_fade_out.m4a"}))
    await cache.ensure(key)
    assert await cache.needing_full_analysis() == [key]  # the fast pass measured no loudness
    await cache.set_override(key, real_start=1.5, real_end=20.0, loudness_lufs=-9.0)
    assert await cache.reanalyze(key, full=True) is not None  # new measurements arrive after the override
    track = await cache.playable(key)
    assert track is not None
    assert (track.real_start, track.real_end, track.loudness_lufs) == (1.5, 20.0, -9.0)
    await cache.set_override(key)  # cleared: the measured values apply again
    track = await cache.playable(key)
    assert track is not None and track.loudness_lufs is not None and track.loudness_lufs != -9.0
    assert track.real_end == pytest.approx(TRUTHS["long_fade_out"].real_end, abs=TOLERANCE)
    assert await cache.needing_full_analysis() == []


async def test_the_index_and_overrides_survive_a_restart(open_cache: OpenCache, media_dir: Path) -> None:
    key = "https://venue.example/fade.m4a"
    fake = FakeFetcher({key: media_dir / "long_fade_out.m4a"})
    cache = await open_cache(fake)
    await cache.ensure(key)
    await cache.set_override(key, real_end=19.5)
    before = await cache.playable(key)
    await cache.close()
    reopened = await open_cache(FakeFetcher({}))  # same files and database; nothing can be fetched
    assert await reopened.playable(key) == before
    assert before is not None and before.real_end == 19.5
    assert (await reopened.ensure(key)).status == "ready"


async def test_eviction_keeps_under_the_cap_and_never_touches_the_queue(open_cache: OpenCache, media_dir: Path) -> None:
    names = ["hard_ending", "no_silence", "quiet_intro", "mid_silence"]
    files = {f"https://venue.example/{n}.m4a": media_dir / f"{n}.m4a" for n in names}
    keys = list(files)
    size = max(p.stat().st_size for p in files.values())
    cache = await open_cache(FakeFetcher(files), max_bytes=int(size * 2.5))  # room for two files
    await cache.ensure(keys[0])
    await cache.ensure(keys[1])
    await cache.mark_played(keys[1])  # keys[0] is now the least recently played
    # keys[0] is in the upcoming queue: the next least recently played goes instead.
    await cache.ensure(keys[2], protected={keys[0]})
    assert await cache.playable(keys[0]) is not None
    assert await cache.playable(keys[1]) is None
    assert await cache.playable(keys[2]) is not None
    await cache.ensure(keys[3])  # nothing protected now: the oldest (keys[0]) goes
    assert await cache.playable(keys[0]) is None
    count, total = await cache.usage()
    assert count == 2 and total <= size * 2.5
    assert len(files_under(Path(cache.cache_dir))) == 2


async def test_prefetch_fetches_the_next_n_and_protects_the_whole_queue(open_cache: OpenCache, media_dir: Path) -> None:
    files = {f"https://venue.example/{n}.m4a": media_dir / f"{n}.m4a" for n in ("hard_ending", "no_silence", "short")}
    keys = list(files)
    fake = FakeFetcher(files)
    cache = await open_cache(fake, prefetch_count=2)
    assert await cache.prefetch(keys) == {keys[0]: "ready", keys[1]: "ready"}
    assert fake.fetched == keys[:2]


async def test_two_ensures_of_one_key_fetch_once(open_cache: OpenCache, media_dir: Path) -> None:
    key = "https://venue.example/a.m4a"
    fake = FakeFetcher({key: media_dir / "hard_ending.m4a"})
    cache = await open_cache(fake)
    first, second = await asyncio.gather(cache.ensure(key), cache.ensure(key))
    assert first.status == second.status == "ready"
    assert fake.fetched == [key]


class GatedFetcher(FakeFetcher):
    """A fake whose fetches wait for ``gate``: lets a test cancel one in flight."""

    def __init__(self, files: dict[str, Path]) -> None:
        super().__init__(files)
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def fetch(self, source: MediaSource, dest_stem: Path) -> Fetched:
        self.started.set()
        await self.gate.wait()
        return await super().fetch(source, dest_stem)


async def test_a_cancelled_fetch_does_not_fail_another_caller_waiting_for_it(
    open_cache: OpenCache, media_dir: Path
) -> None:
    key = "https://venue.example/a.m4a"
    fetcher = GatedFetcher({key: media_dir / "hard_ending.m4a"})
    cache = await open_cache(fetcher)
    first = asyncio.create_task(cache.ensure(key))
    await fetcher.started.wait()
    second = asyncio.create_task(cache.ensure(key))
    await asyncio.sleep(0)  # second joins the fetch in flight
    first.cancel()
    fetcher.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await second).status == "ready"
    assert await cache.playable(key) is not None


async def test_reconcile_drops_rows_without_files_and_files_without_rows(
    open_cache: OpenCache, media_dir: Path, tmp_path: Path
) -> None:
    files = {f"https://venue.example/{n}.m4a": media_dir / f"{n}.m4a" for n in ("hard_ending", "no_silence")}
    keys = list(files)
    cache = await open_cache(FakeFetcher(files))
    for key in keys:
        await cache.ensure(key)
    first = await cache.playable(keys[0])
    second = await cache.playable(keys[1])
    assert first is not None and second is not None
    first.path.unlink()  # someone deleted a file
    second.path.write_bytes(b"half")  # a file that is not what was indexed
    stray = tmp_path / "cache" / "stray.mp4"
    stray.write_bytes(b"left over")
    await cache.reconcile()
    assert await cache.playable(keys[0]) is None
    assert await cache.playable(keys[1]) is None
    assert files_under(tmp_path / "cache") == []
    assert await cache.usage() == (0, 0)


_KILLABLE = """
import asyncio, sys
from pathlib import Path
from djamms_edge.edge.media.cache import MediaCache
from djamms_edge.edge.media.config import AnalysisConfig, CacheConfig, FetchConfig
from djamms_edge.edge.media.fetcher import YtDlpFetcher

async def main() -> None:
    root = Path(sys.argv[1])
    config = FetchConfig(socket_timeout_seconds=60.0, allowed_hosts=("127.0.0.1",))
    fetcher = YtDlpFetcher(config, root / "cache" / ".partial")
    cache = MediaCache(root / "state" / "media.db", root / "cache", fetcher, AnalysisConfig(), CacheConfig())
    await cache.open()
    await cache.ensure(sys.argv[2])

asyncio.run(main())
"""


async def test_a_killed_download_leaves_nothing_that_looks_complete(
    open_cache: OpenCache, server: MediaServer, tmp_path: Path
) -> None:
    url = f"{server.url}/stall/long_fade_out.mp4"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KILLABLE, str(tmp_path), url, start_new_session=True
    )
    try:
        await asyncio.wait_for(server.half_sent.wait(), 30)
        for _ in range(100):  # until the half file is on disk
            if any(p.name.endswith(".part") for p in files_under(tmp_path / "cache")):
                break
            await asyncio.sleep(0.05)
        assert any(p.name.endswith(".part") for p in files_under(tmp_path / "cache"))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    cache = await open_cache(FakeFetcher({}))  # the daemon restarts: reconcile runs on open
    assert await cache.playable(url) is None
    assert await cache.entry(url) is None
    assert files_under(tmp_path / "cache") == []


async def test_a_damaged_index_is_rebuilt_from_the_files_on_disk(
    open_cache: OpenCache, media_dir: Path, tmp_path: Path
) -> None:
    video, url = "dQw4w9WgXcQ", "https://venue.example/fade.m4a"
    files = {video: media_dir / "hard_ending.m4a", url: media_dir / "long_fade_out.m4a"}
    first = await open_cache(FakeFetcher(files))
    assert [(await first.ensure(key)).status for key in files] == ["ready", "ready"]
    await first.close()
    garbage_header(tmp_path / "state" / "media.db")

    fake = FakeFetcher(files)
    cache = await open_cache(fake)
    assert cache.database.damaged is not None
    assert (await cache.usage())[0] == 2  # both files indexed again, counted against the cap
    for key in files:
        assert (await cache.ensure(key)).status == "ready"
        track = await cache.playable(key)
        assert track is not None and track.path.is_file()
    assert fake.fetched == []  # analysed again, not downloaded again
    assert (await cache.usage())[0] == 2  # the URL's file moved to its key, not indexed twice
    track = await cache.playable(video)
    assert track is not None and track.real_end == pytest.approx(TRUTHS["hard_ending"].real_end, abs=TOLERANCE)


async def test_youtube_refusing_the_box_is_retried_with_growing_pauses_and_at_once_after_a_ytdlp_update(
    open_cache: OpenCache, clock: Clock, media_dir: Path
) -> None:
    key = "dQw4w9WgXcQ"
    fake = FakeFetcher({key: media_dir / "hard_ending.m4a"}, refusals=3, version="2026.1.1")
    cache = await open_cache(fake)
    first = await cache.ensure(key)
    assert (first.status, first.failure_class, first.failures) == ("failed", "environment", 1)
    clock.now += 300  # retry_failed_seconds: tried again
    second = await cache.ensure(key)
    assert (second.status, second.failures) == ("failed", 2)
    clock.now += 300  # refused twice in a row: the pause is now 600 s
    assert (await cache.ensure(key)).failures == 2
    assert fake.refusals == 1  # not asked
    fake.version = "2026.2.1"  # the nightly update installed a new yt-dlp
    third = await cache.ensure(key)
    assert (third.status, third.failures) == ("failed", 3)  # asked at once, refused once more
    assert cache.retry_delay(third) == 1200
    fake.version = "2026.3.1"
    assert (await cache.ensure(key)).status == "ready"
    assert fake.fetched == [key]


async def test_retry_clears_failure_marks_of_the_named_tracks_or_all(
    open_cache: OpenCache, media_dir: Path, tmp_path: Path
) -> None:
    files = {"https://venue.example/a.m4a": media_dir / "hard_ending.m4a"}
    cache = await open_cache(FakeFetcher(files, transient_failures=1))
    assert (await cache.ensure("https://venue.example/a.m4a")).status == "failed"
    assert (await cache.ensure("dQw4w9WgXcQ")).status == "unavailable"  # unknown to the fake
    assert {e.key for e in await cache.failures()} == {"https://venue.example/a.m4a", "dQw4w9WgXcQ"}
    assert await cache.clear_failures(["dQw4w9WgXcQ", "nothing-here"]) == ["dQw4w9WgXcQ"]
    assert [e.key for e in await cache.failures()] == ["https://venue.example/a.m4a"]
    assert await cache.clear_failures(None) == ["https://venue.example/a.m4a"]
    assert (await cache.ensure("https://venue.example/a.m4a")).status == "ready"  # at once, no pause


async def test_tracks_marked_unavailable_for_a_403_before_failure_classes_are_retried(tmp_path: Path) -> None:
    """A box upgraded from a version that marked 403 / "format not available" as gone for good."""
    db_path = tmp_path / "media.db"
    old = sqlite_utils.Database(db_path)
    migrations.as_sqlite_utils().apply(old, stop_before="m002_failure_classes")
    for key, error in [("aaaaaaaaaaa", "unable to download video data: HTTP Error 403: Forbidden"),
                       ("bbbbbbbbbbb", "[youtube] bbbbbbbbbbb: Requested format is not available. Use --list-formats"),
                       ("ccccccccccc", "[youtube] ccccccccccc: Private video. Sign in if you've been granted access")]:
        old.execute("INSERT INTO media_files (key, status, error, updated_at) VALUES (?, 'unavailable', ?, 1)",
                    [key, error])
    old.conn.commit()
    old.close()
    cache = MediaCache(db_path, tmp_path / "cache", FakeFetcher({}), WINDOWED, CacheConfig())
    await cache.open()
    try:
        statuses = {e.key: (e.status, e.failure_class) for e in await cache.failures()}
    finally:
        await cache.close()
    assert statuses == {
        "aaaaaaaaaaa": ("failed", "environment"),
        "bbbbbbbbbbb": ("failed", "environment"),
        "ccccccccccc": ("unavailable", None),
    }
    assert sqlite3.connect(db_path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
