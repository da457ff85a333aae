"""The daemon with the media cache: a playlist URL is downloaded with yt-dlp (from a loopback server),
analysed, and played, while local files play meanwhile instead of the box waiting in silence."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from djamms_edge.config import load_config
from djamms_edge.edge.daemon import run_daemon
from djamms_edge.edge.player.seams import render_tone
from tests.edge.media.http_server import MediaServer


async def test_a_playlist_url_is_fetched_into_the_cache_and_played(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    served = tmp_path / "served"
    served.mkdir()
    await render_tone(served / "remote.m4a", 700, lead=0.3, tone=1.0, trail=0.3)
    local = await render_tone(tmp_path / "local.m4a", 300, lead=0.3, tone=1.5, trail=0.3)
    server = MediaServer(served)
    await server.start()
    url = f"{server.url}/media/remote.m4a"
    (tmp_path / "playlist.txt").write_text(f"{url}\n{local}\n")
    (tmp_path / "config.toml").write_text(
        f"""
[edge]
state_dir = "{tmp_path / 'state'}"
cache_dir = "{tmp_path / 'cache'}"
[edge.player]
video = false
ao = "null"
[edge.queue]
playlist = "{tmp_path / 'playlist.txt'}"
[edge.status]
port = 0
[edge.fetch]
mode = "audio"
allowed_hosts = ["127.0.0.1"]   # the test's media server is on loopback
"""
    )
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(load_config(tmp_path / "config.toml"), stop))
    try:
        async with asyncio.timeout(40):
            while not played(tmp_path / "state" / "playback.db", url):
                assert not daemon.done(), daemon
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        exit_status = await daemon
        await server.close()
    assert exit_status == 0
    plays = sources(tmp_path / "state" / "playback.db")
    assert plays[0] == str(local)  # the URL was not downloaded yet: the local file played meanwhile
    assert url in plays
    assert any(p.suffix == ".m4a" for p in (tmp_path / "cache").iterdir())
    passed_over = [r.getMessage() for r in caplog.records if r.getMessage().startswith("passing over")]
    assert len(passed_over) == 1, passed_over


def sources(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT source FROM plays ORDER BY started_at")]


def played(db: Path, source: str) -> bool:
    if not db.exists():
        return False
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT 1 FROM plays WHERE source = ? AND end_reason = 'finished'", (source,))
        except sqlite3.OperationalError:
            return False
        return rows.fetchone() is not None
