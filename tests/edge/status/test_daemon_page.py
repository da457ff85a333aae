"""The status page of a real ``djamms-edge run`` (real libmpv, ao=null, generated media) in headless chromium.

The page must show what the daemon actually plays (checked against the daemon's own play
history in SQLite), follow a track change without a reload, and its controls must reach
libmpv: pause stops the position, skip ends the play as "skipped".
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from djamms_edge.edge.player.seams import render_tone
from tests.browser import chromium_page_sync, screenshot_path
from tests.edge.test_daemon import Daemon, query, wait_until
from tests.edge.test_daemon import daemons as daemons  # the fixture that starts and reaps daemon processes
from tests.edge.tones import rendered
from tests.ports import STATUS_PAGE_AT

TOKEN = "daemon-page-admin-token-42"
TITLES = ("Opener", "Middle", "Closer")
CURRENT_PLAY = "SELECT play_id, title, end_reason FROM plays WHERE ended_at IS NULL ORDER BY started_at DESC LIMIT 1"


def _playlist(root: Path) -> Path:
    root.mkdir()
    # 8 s of tone each: long enough to act on one, short enough to see the daemon move on.
    rendered(*(render_tone(root / f"{artist} - {title}.m4a", hz, lead=0.3, tone=8.0, trail=0.3)
               for artist, title, hz in zip(("Alpha", "Beta", "Gamma"), TITLES, (440, 550, 660), strict=True)))
    return root


def _config(tmp_path: Path, playlist: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[edge]
venue_id = "page-test-venue"
device_id = "page-test-box"
state_dir = "{tmp_path / "state"}"
cache_dir = "{tmp_path / "cache"}"
[edge.player]
video = false
ao = "null"          # real time, so the page can watch a track play
[edge.queue]
playlist = "{playlist}"
[edge.status]
port = 0
admin_token = "{TOKEN}"
"""
    )
    return config


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 -- a loopback URL the test built
        return json.load(response)


def _page_shows_the_playing_track(page: Page, db: Path, daemon: Daemon) -> str:
    """The title on the page, once the daemon's history agrees it is the one playing."""

    def agreed() -> str | None:
        shown = page.inner_text("#title")
        rows = query(db, CURRENT_PLAY)
        return shown if rows and rows[0]["title"] == shown else None

    return str(wait_until("the page to show the play the daemon recorded", agreed, daemon, limit=20))


def test_the_page_follows_the_real_daemon(tmp_path: Path, daemons: Callable[[Path], Daemon]) -> None:
    playlist = _playlist(tmp_path / "playlist")
    daemon = daemons(_config(tmp_path, playlist))
    db = tmp_path / "state" / "playback.db"
    url = wait_until("the status page URL in the log", lambda: STATUS_PAGE_AT.search(daemon.log.read_text()), daemon)[1]

    with chromium_page_sync() as page:
        page.goto(url + "/")
        page.evaluate("window.loadedOnce = true")
        expect(page.locator("#role")).to_have_text("master")
        expect(page.locator("#hub")).to_have_text("no hub")  # none configured: the local playlist plays
        first = _page_shows_the_playing_track(page, db, daemon)
        assert first in TITLES

        # The daemon moves on by itself; the page follows without a reload.
        expect(page.locator("#title")).not_to_have_text(first, timeout=20_000)
        second = _page_shows_the_playing_track(page, db, daemon)
        assert second in TITLES and second != first
        assert page.evaluate("window.loadedOnce") is True
        expect(page.locator("#live")).to_have_text("live")
        page.screenshot(path=str(screenshot_path("status-page-daemon.png")), full_page=True)

        status = _get_json(url + "/api/status")
        assert status["now_playing"]["title"] == second
        assert status["device_id"] == "page-test-box"
        assert 0.0 < status["now_playing"]["real_start"] < 1.0  # trimmed: the lead silence is skipped
        assert 8.0 < status["now_playing"]["real_end"] < 8.6  # ... and so is the trailing one

        # Pause from the page: libmpv's position stands still.
        page.fill("#token", TOKEN)
        page.click("#pause")
        expect(page.locator("#paused")).to_be_visible()
        held = _get_json(url + "/api/status")["now_playing"]["position"]
        time.sleep(1.0)
        assert _get_json(url + "/api/status")["now_playing"]["position"] == held
        page.click("#resume")
        expect(page.locator("#paused")).to_be_hidden()

        # Skip from the page: the play ends as skipped and the next one shows.
        (playing,) = query(db, CURRENT_PLAY)
        page.click("#skip")
        expect(page.locator("#title")).not_to_have_text(second, timeout=10_000)
        third = _page_shows_the_playing_track(page, db, daemon)
        assert third != second
        skipped = query(db, "SELECT end_reason FROM plays WHERE play_id = ?", playing["play_id"])
        assert [row["end_reason"] for row in skipped] == ["skipped"]

    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:  # noqa: S310
        metrics = response.read().decode()
    assert "djamms_edge_playing 1" in metrics
    assert 'djamms_edge_role{role="master"} 1' in metrics

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    assert "Traceback" not in daemon.log.read_text()


def _control(url: str, action: str, body: dict[str, Any] | None = None) -> None:
    request = urllib.request.Request(  # noqa: S310 -- a loopback URL the test built
        f"{url}/api/control/{action}", data=json.dumps(body or {}).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        assert response.status == 200


def test_volume_and_pause_set_by_staff_survive_a_power_cut(tmp_path: Path, daemons: Callable[[Path], Daemon]) -> None:
    """Staff turned the box down and paused it; the power goes (kill -9); it must come back as they left it,
    not at full volume and not playing into whatever made them pause."""
    config = _config(tmp_path, _playlist(tmp_path / "playlist"))
    daemon = daemons(config)
    url = wait_until("the status page URL in the log", lambda: STATUS_PAGE_AT.search(daemon.log.read_text()), daemon)[1]
    wait_until("a track playing", lambda: _get_json(url + "/api/status")["now_playing"], daemon)
    _control(url, "volume", {"volume": 40})
    _control(url, "pause")
    daemon.signal(signal.SIGKILL)
    daemon.wait(10)

    restarted = daemons(config)
    urls = lambda: STATUS_PAGE_AT.findall(restarted.log.read_text())  # noqa: E731 -- the log is appended to
    url = wait_until("the restarted daemon's status page", lambda: len(urls()) == 2 and urls()[1], restarted)
    status = wait_until("the interrupted track back", lambda: (s := _get_json(url + "/api/status"))["now_playing"]
                        and s, restarted)
    assert status["volume"] == 40
    assert status["now_playing"]["paused"] is True
    held = status["now_playing"]["position"]
    time.sleep(1.0)
    # libmpv really holds still: a playing track would be a second further. To the millisecond, not exactly: read
    # before libmpv has loaded the file, the position is the play's start (0.3), and libmpv's own reading of that
    # same point is 0.29999999999999982.
    assert _get_json(url + "/api/status")["now_playing"]["position"] == pytest.approx(held, abs=0.001)
    _control(url, "resume")
    wait_until("playback to move on", lambda: _get_json(url + "/api/status")["now_playing"]["position"] > held,
               restarted, limit=5)
