"""A full disk does not silence the venue: a real ``djamms-edge run`` (beside a real hub, or alone with its local
playlist), its state directory on a real small file system (tmpfs) that the test fills while the box plays.

The box plays on through the full disk, in the queue's order (it does not replay one song because it could not
record that it played it), says why on its status page, in its heartbeat (the venue's dashboard) and as a device
error (the hub's "Recent problems"), once; when the space is freed it records its plays again and the problem
goes away, by itself. Alone, it plays its cached songs on while a download cannot be stored, and downloads and
plays it once the space is back. Restarted on a full disk, it opens its files read-only and plays.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.edge.player.seams import render_tone
from tests.edge.media.http_server import MediaServer
from tests.edge.sync.test_daemons import LoopThread, World, wait_until
from tests.edge.test_daemon import Daemon, query, write_config
from tests.small_disk import fill, small_disk

DISK_FULL = "cannot be written: the disk is full"


@pytest.fixture(scope="module")
def short_tracks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three songs of about 2 s: the queue moves on every few seconds."""
    root = tmp_path_factory.mktemp("short-tracks")

    async def render() -> list[Path]:
        return list(await asyncio.gather(*(
            render_tone(root / f"Band {n} - Song {n}.m4a", 300 + 150 * n, lead=0.2, tone=1.8, trail=0.2)
            for n in range(1, 4))))

    return asyncio.run(render())


def status(world: World, box: str) -> Any:
    """The box's status page; a box that is no longer running fails the test (what the old code did)."""
    if world.boxes[box].proc.poll() is not None:
        pytest.fail(f"{box} exited with {world.boxes[box].proc.returncode}:\n{world.logs()}")
    return world.status(box)


def problems_of(world: World, box: str) -> list[str]:
    return list(status(world, box)["problems"])


def playing_entry(world: World, box: str) -> str | None:
    playing = status(world, box)["now_playing"]
    return None if playing is None else str(playing["entry_id"])


def songs_played(playing: Callable[[], str | None], count: int) -> Callable[[], list[str] | None]:
    """A check for ``wait_until``: the entries seen playing (each change once), once there are ``count`` of them. A
    box that replays one song for want of a record of it never gets there: its entry id stays the same."""
    seen: list[str] = []

    def check() -> list[str] | None:
        entry = playing()
        if entry is not None and (not seen or seen[-1] != entry):
            seen.append(entry)
        return seen if len(seen) >= count else None

    return check


def test_a_full_disk_the_box_plays_on_in_order_says_why_once_and_recovers_when_space_is_freed(
    tmp_path: Path, short_tracks: list[Path]
) -> None:
    world = World(tmp_path, short_tracks)
    with small_disk(tmp_path / "box-a", "16m") as disk:
        try:
            world.start_hub()
            box = world.start_box("box-a")
            wait_until("box-a playing", lambda: len(world.plays("box-a")) >= 2, world=world)
            filler = fill(disk)
            history = "SELECT entry_id FROM play_history"
            known_to_hub = len(query(tmp_path / "hub.db", history))

            problem = wait_until("the status page to say the disk is full",
                                 lambda: [p for p in problems_of(world, "box-a") if DISK_FULL in p], world=world)
            assert "The music plays on" in problem[0], problem
            # Played on, in the queue's order: each song after the next, none again at once for want of a record.
            seen = wait_until("three more songs played on the full disk",
                              songs_played(lambda: playing_entry(world, "box-a"), 4), world=world)
            assert len(set(seen)) >= 3, seen
            assert box.proc.poll() is None
            recorded_while_full = len(world.plays("box-a"))

            # The venue's dashboard: the heartbeat's problems, and one device error for "Recent problems".
            def dashboard() -> Any:
                rows = query(tmp_path / "hub.db", "SELECT problems FROM devices WHERE device_id = 'box-a'")
                return rows and any(DISK_FULL in p for p in json.loads(rows[0]["problems"]))

            wait_until("the heartbeat to carry the problem", dashboard, world=world)
            # What it played meanwhile reached the hub's history: the outbox held it in memory and sent it.
            wait_until("the hub to hear of the songs played on the full disk",
                       lambda: len(query(tmp_path / "hub.db", history)) >= known_to_hub + 2, world=world)
            errors = wait_until("a device error on the hub",
                                lambda: query(tmp_path / "hub.db", "SELECT message FROM device_errors"), world=world)
            assert any(DISK_FULL in row["message"] for row in errors), [row["message"] for row in errors]

            filler.unlink()
            wait_until("the problem to go once space is back",
                       lambda: not [p for p in problems_of(world, "box-a") if DISK_FULL in p], world=world)
            wait_until("plays recorded again", lambda: len(world.plays("box-a")) > recorded_while_full + 1,
                       world=world)
            assert box.proc.poll() is None
        finally:
            world.close()
    log = (tmp_path / "box-a.log").read_text()
    assert "Traceback" not in log, log
    # One error line per area and episode, however many writes failed.
    for name in ("playback.db", "sync.db"):
        assert log.count(f"{name} {DISK_FULL}") <= 1, log
    assert "can be written again" in log


def page(daemon: Daemon) -> Any:
    """A daemon's own status page (localhost), found from the address it logs; one that exited fails the test."""
    if daemon.proc.poll() is not None:
        pytest.fail(f"the daemon exited with {daemon.proc.returncode}:\n{daemon.log.read_text()}")
    url = re.search(r"status page at (http://127\.0\.0\.1:\d+)", daemon.log.read_text())
    if url is None:
        return None
    with urllib.request.urlopen(f"{url.group(1)}/api/status", timeout=5) as response:  # noqa: S310 -- loopback
        return json.loads(response.read())


def entry_playing(daemon: Daemon) -> str | None:
    playing = page(daemon)["now_playing"]
    return None if playing is None else str(playing["entry_id"])


def test_a_full_disk_a_box_alone_plays_its_cached_songs_and_downloads_once_space_is_back(
    tmp_path: Path, short_tracks: list[Path]
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(short_tracks[2], served / "remote.m4a")
    media = LoopThread()
    server = MediaServer(served)
    media.run(server.start())
    url = f"{server.url}/hold/remote.m4a"  # its download waits until the disk is full
    (tmp_path / "playlist.txt").write_text(f"{short_tracks[0]}\n{short_tracks[1]}\n{url}\n")
    fetch = '[edge.fetch]\nmode = "audio"\nallowed_hosts = ["127.0.0.1"]\nattempts = 1\n'
    daemon: Daemon | None = None
    with small_disk(tmp_path / "disk", "16m") as disk:
        try:
            daemon = Daemon(write_config(disk, tmp_path / "playlist.txt", fetch), tmp_path / "daemon.log")
            playback = disk / "state" / "playback.db"
            wait_until("a local song playing and the download asked for",
                       lambda: query(playback, "SELECT 1 FROM plays") and server.requests)
            filler = fill(disk)

            async def release() -> None:
                server.released.set()

            media.run(release())
            wait_until("the status page to say the disk is full",
                       lambda: (status := page(daemon)) and any(DISK_FULL in p for p in status["problems"]))
            # The cached songs play on, one after the other (not the same one again for want of a record).
            wait_until("the local songs playing on", songs_played(lambda: entry_playing(daemon), 3))
            asked_while_full = len(server.requests)

            filler.unlink()
            finished = "SELECT 1 FROM plays WHERE source = ? AND end_reason = 'finished'"
            wait_until("the download, once space is back, and its song played", lambda: query(playback, finished, url),
                       limit=40)
            wait_until("the problem gone", lambda: not any(DISK_FULL in p for p in page(daemon)["problems"]))
        finally:
            if daemon is not None:
                daemon.stop()
            media.run(server.close())
            media.close()
    log = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in log, log
    assert asked_while_full >= 2, server.requests  # tried again, with backoff, while the disk was full


def test_restarted_on_a_full_disk_the_box_reads_its_files_as_they_are_and_plays(
    tmp_path: Path, short_tracks: list[Path]
) -> None:
    """SQLite cannot open a WAL file on a full disk (no room for its -shm): the daemon died at start, and systemd
    restarted it into the same disk, for as long as nobody came. It opens its files read-only and plays."""
    (tmp_path / "playlist.txt").write_text(f"{short_tracks[0]}\n{short_tracks[1]}\n")
    with small_disk(tmp_path / "disk", "16m") as disk:
        config = write_config(disk, tmp_path / "playlist.txt")
        first = Daemon(config, tmp_path / "first.log")
        try:
            wait_until("a song played", lambda: query(disk / "state" / "playback.db", "SELECT 1 FROM plays"))
            first.signal(signal.SIGTERM)
            assert first.wait(15) == 0
        finally:
            first.stop()
        fill(disk)
        second = Daemon(config, tmp_path / "second.log")
        try:
            problem = wait_until("the status page to say the disk is full",
                                 lambda: (status := page(second)) and [p for p in status["problems"] if DISK_FULL in p])
            assert "playback.db" in problem[0] and "restart djamms-edge" in problem[0], problem
            wait_until("songs playing, one after the other", songs_played(lambda: entry_playing(second), 3))
        finally:
            second.stop()
    log = (tmp_path / "second.log").read_text()
    assert "Traceback" not in log, log
    assert "opened read-only as it is on disk" in log
