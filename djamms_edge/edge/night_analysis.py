"""Idle-night analysis: the full pass (cues + EBU R128 loudness) over cached tracks that lack it.

Runs only inside a local-time window (default 02:00-06:00) and, by default, only while nothing
plays; the moment playback starts the running ffmpeg is cancelled (the media module kills it) and
the track is tried again later. With ``only_when_idle = false`` it also works beside playback, at
nice 19 (the kernel derives the lowest best-effort I/O priority from that). Every result goes to the
hub's shared catalog through the outbox, so every venue benefits from one box's night.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from djamms_edge.edge.media.analysis import TrackAnalysis
from djamms_edge.edge.media.ffmpeg import MediaError
from djamms_edge.edge.player.engine import EngineState, PlaybackEngine
from djamms_edge.edge.sync.config import NightAnalysisConfig
from djamms_edge.edge.sync.engine import EdgeSync
from djamms_edge.edge.sync.hub_api import Analysis
from djamms_edge.shared.sqlite import is_storage_error

log = logging.getLogger(__name__)


class AnalysisCache(Protocol):
    async def needing_full_analysis(self) -> list[str]: ...

    async def reanalyze(self, key: str, *, full: bool = True, low_priority: bool = False) -> TrackAnalysis | None: ...


Report = Callable[[str, TrackAnalysis], Awaitable[None]]


def _clock_time(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


def in_window(now: dt.time, start: str, end: str) -> bool:
    """Pure: is ``now`` inside [start, end) local time; a window may run past midnight (22:00-04:00)."""
    opens, closes = _clock_time(start), _clock_time(end)
    if opens <= closes:
        return opens <= now < closes
    return now >= opens or now < closes


def seconds_until_open(now: dt.datetime, start: str, end: str) -> float:
    """Pure: 0 inside the window, else seconds until it next opens."""
    if in_window(now.time(), start, end):
        return 0.0
    opens = now.replace(hour=_clock_time(start).hour, minute=_clock_time(start).minute, second=0, microsecond=0)
    if opens <= now:
        opens += dt.timedelta(days=1)
    return (opens - now).total_seconds()


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    failed: int = 0
    current: str | None = None
    state: str = "waiting for the window"


class NightAnalyzer:
    def __init__(
        self,
        cache: AnalysisCache,
        config: NightAnalysisConfig,
        report: Report,
        *,
        playing: Callable[[], bool],
        now: Callable[[], dt.datetime] = dt.datetime.now,
        recheck_s: float = 60.0,
    ) -> None:
        self._cache = cache
        self._config = config
        self._report = report
        self._playing = playing
        self._now = now
        self._recheck = recheck_s
        self._changed = asyncio.Event()
        self._failed: set[str] = set()  # broken files: not retried every round of this night
        self.progress = Progress()

    def playback_changed(self) -> None:
        """Call when playback starts or stops: a running analysis yields at once."""
        self._changed.set()

    def _allowed(self) -> bool:
        inside = in_window(self._now().time(), self._config.window_start, self._config.window_end)
        return inside and not (self._config.only_when_idle and self._playing())

    async def run(self) -> None:
        if not self._config.enabled:
            return
        while True:
            if not self._allowed():
                self.progress.state = "waiting for the window" if not self._in_window() else "paused: playing"
                await self._wait(self._recheck_delay())
                continue
            keys = [k for k in await self._cache.needing_full_analysis() if k not in self._failed]
            if not keys:
                self.progress.state = "all analysed"  # the last round's counts stay visible
                await self._wait(self._recheck)
                continue
            self.progress = Progress(total=len(keys), state="analysing")
            log.info("night analysis: %d tracks to analyse", len(keys))
            for key in keys:
                if not self._allowed():
                    log.info("night analysis paused after %d of %d", self.progress.done, self.progress.total)
                    break
                if not await self._one(key):
                    self.progress.state = "paused: the disk refuses writes"  # the database's watch says why
                    await self._wait(self._recheck)
                    break
                await asyncio.sleep(self._config.pause_s)
            else:
                log.info("night analysis: %d done, %d failed", self.progress.done, self.progress.failed)

    def _in_window(self) -> bool:
        return in_window(self._now().time(), self._config.window_start, self._config.window_end)

    def _recheck_delay(self) -> float:
        until = seconds_until_open(self._now(), self._config.window_start, self._config.window_end)
        return min(self._recheck, until) if until > 0 else self._recheck

    async def _wait(self, seconds: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def _one(self, key: str) -> bool:
        """Analyse ``key`` (unless playback takes over); False when the disk refused to store the result."""
        self.progress.current = key
        self._changed.clear()
        work = asyncio.ensure_future(
            self._cache.reanalyze(key, full=True, low_priority=not self._config.only_when_idle)
        )
        try:
            while not work.done():
                waiter = asyncio.ensure_future(self._changed.wait())
                await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                self._changed.clear()
                if not work.done() and not self._allowed():
                    work.cancel()  # playback needs the CPU: ffmpeg is killed, the track waits for later
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
                    log.info("night analysis of %s stopped: playback started", key)
                    return True
            result = work.result()
            if result is not None:
                self.progress.done += 1
                await self._report(key, result)
        except MediaError as exc:
            self.progress.failed += 1
            self._failed.add(key)
            log.warning("night analysis of %s failed: %s", key, exc)
        except Exception as exc:  # the result could not be stored or queued for the hub: a full disk
            if not is_storage_error(exc):
                raise
            return False
        finally:
            if not work.done():  # we are being cancelled (daemon stopping): take ffmpeg down with us
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, MediaError):
                    await work
            self.progress.current = None
        return True


def report_to(sync: EdgeSync) -> Report:
    """Results go to the hub catalog through the durable outbox (delivered once, even after an outage)."""

    async def report(key: str, result: TrackAnalysis) -> None:
        analysis = Analysis(
            key, result.duration, result.real_start_offset, result.real_end_offset, result.loudness_lufs
        )
        await sync.report_analysis(analysis, mode=result.method)

    return report


async def _keep_local(key: str, result: TrackAnalysis) -> None:
    """Without a hub the result only lives in the local cache (``reanalyze`` stored it)."""


def night_analyzer(
    cache: AnalysisCache, config: NightAnalysisConfig, engine: PlaybackEngine, sync: EdgeSync | None
) -> NightAnalyzer:
    """The daemon's night analysis (its task is ``run()``): yields whenever the engine starts playing."""
    night = NightAnalyzer(
        cache,
        config,
        report_to(sync) if sync is not None else _keep_local,
        playing=lambda: engine.status().state is EngineState.PLAYING,
    )
    engine.subscribe(night.playback_changed)
    return night
