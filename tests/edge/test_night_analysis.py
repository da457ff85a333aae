"""Idle-night analysis: the window, yielding to playback, and results reaching the hub catalog."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from djamms_edge.edge.media.analyzer import TrackAnalysis, analyze
from djamms_edge.edge.media.cache import MediaCache
from djamms_edge.edge.media.config import AnalysisConfig, CacheConfig
from djamms_edge.edge.media.fetcher import FakeFetcher
from djamms_edge.edge.night_analysis import NightAnalyzer, in_window, report_to, seconds_until_open
from djamms_edge.edge.player.seams import render_tone
from djamms_edge.edge.sync.config import NightAnalysisConfig, SyncConfig
from djamms_edge.edge.sync.engine import EdgeSync
from djamms_edge.edge.sync.fake_hub import FakeHub, FakeVenue
from djamms_edge.edge.sync.store import open_sync_db
from tests.edge.sync.hubs import eventually
from tests.small_disk import fill, small_disk


@pytest.mark.parametrize(
    ("now", "start", "end", "inside"),
    [
        ("02:00", "02:00", "06:00", True),
        ("05:59", "02:00", "06:00", True),
        ("06:00", "02:00", "06:00", False),
        ("01:59", "02:00", "06:00", False),
        ("23:30", "22:00", "04:00", True),  # past midnight
        ("03:59", "22:00", "04:00", True),
        ("12:00", "22:00", "04:00", False),
    ],
)
def test_the_window_in_local_time(now: str, start: str, end: str, inside: bool) -> None:
    assert in_window(dt.time.fromisoformat(now), start, end) is inside


@pytest.mark.parametrize(
    ("now", "seconds"),
    [("2026-01-01T01:00:00", 3600.0), ("2026-01-01T03:00:00", 0.0), ("2026-01-01T07:00:00", 19 * 3600.0)],
)
def test_seconds_until_the_window_opens(now: str, seconds: float) -> None:
    assert seconds_until_open(dt.datetime.fromisoformat(now), "02:00", "06:00") == seconds


RESULT = TrackAnalysis(0.4, 180.0, 181.0, -11.0, "full")
NIGHT = dt.datetime(2026, 1, 1, 3, 0)
DAY = dt.datetime(2026, 1, 1, 15, 0)


class FakeCache:
    """Tracks lacking loudness; ``gate`` holds every analysis until opened (to play during one)."""

    def __init__(self, keys: list[str]) -> None:
        self.waiting = list(keys)
        self.gate = asyncio.Event()
        self.gate.set()
        self.started: list[tuple[str, bool]] = []
        self.cancelled: list[str] = []

    async def needing_full_analysis(self) -> list[str]:
        return list(self.waiting)

    async def reanalyze(self, key: str, *, full: bool = True, low_priority: bool = False) -> TrackAnalysis | None:
        self.started.append((key, low_priority))
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        self.waiting.remove(key)
        return RESULT


def analyzer(
    cache: FakeCache, clock: list[dt.datetime], playing: list[bool], reported: list[str], **config: object
) -> NightAnalyzer:
    async def report(key: str, result: TrackAnalysis) -> None:
        reported.append(key)

    settings = NightAnalysisConfig(pause_s=0.0, **config)  # type: ignore[arg-type]
    return NightAnalyzer(cache, settings, report, playing=lambda: playing[0], now=lambda: clock[0], recheck_s=0.02)


async def test_nothing_runs_outside_the_window_and_everything_inside_it() -> None:
    reported: list[str] = []
    cache, clock, playing = FakeCache(["a", "b"]), [DAY], [False]
    night = analyzer(cache, clock, playing, reported)
    task = asyncio.create_task(night.run())
    await asyncio.sleep(0.1)
    assert cache.started == []
    clock[0] = NIGHT
    await eventually(lambda: reported == ["a", "b"])
    assert night.progress.done == 2 and night.progress.total == 2
    assert all(low is False for _, low in cache.started)  # idle box: normal priority
    task.cancel()


async def test_playback_starting_stops_the_running_analysis_at_once_and_it_resumes_later() -> None:
    reported: list[str] = []
    cache, clock, playing = FakeCache(["a"]), [NIGHT], [False]
    cache.gate.clear()
    night = analyzer(cache, clock, playing, reported)
    task = asyncio.create_task(night.run())
    await eventually(lambda: cache.started)
    playing[0] = True
    stopped_at = asyncio.get_running_loop().time()
    night.playback_changed()
    await eventually(lambda: cache.cancelled == ["a"], within=0.5)
    assert asyncio.get_running_loop().time() - stopped_at < 0.2
    assert reported == []
    cache.gate.set()
    playing[0] = False
    night.playback_changed()
    await eventually(lambda: reported == ["a"])
    task.cancel()


async def test_beside_playback_it_runs_at_the_lowest_priority_when_allowed() -> None:
    reported: list[str] = []
    cache, clock, playing = FakeCache(["a"]), [NIGHT], [True]
    task = asyncio.create_task(analyzer(cache, clock, playing, reported, only_when_idle=False).run())
    await eventually(lambda: reported == ["a"])
    assert cache.started == [("a", True)]
    task.cancel()


async def test_a_real_full_pass_reaches_the_hub_catalog(tmp_path: Path) -> None:
    track = await render_tone(tmp_path / "tone.m4a", 440, lead=0.5, tone=4.0, trail=1.0)
    config = AnalysisConfig()

    class OneFileCache:
        def __init__(self) -> None:
            self.todo = ["dQw4w9WgXcQ"]

        async def needing_full_analysis(self) -> list[str]:
            return list(self.todo)

        async def reanalyze(self, key: str, *, full: bool = True, low_priority: bool = False) -> TrackAnalysis:
            self.todo.clear()
            return await analyze(track, config, full=full, low_priority=low_priority)

    venue = FakeVenue()
    hub = FakeHub(venue, "box-a")
    db = open_sync_db(tmp_path)
    await db.open()
    sync = EdgeSync(hub, db, SyncConfig(heartbeat_interval_s=0.1), on_play=lambda e: None, on_halt=lambda r: None)
    await sync.start()
    try:
        night = NightAnalyzer(
            OneFileCache(),
            NightAnalysisConfig(pause_s=0.0),
            report_to(sync),
            playing=lambda: False,
            now=lambda: NIGHT,
            recheck_s=0.05,
        )
        task = asyncio.create_task(night.run())
        await eventually(lambda: "dQw4w9WgXcQ" in venue.catalog, within=30)
        task.cancel()
        entry = venue.catalog["dQw4w9WgXcQ"]
        assert entry["loudness"] is not None and -30 < entry["loudness"] < 0
        assert 0.3 < entry["realStartOffset"] < 0.7 and 4.3 < entry["realEndOffset"] < 4.8
    finally:
        await sync.stop()
        await db.close()


async def test_a_full_disk_pauses_the_night_analysis_and_its_result_is_stored_once_space_is_back(
    tmp_path: Path,
) -> None:
    """A result the cache index cannot store (a full card) used to end the night analysis's task, and with it the
    daemon. The round pauses, says why in its progress, and the next one stores the result when space is back."""
    track = await render_tone(tmp_path / "tone.m4a", 440, lead=0.5, tone=4.0, trail=1.0)
    key = "dQw4w9WgXcQ"
    with small_disk(tmp_path / "disk", "8m") as disk:
        cache = MediaCache(disk / "media.db", disk / "cache", FakeFetcher({key: track}), AnalysisConfig(),
                           CacheConfig())
        await cache.open()
        reported: list[str] = []

        async def report(analysed: str, result: TrackAnalysis) -> None:
            reported.append(analysed)

        try:
            assert (await cache.ensure(key)).status == "ready"
            assert await cache.needing_full_analysis() == [key]
            filler = fill(disk)
            night = NightAnalyzer(cache, NightAnalysisConfig(pause_s=0.0), report, playing=lambda: False,
                                  now=lambda: NIGHT, recheck_s=0.2)
            task = asyncio.create_task(night.run())
            await eventually(lambda: task.done() or night.progress.state == "paused: the disk refuses writes",
                             within=30)
            assert not task.done(), task
            filler.unlink()
            await eventually(lambda: reported == [key], within=30)
            assert await cache.needing_full_analysis() == []
            assert not task.done()
            task.cancel()
        finally:
            await cache.close()
