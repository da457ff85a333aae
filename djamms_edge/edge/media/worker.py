"""Media work in a child process: one worker per job, so the daemon never loads yt-dlp or PyAV/libav.

The player process carries libmpv and nothing heavier: downloads (yt-dlp, ``ytdlp``) and cue-point
analysis (PyAV, ``analyzer``) each run in a worker that this module starts, feeds one request and
reads one answer from, then reaps. Why a process and not a thread: a crash, a hang or a leak in
libav or yt-dlp on a hostile file takes down one worker, never the music, and the worker's memory
(~30 MB of libraries each, plus what decoding a file leaves in malloc's arenas) goes back to the
system when the job ends (bench/transitions.py measures the daemon; bench/media_worker.py a worker).

The wire is small and typed: one JSON object each way over the worker's stdin and stdout. Requests
name a ``job`` and carry what it needs (configs as their dataclass fields); answers are
``{"ok": ...}`` or ``{"error": kind, "message": ...}``. A worker that cannot start, dies, outlives its
limit or answers something else (or more than MAX_ANSWER_BYTES, read no further) is ``WorkerFailed``,
which the caller turns into a failed job for that one track; each caller also checks that the answer is
the one its job asked for. After every job the worker's process group is killed (it leads its own), so
nothing it started outlives the job. A worker whose daemon dies is killed by the kernel (PR_SET_PDEATHSIG).

``analyze`` is ``analyzer.analyze`` through a worker, for the daemon; one-shot programs
(``djamms-edge analyze``) analyse in their own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from djamms_edge.edge.media.analysis import TrackAnalysis
from djamms_edge.edge.media.config import AnalysisConfig
from djamms_edge.edge.media.ffmpeg import MediaError

log = logging.getLogger(__name__)

Request = dict[str, Any]
Reply = dict[str, Any]
C = TypeVar("C")

# The worker's command line, before the daemon's pid. Tests put a program that speaks the wire badly here
# (tests/edge/media/bad_worker.py): the answers below are checked against that, not just reviewed.
PROGRAM: tuple[str, ...] = (sys.executable, "-m", "djamms_edge.edge.media.worker")
# Each job and the function a worker runs it with: imported in the worker only.
JOBS = {
    "analyze": "djamms_edge.edge.media.analyzer:analysis_job",
    "fetch": "djamms_edge.edge.media.ytdlp:fetch_job",
    "describe": "djamms_edge.edge.media.ytdlp:describe_job",
    "ytdlp-environment": "djamms_edge.edge.media.ytdlp:environment_job",
}
# Starting a worker (Python, then PyAV or yt-dlp) and reaping it, on top of a job's own limit.
START_SECONDS = 15.0
# An answer is a few hundred bytes: anything near this is not one.
MAX_ANSWER_BYTES = 1 << 20


class WorkerFailed(Exception):
    """The worker died, hung past its limit or answered nonsense: the job failed, for this track only."""


class WorkerNotStarted(WorkerFailed):
    """No worker could be started (no memory or no process left for a fork): nothing was tried."""


class AnalysisNotRun(MediaError):
    """The file was not analysed at all (no worker could be started): it says nothing about the file."""


class AnalysisCrashed(MediaError):
    """The analysis worker died (the out-of-memory killer, a crash in libav), outlived its limit or answered
    nonsense: once, that may be the box (a 1 GB Pi short of memory, a busy night), not the file."""


# --- the daemon's side ------------------------------------------------------------------------


async def run_job(request: Request, *, limit_seconds: float, what: str) -> Reply:
    """Start a worker, hand it ``request``, return its answer (``{"ok": ...}`` or ``{"error": ...}``).

    Whatever happens, the worker's process group is killed and the worker reaped before this returns or
    raises (cancelling the caller and the limit passing included), so nothing it started outlives the job.
    Anything but an answer raises WorkerFailed: a worker that cannot start, dies, outlives its limit, or
    answers nothing, more than MAX_ANSWER_BYTES or anything that is not one JSON answer object."""
    try:
        proc, pipe = await _start()
    except OSError as exc:  # no memory or no process left for a fork, an interpreter gone: this job fails
        raise WorkerNotStarted(f"{what}: no media worker could be started ({exc})") from None
    reader = asyncio.StreamReader()
    transport: asyncio.ReadTransport | None = None  # once it has one, the transport closes the pipe
    try:
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe)
        out = await asyncio.wait_for(_exchange(proc, reader, json.dumps(request).encode(), what), limit_seconds)
    except TimeoutError:
        raise WorkerFailed(f"{what}: the media worker took longer than {limit_seconds:.0f}s and was killed") from None
    finally:
        if transport is None:
            pipe.close()
        else:
            transport.close()
        # Also when the worker has exited: what it started (yt-dlp's ffmpeg) may still run in its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.shield(proc.wait())  # reaped even when our caller is cancelled meanwhile
    status = proc.returncode or 0
    if status != 0:
        died = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
        raise WorkerFailed(f"{what}: the media worker died ({died})")
    if not out.strip():
        raise WorkerFailed(f"{what}: the media worker exited without an answer")
    try:
        answer = json.loads(out)
    except (ValueError, RecursionError):  # RecursionError: nested too deep for the parser
        answer = None
    if not isinstance(answer, dict) or not ("ok" in answer or isinstance(answer.get("error"), str)):
        raise WorkerFailed(f"{what}: the media worker answered nonsense ({out[:80]!r})")
    return answer


async def _start() -> tuple[asyncio.subprocess.Process, BinaryIO]:
    """A worker leading its own process group, and the read end of its stdout. That pipe is ours, not
    asyncio's: ``Process.wait()`` waits until asyncio's pipes are closed too, which never happens while a
    stray process holds one or after we stopped reading a worker that answers too much."""
    answers, answer_end = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *PROGRAM, str(os.getpid()), stdin=asyncio.subprocess.PIPE, stdout=answer_end, start_new_session=True,
        )
    except BaseException:
        os.close(answers)
        raise
    finally:
        os.close(answer_end)
    return proc, os.fdopen(answers, "rb", buffering=0)


async def _exchange(
    proc: asyncio.subprocess.Process, answers: asyncio.StreamReader, request: bytes, what: str
) -> bytes:
    """Hand the worker its request; read its answer, never more than MAX_ANSWER_BYTES; wait for it to exit."""
    assert proc.stdin is not None
    with contextlib.suppress(ConnectionError):  # it exited without reading: its exit status says why
        proc.stdin.write(request)
        await proc.stdin.drain()
    proc.stdin.close()
    out = bytearray()
    while chunk := await answers.read(1 << 16):
        out += chunk
        if len(out) > MAX_ANSWER_BYTES:
            too_much = f"more than {MAX_ANSWER_BYTES >> 20} MiB"
            raise WorkerFailed(f"{what}: the media worker answered {too_much} and was killed")
    await proc.wait()
    return bytes(out)


async def analyze(
    path_or_url: str | Path,
    config: AnalysisConfig,
    *,
    full: bool = False,
    loudness_lufs: float | None = None,
    low_priority: bool = False,
) -> TrackAnalysis:
    """``analyzer.analyze`` in a worker: the same arguments, the same answer; MediaError for a file that is not
    playable audio; AnalysisCrashed (a MediaError) for a worker that crashed, hung or answered nonsense on it;
    AnalysisNotRun (a MediaError) when no worker could be started."""
    request = {"job": "analyze", "path": str(path_or_url), "config": dataclasses.asdict(config), "full": full,
               "loudness_lufs": loudness_lufs, "low_priority": low_priority}
    # A full pass measures loudness (one limit), then reads the windows (another).
    limit = config.timeout_seconds * (2 if full else 1) + START_SECONDS
    what = Path(str(path_or_url)).name
    try:
        answer = await run_job(request, limit_seconds=limit, what=what)
    except WorkerNotStarted as exc:
        raise AnalysisNotRun(str(exc)) from None
    except WorkerFailed as exc:
        raise AnalysisCrashed(str(exc)) from None
    if "error" in answer:
        raise MediaError(str(answer.get("message", "")))
    try:
        return TrackAnalysis.from_json(answer["ok"])
    except (KeyError, TypeError) as exc:  # not an analysis at all: the worker's fault, not the file's
        raise AnalysisCrashed(f"{what}: the media worker answered nonsense ({exc!r})") from None
    except ValueError as exc:  # an analysis whose cues cannot be played: its verdict on the file
        raise MediaError(f"{what}: the media worker answered nonsense ({exc!r})") from None


def config_from_json(cls: type[C], fields: dict[str, Any]) -> C:
    """A config dataclass from its fields as a request carries them (JSON made its tuples lists)."""
    return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in fields.items()})


# --- the worker's side ------------------------------------------------------------------------


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when the daemon that started it dies (even by SIGKILL)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the daemon died before the line above
        os._exit(1)


def main(parent: int) -> int:
    if sys.platform == "linux":
        _die_with(parent)
    # The answer goes out on a private copy of stdout; whatever a library prints goes to stderr (the journal).
    answer_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    request = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"djamms-edge media worker ({request.get('job')}): %(name)s: %(message)s")
    module, _, function = JOBS[request["job"]].partition(":")
    answer = getattr(importlib.import_module(module), function)(request)
    json.dump(answer, answer_out)
    answer_out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1])))
