"""A media worker that answers badly fails that one track, with a clear error, and leaves nothing running.

The worker here is a real child process speaking the wire badly (bad_worker.py, put in ``worker.PROGRAM``):
garbage, a cut-off answer, the wrong shape, another job's answer, nothing, far too much, a hang, a child left
running. Each goes through the real cache: a download answered badly is a ``failed`` track (tried again
later), so is an analysis answered badly (``broken`` only when it happens ``MAX_ANALYSIS_CRASHES`` times in a
row, or when the worker's numbers say the file cannot be played); the cache's ensure
returns (an exception out of it would stop the daemon's prefetcher, and with it the daemon) and the same cache
goes on with the real worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import pytest

from djamms_edge.edge.media import worker
from djamms_edge.edge.media.cache import MAX_ANALYSIS_CRASHES, WORK_DIR_NAME
from djamms_edge.edge.media.config import AnalysisConfig, FetchConfig
from djamms_edge.edge.media.fetcher import FakeFetcher, YtDlpFetcher
from tests.edge.media.conftest import Clock, OpenCache, files_under
from tests.edge.media.http_server import MediaServer

BAD_WORKER = Path(__file__).with_name("bad_worker.py")
REAL_WORKER = worker.PROGRAM
# The worker's own limits, short: a hung worker is killed after 2 s.
FETCH = FetchConfig(mode="audio", attempts=1, attempt_limit_seconds=2.0, socket_timeout_seconds=5.0,
                    allowed_hosts=("127.0.0.1",))
ANALYSIS = AnalysisConfig(timeout_seconds=1.0)
URL = "http://127.0.0.1:9/clip.m4a"  # never reached: the bad worker answers without fetching

NONSENSE = "the media worker answered nonsense"
# Each bad answer and the error the track is left with, for both jobs.
COMMON = {
    "garbage": NONSENSE,
    "truncated": NONSENSE,
    "not-an-object": NONSENSE,
    "neither-ok-nor-error": NONSENSE,
    "error-kind-not-text": NONSENSE,
    "another-jobs-answer": NONSENSE,
    "nested-too-deep": NONSENSE,
    "not-utf8": NONSENSE,
    "nothing": "the media worker exited without an answer",
    "answered-then-failed": "the media worker died (exit status 3)",
    "huge-then-hang": "the media worker answered more than 1 MiB and was killed",
    "answer-then-hang": "the media worker took longer than 2s and was killed",
    "leaves-a-child": NONSENSE,
    "killed": "the media worker died (killed by signal 9)",
    "cannot-start": "no media worker could be started",
}
FETCH_CASES = {**COMMON, "missing-file": ".m4a of 12345 bytes, but no such file"}
ANALYSIS_CASES = {**COMMON, "unplayable-cues": NONSENSE}

def bad_worker(case: str, record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Have every media worker from now on answer as ``case`` says, recording its pids in ``record``."""
    program = ("/nonexistent/python",) if case == "cannot-start" else (sys.executable, str(BAD_WORKER), case,
                                                                         str(record))
    monkeypatch.setattr(worker, "PROGRAM", program)
    monkeypatch.setattr(worker, "START_SECONDS", 1.0)  # analysis: its 1 s limit + 1 s to start


def running(record: Path) -> list[int]:
    """Processes the bad worker recorded (itself, a child it left) that are running (a zombie is not)."""
    alive = []
    for pid in map(int, record.read_text().split() if record.exists() else []):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


async def still_running(record: Path) -> list[int]:
    """``running`` a moment after the job: a SIGKILL to a process group is sent at once but takes effect when
    each process next runs."""
    for _ in range(50):
        if not running(record):
            break
        await asyncio.sleep(0.1)
    return running(record)


@pytest.mark.parametrize("case", FETCH_CASES)
async def test_a_download_answered_badly_fails_that_track_and_leaves_nothing_running(
    case: str, tmp_path: Path, open_cache: OpenCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = await open_cache(YtDlpFetcher(FETCH, tmp_path / "cache" / WORK_DIR_NAME), analysis=ANALYSIS)
    record = tmp_path / "pids"
    bad_worker(case, record, monkeypatch)
    entry = await cache.ensure(URL)
    assert (entry.status, entry.failure_class) == ("failed", "transient"), entry
    assert FETCH_CASES[case] in (entry.error or ""), entry.error
    assert await cache.entry(URL) == entry  # what the status page and `djamms-edge cache` show
    assert case == "cannot-start" or record.exists()  # the bad worker really ran
    assert await still_running(record) == []
    assert files_under(tmp_path / "cache") == []  # no scratch, no half file


@pytest.mark.parametrize("case", ANALYSIS_CASES)
async def test_an_analysis_answered_badly_fails_that_track_and_leaves_nothing_running(
    case: str, tmp_path: Path, open_cache: OpenCache, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = await open_cache(FakeFetcher({URL: media_dir / "hard_ending.m4a"}), analysis=ANALYSIS)
    record = tmp_path / "pids"
    bad_worker(case, record, monkeypatch)
    entry = await cache.ensure(URL)
    # A worker that could not start, or died on the file once, does not make it broken for good: tried again
    # later. Numbers that cannot be played are the analysis's verdict on the file.
    expected = {"cannot-start": ("failed", "transient"), "unplayable-cues": ("broken", None)}
    assert (entry.status, entry.failure_class) == expected.get(case, ("failed", "crashed")), entry
    assert ANALYSIS_CASES[case] in (entry.error or ""), entry.error
    assert await cache.playable(URL) is None  # never handed to the player
    assert await still_running(record) == []
    assert files_under(tmp_path / "cache") == []


async def test_after_bad_answers_the_same_cache_fetches_and_analyses_with_the_real_worker(
    tmp_path: Path, open_cache: OpenCache, server: MediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch = dataclasses.replace(FETCH, attempt_limit_seconds=60.0)  # none of these cases hangs; a download may be slow
    cache = await open_cache(YtDlpFetcher(fetch, tmp_path / "cache" / WORK_DIR_NAME), analysis=ANALYSIS)
    for case in ("nested-too-deep", "huge-then-hang", "leaves-a-child"):
        bad_worker(case, tmp_path / "pids", monkeypatch)
        assert (await cache.ensure(f"{server.url}/media/{case}.m4a")).status == "failed"
    monkeypatch.setattr(worker, "PROGRAM", REAL_WORKER)
    url = f"{server.url}/media/hard_ending.m4a"
    assert (await cache.ensure(url)).status == "ready"
    track = await cache.playable(url)
    assert track is not None and track.real_end == pytest.approx(18.0, abs=0.06)
    assert await still_running(tmp_path / "pids") == []


async def test_an_analysis_killed_once_loses_nothing_and_one_killed_every_time_ends_broken(
    tmp_path: Path, open_cache: OpenCache, media_dir: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The out-of-memory killer taking one analysis worker (a 1 GB Pi, a busy night) costs a retry, not the song;
    a file that takes its worker down every time is broken after MAX_ANALYSIS_CRASHES tries, and never again."""
    fetcher = FakeFetcher({URL: media_dir / "hard_ending.m4a", "https://example.com/b.m4a": media_dir / "short.m4a"})
    cache = await open_cache(fetcher, analysis=ANALYSIS)
    bad_worker("killed", tmp_path / "pids", monkeypatch)
    first = await cache.ensure(URL)
    assert (first.status, first.failure_class, first.failures) == ("failed", "crashed", 1), first
    assert (await cache.ensure(URL)).status == "failed"  # not tried again before retry_failed_seconds
    clock.now += 301
    monkeypatch.setattr(worker, "PROGRAM", REAL_WORKER)  # the box has memory again
    assert (await cache.ensure(URL)).status == "ready"
    assert await cache.playable(URL) is not None

    other = "https://example.com/b.m4a"
    bad_worker("killed", tmp_path / "pids", monkeypatch)
    outcomes = []
    for _ in range(MAX_ANALYSIS_CRASHES):
        clock.now += 301
        entry = await cache.ensure(other)
        outcomes.append((entry.status, entry.failures))
    assert outcomes == [("failed", 1), ("failed", 2), ("broken", 1)], outcomes
    error = entry.error or ""
    assert "killed by signal 9" in error and f"{MAX_ANALYSIS_CRASHES} times in a row" in error, error
    clock.now += 10_000
    assert (await cache.ensure(other)).status == "broken"  # never fetched again by itself
    assert fetcher.fetched.count(other) == MAX_ANALYSIS_CRASHES
    kept = await cache.playable(URL)
    assert kept is not None and files_under(tmp_path / "cache") == [kept.path]  # the broken one's file is gone
