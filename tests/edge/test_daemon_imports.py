"""What a playing ``djamms-edge run`` imports: libraries that only some boxes or some starts need stay out of
the daemon's memory (each module's code and objects live as long as the process; bench/transitions.py measures
the RSS). Checked on a real daemon, started twice on the same state, with ``python -X importtime``, which lists
every module a process imports, also those imported inside functions while it runs."""

from __future__ import annotations

import signal
from pathlib import Path

from djamms_edge.edge.player.seams import render_tone
from tests.edge.test_cli_imports import among
from tests.edge.test_daemon import Daemon, wait_until, write_config

# Not needed by a box playing with current state files and no hub: sqlite-utils applies schema migrations (the
# first start, an upgrade), segno draws the request QR code (off by default), PyJWT reads a hub token's claims;
# yt-dlp and PyAV run in media workers.
NOT_WHILE_PLAYING = ("sqlite_utils", "click", "pluggy", "segno", "jwt", "yt_dlp", "av")


def imports_of(daemon: Daemon) -> set[str]:
    return {line.split("|")[2].strip() for line in daemon.log.read_text().splitlines()
            if line.startswith("import time:") and "self [us]" not in line}


def play_and_stop(config: Path, log: Path) -> set[str]:
    """Start the daemon, wait until it plays, stop it (SIGTERM): every module it imported."""
    daemon = Daemon(config, log, ["-X", "importtime"])
    try:
        wait_until("playback", lambda: "INFO    djamms_edge.edge.player.engine: playing" in log.read_text(), daemon)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(15) == 0, daemon.log.read_text()[-3000:]
    finally:
        daemon.stop()
    return imports_of(daemon)


async def test_a_restarted_daemon_plays_without_the_libraries_only_some_starts_need(tmp_path: Path) -> None:
    await render_tone(tmp_path / "song.m4a", 440, lead=0.5, tone=20.0, trail=0.5)
    playlist = tmp_path / "playlist.txt"
    playlist.write_text(f"{tmp_path / 'song.m4a'}\n")
    config = write_config(tmp_path, playlist)
    first = play_and_stop(config, tmp_path / "first.log")
    # The first start creates playback.db through sqlite-utils: the check sees a library when it is there.
    assert {"sqlite_utils", "mpv", "aiohttp"} <= first
    again = play_and_stop(config, tmp_path / "again.log")
    assert {"mpv", "aiohttp"} <= again
    assert among(again, *NOT_WHILE_PLAYING) == set()
