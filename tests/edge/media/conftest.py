"""Generated media with known truth, rendered once per test session (real ffmpeg, no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from djamms_edge.edge.media.cache import MediaCache
from djamms_edge.edge.media.config import AnalysisConfig, CacheConfig
from djamms_edge.edge.media.fetcher import Fetcher
from djamms_edge.edge.media.synth import Format, SynthTrack, fade, render, silence, tone
from tests.edge.media.http_server import MediaServer

FORMATS: tuple[Format, ...] = ("m4a", "webm", "mp4")
# Small windows so tracks of a few tens of seconds exercise head, tail, widening and the whole-file case.
WINDOWED = AnalysisConfig(head_seconds=8.0, tail_seconds=10.0)
# A tail window longer than every generated track: one pass sees the whole file.
WHOLE = AnalysisConfig(tail_seconds=40.0)


@dataclass(frozen=True, slots=True)
class UnderlaidTrack(SynthTrack):
    """A generated track with ``under`` (an ffmpeg expression of ``t``: rumble, DC) mixed beneath it."""

    under: str = "0"

    def expression(self) -> str:
        return f"{SynthTrack.expression(self)}+{self.under}"


@dataclass(frozen=True)
class Truth:
    """A generated track and where its audible part really starts and ends."""

    track: SynthTrack
    real_start: float
    real_end: float
    formats: tuple[Format, ...] = FORMATS


RUMBLE = "lt(t,13)*0.003*sin(2*PI*25*t)"
DC_OFFSET = "lt(t,13)*0.003"
TRUTHS: dict[str, Truth] = {
    # 2.5 s of digital silence, then sound to the end of the file.
    "leading_silence": Truth(SynthTrack((silence(2.5), tone(20))), 2.5, 22.5),
    # Sound stops dead at 18 s; 6 s of silence follow.
    "hard_ending": Truth(SynthTrack((tone(18), silence(6))), 0.0, 18.0),
    # A 10 s linear fade to nothing (audible above -60 dBFS until 21.98 s), then 4 s of silence.
    "long_fade_out": Truth(SynthTrack((tone(12), fade(10), silence(4))), 0.0, 22.0),
    # 4 s intro at -40 dBFS (quiet but audible) before the loud part: nothing to cut at the start.
    "quiet_intro": Truth(SynthTrack((tone(4, 0.01), tone(16), silence(3))), 0.0, 20.0),
    "no_silence": Truth(SynthTrack((tone(20),)), 0.0, 20.0),
    # Silences at 5-9 s (reaching the head window's end) and 14-17 s (where the tail window starts)
    # are part of the song; only the one touching the end (23-26 s) is cut.
    "mid_silence": Truth(SynthTrack((tone(5), silence(4), tone(5), silence(3), tone(6), silence(3))), 0.0, 23.0),
    # Shorter than the tail window: one pass sees the whole file.
    "short": Truth(SynthTrack((silence(0.5), tone(3), silence(1))), 0.5, 3.5),
    # 5 s of silence before the music is beyond max(3 s, 5 %): rejected, the track plays from 0.
    "late_start": Truth(SynthTrack((silence(5), tone(15))), 0.0, 20.0, ("m4a",)),
    # 20 s of silence at the end fill the whole tail window: the tail is widened until sound is found.
    "long_silent_end": Truth(SynthTrack((tone(9), silence(20))), 0.0, 9.0, ("m4a",)),
    # Music stops dead at 10 s; turntable rumble (25 Hz at -50 dBFS, above the -60 dBFS threshold)
    # goes on to 13 s, then digital silence. The rumble is under the high-pass: the music ends at 10 s.
    "rumble_end": Truth(UnderlaidTrack((tone(10), silence(6)), RUMBLE), 0.0, 10.0),
    # The same with a DC offset (-50 dBFS) that stops abruptly at 13 s: the step is a click of a few ms.
    "dc_end": Truth(UnderlaidTrack((tone(10), silence(6)), DC_OFFSET), 0.0, 10.0),
}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every track of TRUTHS in its formats, plus a quiet fade for the loudness test (FLAC)."""
    directory = tmp_path_factory.mktemp("media")

    async def render_all() -> None:
        gate = asyncio.Semaphore(2)  # two cores

        async def one(name: str, track: SynthTrack, formats: tuple[Format, ...]) -> None:
            async with gate:
                # 24 kHz: half the work of 48 kHz, and still above the analysis rate (16 kHz).
                await render(track, directory, name, formats, sample_rate=24000)

        jobs = [one(name, truth.track, truth.formats) for name, truth in TRUTHS.items()]
        jobs.append(one("quiet_fade", QUIET_FADE, ("flac",)))
        await asyncio.gather(*jobs)

    asyncio.run(render_all())
    return directory


# Peak 0.02 (about -38 LUFS) fading linearly over 10 s to nothing at 22.0 s: its 10 ms RMS falls under
# -60 dBFS for good ~0.65 s before that, but under 42 LU below the track's loudness (-80 dBFS) only in
# its last ~70 ms.
QUIET_FADE = SynthTrack((tone(12, 0.02), fade(10, 0.02), silence(4)))


@pytest.fixture
async def server(media_dir: Path) -> AsyncIterator[MediaServer]:
    """A loopback HTTP server serving ``media_dir`` (see http_server.py for its paths)."""
    srv = MediaServer(media_dir)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


def files_under(root: Path) -> list[Path]:
    """Every file below ``root`` (what a failed or killed download must not leave behind)."""
    return sorted(p for p in root.rglob("*") if p.is_file())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


OpenCache = Callable[..., Awaitable[MediaCache]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def open_cache(tmp_path: Path, clock: Clock) -> AsyncIterator[OpenCache]:
    """Opens caches under ``tmp_path`` (closed after the test): ``await open_cache(fetcher, ...)``."""
    opened: list[MediaCache] = []

    async def make(
        fetcher: Fetcher, max_bytes: int = 10**9, prefetch_count: int = 3, analysis: AnalysisConfig = WINDOWED
    ) -> MediaCache:
        cache = MediaCache(
            tmp_path / "state" / "media.db",
            tmp_path / "cache",
            fetcher,
            analysis,
            CacheConfig(max_bytes=max_bytes, prefetch_count=prefetch_count),
            clock=clock,
        )
        await cache.open()
        opened.append(cache)
        return cache

    yield make
    for cache in opened:
        await cache.close()
