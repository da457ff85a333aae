"""A real ``djamms-edge run`` with a real yt-dlp download (loopback HTTP server) and real analysis: both run in
media worker processes, so the playing daemon never loads PyAV, and a worker killed mid-download fails that one
track while the music plays on."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.edge.player.seams import render_tone
from tests.edge.media.http_server import MediaServer
from tests.edge.test_daemon import NOW_PLAYING, Daemon, query, write_config


@pytest.fixture
async def stalling_server(tmp_path: Path) -> AsyncIterator[MediaServer]:
    media = tmp_path / "served"
    media.mkdir()
    await render_tone(media / "clip.m4a", 550, lead=0.5, tone=20.0, trail=0.5)
    server = MediaServer(media)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def wait_for(what: str, check: Callable[[], Any], daemon: Daemon, limit: float = 60.0) -> Any:
    """Poll ``check`` without blocking the loop the media server runs on."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if result := check():
            return result
        if daemon.proc.poll() is not None:
            pytest.fail(f"daemon exited with {daemon.proc.returncode} while waiting for {what}:\n"
                        + daemon.log.read_text())
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n" + daemon.log.read_text())


def media_workers_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and b"djamms_edge.edge.media.worker" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def pyav_loaded(pid: int) -> list[str]:
    """PyAV's own libraries in the process (libmpv's system libav is another file: /usr/lib/...)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({line.split()[-1] for line in maps.splitlines()
                   if "/av.libs/" in line or "/site-packages/av/" in line})


async def test_the_playing_daemon_never_loads_pyav_and_a_killed_download_worker_fails_one_track(
    tmp_path: Path, stalling_server: MediaServer,
) -> None:
    await render_tone(tmp_path / "long.m4a", 440, lead=1.0, tone=40.0, trail=1.0)
    url = f"{stalling_server.url}/stall/clip.m4a"
    playlist = tmp_path / "playlist.txt"
    playlist.write_text(f"{tmp_path / 'long.m4a'}\n{url}\n")
    config = write_config(tmp_path, playlist, extra=(
        '[edge.fetch]\nmode = "audio"\nattempts = 1\nallowed_hosts = ["127.0.0.1"]\n'
    ))
    playback, media = tmp_path / "state" / "playback.db", tmp_path / "state" / "media.db"
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        def playing(after: float = 0.0, beyond: float = 0.0) -> sqlite3.Row | None:
            rows = query(playback, NOW_PLAYING)
            ok = rows and rows[0]["title"] == "long" and rows[0]["saved_at"] > after and rows[0]["position"] > beyond
            return rows[0] if ok else None

        await wait_for("the local track playing", playing, daemon)
        await asyncio.wait_for(stalling_server.half_sent.wait(), 60)  # the download is under way
        workers = await wait_for("the download's media worker", lambda: media_workers_of(daemon.proc.pid), daemon)
        # The local track was analysed (its cues), the URL is downloading: neither loaded PyAV here.
        assert pyav_loaded(daemon.proc.pid) == []

        before = playing()
        assert before is not None
        os.kill(workers[0], signal.SIGKILL)
        killed_at = time.time()

        def marked() -> sqlite3.Row | None:
            rows = query(media, "SELECT status, error FROM media_files WHERE key = ?", url)
            return rows[0] if rows and rows[0]["status"] == "failed" else None

        mark = await wait_for("the track marked failed", marked, daemon)
        assert "the media worker died (killed by signal 9)" in mark["error"]
        # The music never stopped: the same play goes on past where it was when the worker died.
        later = await wait_for("playback going on", lambda: playing(after=killed_at + 1.0,
                                                                      beyond=before["position"] + 1.0), daemon)
        assert later["play_id"] == before["play_id"]
        assert media_workers_of(daemon.proc.pid) == []
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
    finally:
        daemon.stop()
