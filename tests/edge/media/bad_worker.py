"""A media worker that speaks the wire badly on purpose: the fake beside ``djamms_edge.edge.media.worker``.

Tests put it in ``worker.PROGRAM``: ``python bad_worker.py CASE RECORD`` (the daemon's pid follows, as for the
real one). It reads the request as the real worker does, appends its pid to the file RECORD (and the pid of a
child it leaves running, as yt-dlp leaves ffmpeg, where the case says so), then answers as CASE says. Each
case is something a worker broken by a bad release, a library printing to stdout, a crash or a hostile file
could do.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FOREVER = 3600.0
# What each job's real worker answers on success: a worker confusing its jobs answers the other one.
ANALYSIS: dict[str, Any] = {"realStartOffset": 0.5, "realEndOffset": 4.0, "duration": 4.5, "loudnessLufs": None,
            "method": "head+tail", "notes": []}


def answer(case: str, request: dict[str, Any], out: Any) -> int:
    """Write the answer ``case`` gives to ``request`` on ``out`` (binary); the exit status."""
    other_job = {"path": request["path"], "size": 1, "title": None} if request["job"] == "analyze" else ANALYSIS
    if case == "garbage":  # a library printed to the answer's stream
        out.write(b"[download] Destination: media.m4a\n")
    elif case == "truncated":
        out.write(json.dumps({"ok": ANALYSIS}).encode()[:30])
    elif case == "not-an-object":
        out.write(b"[1, 2, 3]")
    elif case == "neither-ok-nor-error":
        out.write(b'{"status": "done"}')
    elif case == "error-kind-not-text":
        out.write(b'{"error": 42, "message": "?"}')
    elif case == "another-jobs-answer":
        out.write(json.dumps({"ok": other_job}).encode())
    elif case == "nested-too-deep":  # within the size bound, but too deep for json's parser
        out.write(b"[" * 200_000)
    elif case == "nothing":
        pass
    elif case == "not-utf8":
        out.write(b'{"ok": "\xff\xfe"}')
    elif case == "answered-then-failed":
        out.write(json.dumps({"ok": ANALYSIS}).encode())
        return 3
    elif case == "unplayable-cues":  # json.dumps writes NaN, json.loads reads it, SQLite stores NULL
        out.write(json.dumps({"ok": {**ANALYSIS, "duration": math.nan}}).encode())
    elif case == "missing-file":  # the right shape, naming the file it was asked for, which it never made
        out.write(json.dumps({"ok": {"path": f"{request['dest_stem']}.m4a", "size": 12345, "title": "?"}}).encode())
    elif case == "huge-then-hang":  # a runaway writer: far more than any answer, then never done
        for _ in range(16):  # 16 MiB: enough to tell, bounded so a reader without a bound survives the test
            out.write(b" " * (1 << 20))
        out.flush()
        time.sleep(FOREVER)
    elif case == "answer-then-hang":  # a right answer, then the worker never exits
        out.write(json.dumps({"ok": ANALYSIS}).encode())
        out.flush()
        time.sleep(FOREVER)
    elif case == "killed":  # what the out-of-memory killer does to a worker mid-job
        os.kill(os.getpid(), signal.SIGKILL)
    elif case == "leaves-a-child":  # answers nonsense and leaves a child running in its process group
        out.write(b"not json")
    else:
        raise SystemExit(f"bad_worker: no case {case!r}")
    return 0


def main(case: str, record: Path) -> int:
    pids = [os.getpid()]
    if case == "leaves-a-child":
        child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({FOREVER})"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        pids.append(child.pid)
    with record.open("a") as file:
        file.write("".join(f"{pid}\n" for pid in pids))
    request = json.loads(sys.stdin.read())
    status = answer(case, request, sys.stdout.buffer)
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], Path(sys.argv[2])))
