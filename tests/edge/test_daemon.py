"""``djamms-edge run`` as a real process: it plays, stops cleanly on SIGTERM/SIGINT, and survives kill -9."""

from __future__ import annotations

import functools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.edge.player.seams import render_tone
from tests.edge.tones import rendered

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def playlist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("daemon-playlist")
    rendered(
        render_tone(root / "Alpha - Long One.m4a", 440, lead=1.0, tone=38.0, trail=1.0),
        render_tone(root / "Beta - Short One.m4a", 660, lead=0.5, tone=3.0, trail=0.5),
    )
    return root


def write_config(tmp_path: Path, playlist: Path, extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[edge]
state_dir = "{tmp_path / 'state'}"
cache_dir = "{tmp_path / 'cache'}"
[edge.player]
video = false
ao = "null"          # plays in real time, so the test can kill it mid-track
[edge.queue]
playlist = "{playlist}"
[edge.status]
port = 0             # any free port: tests never take a fixed one
"""
        + extra
    )
    return config


class Daemon:
    def __init__(self, config: Path, log: Path, python_options: Sequence[str] = ()) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM")}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *python_options, "-m", "djamms_edge.edge.cli", "run", "--config", str(config)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def wait(self, limit: float) -> int:
        return self.proc.wait(timeout=limit)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        daemon = Daemon(config, tmp_path / "daemon.log")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def query(db: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []  # not migrated yet
    finally:
        conn.close()


def wait_until(what: str, check: Callable[[], Any], daemon: Daemon, limit: float = 30.0) -> Any:
    """Poll ``check`` (a separate process gives us no event to await) until it returns something truthy."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if daemon.proc.poll() is not None:
            pytest.fail(f"daemon exited with {daemon.proc.returncode} while waiting for {what}:\n"
                        + daemon.log.read_text())
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n" + daemon.log.read_text())


NOW_PLAYING = "SELECT n.play_id, n.position, n.saved_at, p.title, p.resumes, p.resumed_from " \
              "FROM now_playing n JOIN plays p USING (play_id)"


def test_after_kill_9_the_same_entry_resumes_where_it_was(
    tmp_path: Path, playlist_dir: Path, daemons: Callable[[Path], Daemon],
) -> None:
    config = write_config(tmp_path, playlist_dir)
    db = tmp_path / "state" / "playback.db"
    first = daemons(config)

    def playing_a_while() -> sqlite3.Row | None:
        rows = query(db, NOW_PLAYING)
        return rows[0] if rows and rows[0]["position"] >= 6.0 else None

    before = wait_until("six seconds of playback", playing_a_while, first)
    time.sleep(1.0)
    first.signal(signal.SIGKILL)
    killed_at = time.time()
    first.wait(10)
    where_it_was = before["position"] + (killed_at - before["saved_at"])

    second = daemons(config)
    restart = time.time()

    def resumed() -> sqlite3.Row | None:
        rows = query(db, "SELECT * FROM plays WHERE play_id = ? AND resumes = 1", before["play_id"])
        return rows[0] if rows else None

    play = wait_until("the interrupted play to resume", resumed, second)
    resumed_seen = time.time()
    assert play["title"] == "Long One"
    assert abs(play["resumed_from"] - where_it_was) <= 3.0, (play["resumed_from"], where_it_was)

    def saved_after_resume() -> sqlite3.Row | None:
        rows = query(db, NOW_PLAYING)
        return rows[0] if rows and rows[0]["saved_at"] > resumed_seen + 0.5 else None

    later = wait_until("a position saved after the resume", saved_after_resume, second)
    assert later["play_id"] == before["play_id"]
    # mpv really plays on from the resume point: not from the start, not skipped ahead.
    assert play["resumed_from"] < later["position"] <= play["resumed_from"] + (time.time() - restart) + 0.5
    plays = query(db, "SELECT title FROM plays")
    assert [p["title"] for p in plays] == ["Long One"]  # one history row: nothing replayed, nothing skipped

    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_exits_cleanly_and_keeps_the_play_for_the_next_start(
    tmp_path: Path, playlist_dir: Path, daemons: Callable[[Path], Daemon], sig: int,
) -> None:
    config = write_config(tmp_path, playlist_dir)
    db = tmp_path / "state" / "playback.db"
    daemon = daemons(config)
    wait_until("playback", lambda: query(db, NOW_PLAYING), daemon)
    time.sleep(0.5)
    daemon.signal(sig)
    assert daemon.wait(15) == 0
    log = daemon.log.read_text()
    assert "edge daemon stopping" in log and "Traceback" not in log
    (row,) = query(db, NOW_PLAYING)
    assert row["position"] > 1.0  # the final position was saved on the way out


def test_a_track_the_daemon_dies_on_after_each_resume_is_given_up_and_the_next_one_plays(
    tmp_path: Path, playlist_dir: Path, daemons: Callable[[Path], Daemon],
) -> None:
    """What a file that crashes libmpv at one spot does to the box: the daemon dies playing it, systemd starts
    it again, it resumes the same play there and dies again. Here kill -9 stands in for the crash."""
    config = write_config(tmp_path, playlist_dir)
    db = tmp_path / "state" / "playback.db"
    daemon = daemons(config)
    first = wait_until("playback", lambda: [r for r in query(db, NOW_PLAYING) if r["position"] >= 3.0], daemon)[0]
    daemon.signal(signal.SIGKILL)
    daemon.wait(10)
    for resumes in (1, 2):
        daemon = daemons(config)
        resumed = functools.partial(query, db, "SELECT 1 FROM plays WHERE play_id = ? AND resumes = ?",
                                    first["play_id"], resumes)
        wait_until(f"resume {resumes}", resumed, daemon)
        daemon.signal(signal.SIGKILL)  # dies again where it resumed
        daemon.wait(10)

    daemon = daemons(config)
    playing = wait_until("the next track", lambda: [r for r in query(db, NOW_PLAYING)
                                                    if r["play_id"] != first["play_id"]], daemon)[0]
    assert playing["title"] == "Short One"
    (given_up,) = query(db, "SELECT title, resumes, end_reason FROM plays WHERE play_id = ?", first["play_id"])
    assert tuple(given_up) == ("Long One", 2, "failed")
    assert "not resuming" in daemon.log.read_text()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
