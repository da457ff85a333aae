"""A damaged SD card does not silence the venue: ``djamms-edge run`` (a real process) finds its SQLite files
damaged, moves them aside, rebuilds what it can (the cache index from the files on disk, the queue replica
from the hub), says so in one line and to the hub, and plays."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.damage import garbage_header, random_middle
from tests.edge import test_daemon
from tests.edge.media.http_server import MediaServer
from tests.edge.sync import test_daemons
from tests.edge.sync.test_daemons import LoopThread, World, master_is_playing
from tests.edge.sync.test_daemons import wait_until as wait_for
from tests.edge.test_daemon import Daemon, query, wait_until, write_config

# The fixtures of the daemon tests, shared: their media is rendered once per module.
playlist_dir, tracks, world = test_daemon.playlist_dir, test_daemons.tracks, test_daemons.world


def test_damaged_cache_index_and_history_the_box_plays_and_downloads_nothing_again(
    tmp_path: Path, playlist_dir: Path,
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.m4a").write_bytes((playlist_dir / "Beta - Short One.m4a").read_bytes())
    media = LoopThread()
    server = MediaServer(served)
    media.run(server.start())
    url = f"{server.url}/media/remote.m4a"
    (tmp_path / "playlist.txt").write_text(f"{url}\n{playlist_dir / 'Beta - Short One.m4a'}\n")
    fetch = '[edge.fetch]\nmode = "audio"\nallowed_hosts = ["127.0.0.1"]\n'  # the media server is on loopback
    config = write_config(tmp_path, tmp_path / "playlist.txt", fetch)
    playback, cache_index = tmp_path / "state" / "playback.db", tmp_path / "state" / "media.db"
    finished_url = "SELECT started_at FROM plays WHERE source = ? AND end_reason = 'finished'"
    try:
        first = Daemon(config, tmp_path / "first.log")
        try:
            wait_until("the URL to be downloaded and played", lambda: query(playback, finished_url, url), first, 60)
            first.signal(signal.SIGTERM)
            assert first.wait(15) == 0
        finally:
            first.stop()
        downloads = len([r for r in server.requests if r[0] == "/media/remote.m4a"])
        garbage_header(cache_index)
        random_middle(playback)

        restarted_at = time.time()
        second = Daemon(config, tmp_path / "second.log")
        try:
            wait_until("the URL to play again", lambda: [r for r in query(playback, finished_url, url)
                                                          if r["started_at"] > restarted_at], second, 60)
            assert second.proc.poll() is None
        finally:
            second.stop()
    finally:
        media.run(server.close())
        media.close()
    log = (tmp_path / "second.log").read_text()
    assert len([r for r in server.requests if r[0] == "/media/remote.m4a"]) == downloads  # not downloaded again
    for name in ("media.db", "playback.db"):
        assert f"{name} is damaged" in log, log
        assert len(list((tmp_path / "state").glob(f"{name}.damaged-*"))) == 1
    assert "cache index rebuilt from the files on disk: 1 media files kept" in log
    assert "Traceback" not in log


def test_damaged_sync_state_the_replica_comes_back_from_the_hub_and_staff_are_told(world: World) -> None:
    box = world.start_box("box-a")
    wait_for("box-a playing", master_is_playing(world, "box-a"), world=world)
    box.signal(signal.SIGTERM)
    assert box.proc.wait(timeout=15) == 0
    random_middle(world.tmp / "box-a" / "sync.db")
    garbage_header(world.tmp / "box-a" / "media.db")
    played_before = len(world.plays("box-a"))

    world.start_box("box-a")
    wait_for("box-a playing the hub's queue again", lambda: len(world.plays("box-a")) > played_before,
             limit=30, world=world)
    reports = wait_for(
        "the damage reported to the hub",
        lambda: (rows := query(world.tmp / "hub.db", "SELECT message FROM device_errors")) and len(rows) >= 2
        and rows, limit=20, world=world,
    )
    messages = "\n".join(r["message"] for r in reports)
    assert "sync.db: damaged" in messages and "queue replica is loaded from the hub again" in messages
    assert "media.db: damaged" in messages and "rebuilt from the media files on disk" in messages
    assert len(list((world.tmp / "box-a").glob("sync.db.damaged-*"))) == 1
