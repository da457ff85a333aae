"""``python -m djamms_edge.demo`` end to end: a real hub and a real edge daemon as subprocesses, media generated
with ffmpeg and fetched over loopback with yt-dlp, played by libmpv (ao=null). The demo must actually play a demo
track, take the paid request into the priority queue (or play it), stop by itself and leave no process behind.
Should the test fail first, tests/processes.py stops the demo and everything it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from djamms_edge.demo import BY_URL_ALONE, DEMO_TRACKS
from tests.ports import reserved_port
from tests.processes import ProcessTree

# Playback the demo runs before stopping by itself. Its paid request goes in 8 s after the demo starts, before
# playback here, and is seen queued or playing within seconds: 15 s leave room for a loaded machine.
DEMO_SECONDS = 15.0
# Generating the demo videos, starting both programs and the first fetch come before the playing that
# --seconds counts; the test waits this long for them.
STARTUP_SECONDS = 60.0
TITLES = {demo.title for demo in DEMO_TRACKS}
PAID = DEMO_TRACKS[-1].title


def is_demo_track(title: str) -> bool:
    """A demo track by its title, or the one staff added by URL alone: when the box plays it before its details came
    back from the hub, the box knows it by its page's address until the next track (a known limit)."""
    return title in TITLES or title.endswith(f"/{BY_URL_ALONE}.html")


def status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as response:
            return dict(json.load(response))
    except OSError:
        return None  # not up yet


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line names ``text`` (this test's directory: the demo's hub and edge)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(proc.name))
    return found


def patron_page(hub_port: int) -> str | None:
    try:
        url = f"http://127.0.0.1:{hub_port}/v/demo-venue"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


def test_the_demo_plays_takes_a_paid_request_and_stops_by_itself(tmp_path: Path) -> None:
    ports = ExitStack()  # held until the demo is gone: its servers bind them beside the reservations
    hub_port, status_port, media_port, new_box_port = (ports.enter_context(reserved_port()) for _ in range(4))
    argv = [
        sys.executable, "-m", "djamms_edge.demo", "--no-audio", "--no-video", "--seconds", str(DEMO_SECONDS),
        "--dir", str(tmp_path / "demo"), "--hub-port", str(hub_port), "--status-port", str(status_port),
        "--media-port", str(media_port), "--new-box-status-port", str(new_box_port),
    ]
    # In a session of its own, marked: whatever fails below, the demo and its hub and edge are stopped.
    with ports, ProcessTree(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as tree:
        demo = tree.proc
        started = time.monotonic()
        playing: list[tuple[str, float]] = []  # (entry id, position) samples of demo tracks playing
        first_played: float | None = None
        paid_seen = False
        patron_page_lists_songs = False
        while time.monotonic() - started < STARTUP_SECONDS + DEMO_SECONDS and demo.poll() is None:
            snap = status(status_port)
            if snap is not None:
                now = snap["now_playing"]
                if now is not None and is_demo_track(now["title"]):
                    playing.append((now["entry_id"], now["position"]))
                    first_played = first_played or time.monotonic()
                queued = [item["title"] for item in snap["priority_queue"]]
                paid_seen |= PAID in queued or (now is not None and now["title"] == PAID)
            page = patron_page(hub_port) if not patron_page_lists_songs else None
            patron_page_lists_songs |= page is not None and all(f"Request {title} by" in page for title in TITLES
                                                                if title != PAID)
            if paid_seen and _advanced(playing) and patron_page_lists_songs:
                break
            time.sleep(0.5)
        assert _advanced(playing), f"no demo track played: {playing[-5:]}"
        assert paid_seen, "the paid request never reached the priority queue"
        # One of them was added by its URL alone (demo.BY_URL_ALONE): patrons see it once the box described it.
        assert patron_page_lists_songs, "the patron page never offered the demo's songs"
        output, _ = demo.communicate(timeout=DEMO_SECONDS + 30)  # stops by itself DEMO_SECONDS after playing
        assert first_played is not None
        played_for = time.monotonic() - first_played  # --seconds counts from playback, not from the start
        assert played_for >= DEMO_SECONDS - 2.0, played_for
        assert demo.returncode == 0, output.decode(errors="replace")[-3000:]
        assert f"patron page : http://127.0.0.1:{hub_port}/v/demo-venue".encode() in output
        # The hub and the edge stopped with it (and whatever they started), before the test stops anything.
        assert tree.members() == set()
        assert processes_mentioning(str(tmp_path)) == []


def _advanced(samples: list[tuple[str, float]]) -> bool:
    """One play seen at two positions, the later further on: playback, not a stuck player."""
    first: dict[str, float] = {}
    for entry_id, position in samples:
        if entry_id in first and position > first[entry_id] + 0.5:
            return True
        first.setdefault(entry_id, position)
    return False
