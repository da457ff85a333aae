"""The media worker boundary (edge/media/worker.py): real child processes, real PyAV, real ffmpeg-made files.

The analysis through a worker is the in-process analysis, to the sample; a worker that is killed, hangs
or cannot run its job is a clean failure for that one file, and never leaves a process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from djamms_edge.edge.media import analyzer, worker
from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.media.ffmpeg import MediaError
from tests.edge.media.conftest import TRUTHS, WINDOWED
from tests.edge.media.http_server import MediaServer


def worker_pids() -> list[int]:
    """Our own media workers still running (or not yet reaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and b"djamms_edge.edge.media.worker" in cmdline:
            found.append(int(entry.name))
    return found


async def started_worker() -> int:
    for _ in range(200):
        if pids := worker_pids():
            return pids[0]
        await asyncio.sleep(0.05)
    pytest.fail("no media worker started")


@pytest.mark.parametrize("full", [False, True], ids=["fast", "full"])
async def test_the_worker_finds_exactly_the_cues_of_the_in_process_analysis(media_dir: Path, full: bool) -> None:
    files = [media_dir / f"{name}.{truth.formats[0]}" for name, truth in TRUTHS.items()][:6]
    for path in files:
        here = await analyzer.analyze(path, WINDOWED, full=full)
        there = await worker.analyze(path, WINDOWED, full=full)
        assert there == here, path.name
    assert worker_pids() == []


async def test_a_file_that_is_not_media_is_the_analysers_own_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(MediaError, match=r"notes\.mp4: not a readable media file"):
        await worker.analyze(text, AnalysisConfig())


async def test_a_worker_killed_mid_job_fails_that_file_only(server: MediaServer, media_dir: Path) -> None:
    job = asyncio.ensure_future(worker.analyze(f"{server.url}/stall/no_silence.webm", AnalysisConfig()))
    pid = await started_worker()
    await asyncio.wait_for(server.half_sent.wait(), 30)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(MediaError, match=r"no_silence.webm: the media worker died \(killed by signal 9\)"):
        await job
    assert worker_pids() == []
    # The next file is analysed as ever.
    after = await worker.analyze(media_dir / "hard_ending.m4a", WINDOWED)
    assert after.real_end_offset == pytest.approx(18.0, abs=0.05)


async def test_a_worker_past_its_limit_is_killed(server: MediaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "START_SECONDS", 1.0)
    # The decoder's own check cannot fire inside a stalled read: the worker's limit is what ends it.
    with pytest.raises(MediaError, match="took longer than 2s and was killed"):
        await worker.analyze(f"{server.url}/stall/no_silence.webm", AnalysisConfig(timeout_seconds=1.0))
    assert worker_pids() == []


async def test_cancelling_the_caller_kills_and_reaps_the_worker(server: MediaServer) -> None:
    job = asyncio.ensure_future(worker.analyze(f"{server.url}/stall/no_silence.webm", AnalysisConfig()))
    await started_worker()
    await asyncio.wait_for(server.half_sent.wait(), 30)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert worker_pids() == []


async def test_a_worker_that_cannot_run_its_job_is_a_failed_job() -> None:
    with pytest.raises(worker.WorkerFailed, match=r"nothing: the media worker died \(exit status 1\)"):
        await worker.run_job({"job": "no such job"}, limit_seconds=30, what="nothing")


async def test_a_worker_whose_daemon_died_is_killed_with_it(tmp_path: Path, server: MediaServer) -> None:
    """A daemon killed with SIGKILL cannot kill its workers: the kernel does (PR_SET_PDEATHSIG)."""
    script = (
        "import asyncio, sys\n"
        "from djamms_edge.edge.media import worker\n"
        "from djamms_edge.edge.media.config import AnalysisConfig\n"
        "asyncio.run(worker.analyze(sys.argv[1], AnalysisConfig()))\n"
    )
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", script,
                                                  f"{server.url}/stall/no_silence.webm")
    await asyncio.wait_for(server.half_sent.wait(), 30)
    children = [Path(f"/proc/{pid}") for pid in _children_of(parent.pid)]
    assert children, "the analysis runs in a worker"
    parent.kill()
    await parent.wait()
    for _ in range(100):
        if not any(_alive(p) for p in children):
            break
        await asyncio.sleep(0.05)
    assert not any(_alive(p) for p in children)


def _children_of(pid: int) -> list[int]:
    return [int(p) for p in (Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]


def _alive(proc: Path) -> bool:
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
