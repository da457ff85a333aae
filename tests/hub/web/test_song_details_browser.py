"""Staff paste only a URL; once the venue's box fetched the song, the console shows its artist, title and length.
A song imported into a playlist for another night is looked up without being downloaded.

Real parts throughout: the hub on loopback (in this process on a loop thread, as in test_console_browser.py),
``djamms-edge run`` as a subprocess fetching with real yt-dlp from a loopback "video site" (pages with schema.org
metadata, ``demo.write_video_page``), measuring with its media worker and reporting through its outbox, and the
console in Debian's Chromium. Screenshots: test-artifacts/console-details-*.png.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import Page, expect

from djamms_edge.demo import write_video_page
from djamms_edge.edge.player.seams import render_tone
from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_device_token, issue_user_token
from djamms_edge.hub.config import RequestRulesConfig
from djamms_edge.hub.store.base import User
from djamms_edge.hub.store.sqlite import SqliteStore
from tests.browser import chromium_page_sync, screenshot_path
from tests.edge.media.http_server import MediaServer
from tests.edge.sync.test_daemons import LoopThread, Proc, start_edge, wait_until
from tests.edge.test_daemon import query
from tests.hub.conftest import SECRET, hub_config

VENUE = "details-bar"
LEAD, TONE, TRAIL = 0.3, 4.4, 0.3  # the file is 5.0 s long: what the box measures, and the console shows


def test_a_song_added_by_url_alone_is_described_by_the_box_in_the_console(tmp_path: Path) -> None:
    loop = LoopThread()
    box: Proc | None = None

    async def start() -> tuple[str, SqliteStore, MediaServer, web.AppRunner]:
        media = MediaServer(tmp_path)
        await media.start()
        await render_tone(tmp_path / "blue-hour.m4a", 440, lead=LEAD, tone=TONE, trail=TRAIL)
        config = hub_config(requests=RequestRulesConfig(allow_urls=True, allowed_hosts=("127.0.0.1",)))
        store = SqliteStore(tmp_path / "hub.db")
        runner = web.AppRunner(create_app(config, store))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        await store.create_venue(VENUE, "The Details Bar", int(time.time() * 1000))
        return f"http://127.0.0.1:{runner.addresses[0][1]}", store, media, runner

    url, store, media, runner = loop.run(start())
    page_path = "/media/" + write_video_page(tmp_path, "cobalt-blue-hour", f"{media.url}/media/blue-hour.m4a",
                                 "Cobalt \u2013 Blue Hour (Official Video)", uploader="Cobalt VEVO")
    song_url = media.url + page_path
    later_url = media.url + "/media/" + write_video_page(
        tmp_path, "night-drive", f"{media.url}/media/blue-hour.m4a", "Night Drive", uploader="Amber Lane",
        duration_s=245)
    try:
        with chromium_page_sync() as page:
            problems = watch(page)
            sign_in(page, url, store, loop)
            # --- staff paste only the URL -----------------------------------------------------------------
            page.goto(f"{url}/console/{VENUE}/playlists")
            page.get_by_label("Name of the new playlist").fill("Tonight")
            page.get_by_role("button", name="Create").click()
            expect(page.get_by_role("status")).to_contain_text("Created")
            page.get_by_label("YouTube URL or video id").fill(song_url)
            page.get_by_role("button", name="Add song").click()
            expect(page.get_by_role("status")).to_contain_text("come from the box")
            track = page.locator("#tracks > li").first
            expect(track).to_contain_text(song_url)
            expect(track).to_contain_text("details coming from the box")
            page.get_by_role("button", name="Play this playlist now").click()
            expect(page.get_by_role("status")).to_contain_text("Playing this playlist now")
            page.screenshot(path=str(screenshot_path("console-details-pending.png")), full_page=True)
            # ...and a list for another night, by import: not played tonight, so never downloaded.
            page.get_by_label("Name of the new playlist").fill("Tomorrow")
            page.get_by_role("button", name="Create").click()
            page.get_by_label("One song a line").fill(later_url)
            page.get_by_role("button", name="Import").click()
            expect(page.get_by_role("status")).to_contain_text("Imported 1 song (1 with details coming from the box)")

            # --- the box fetches it (yt-dlp), measures it and says what it is -----------------------------
            token = issue_device_token(SECRET, VENUE, "box", time.time(), 3600)
            box = start_edge(tmp_path, VENUE, "box", url, token)

            def described() -> Any:
                playlist = loop.run(store.list_playlists(VENUE))[0]
                return None if playlist.tracks[0].pending else playlist.tracks[0]

            song = wait_until("the box describing the song", described, limit=90)
            assert (song.artist, song.title) == ("Cobalt", "Blue Hour")
            assert song.duration == pytest.approx(LEAD + TONE + TRAIL, abs=0.15)
            assert song.details_by == "box"

            # --- what staff notice: the playlist shows artist, title and length ---------------------------
            page.reload()
            page.get_by_role("button", name="Edit Tonight").click()
            track = page.locator("#tracks > li").first
            expect(track.locator(".title")).to_have_text("Blue Hour")
            expect(track.locator(".sub")).to_have_text("Cobalt · 0:05 · from the box")
            expect(page.get_by_role("button", name="Remove Blue Hour by Cobalt")).to_be_visible()
            page.screenshot(path=str(screenshot_path("console-details-filled.png")), full_page=True)
            # --- staff correct what the box said: theirs from then on ---------------------------------------
            page.get_by_role("button", name="Edit details of Blue Hour by Cobalt").click()
            expect(page.get_by_label("Artist", exact=True).first).to_be_focused()
            expect(page.locator("#edit-duration")).to_have_value("0:05")
            page.locator("#edit-title").fill("Blue Hour (Live at the Bar)")
            page.screenshot(path=str(screenshot_path("console-details-edit.png")), full_page=True)
            page.get_by_role("button", name="Save details").click()
            expect(page.get_by_role("status")).to_contain_text("Saved “Blue Hour (Live at the Bar)” by Cobalt")
            expect(track.locator(".sub")).to_have_text("Cobalt · 0:05")
            typed = loop.run(store.list_playlists(VENUE))[0].tracks[0]
            assert (typed.title, typed.details_by) == ("Blue Hour (Live at the Bar)", None)
            page.goto(f"{url}/console/{VENUE}/queue")
            expect(page.locator("#main-queue > li").first.locator(".title")).to_have_text("Blue Hour (Live at the Bar)")

            # --- the other night's song: looked up (yt-dlp's info alone), described, not downloaded -------
            def looked_up() -> Any:
                later = loop.run(store.list_playlists(VENUE))[1].tracks[0]
                return None if later.pending else later

            later = wait_until("the box looking the other song up", looked_up, limit=60)
            assert (later.artist, later.title, later.duration) == ("Amber Lane", "Night Drive", 245.0)
            cached = [row["key"] for row in query(tmp_path / "box" / "media.db", "SELECT key FROM media_files")]
            assert cached == [song_url]
            page.goto(f"{url}/console/{VENUE}/cues")
            expect(page.locator("#cues")).to_contain_text("Night Drive — Amber Lane")
            assert not problems, problems
    finally:
        if box is not None:
            box.stop()
        loop.run(runner.cleanup())
        loop.run(media.close())
        loop.close()


def watch(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    return problems


def sign_in(page: Page, url: str, store: SqliteStore, loop: LoopThread) -> None:
    """Signed in as the sign-in page leaves a browser: a staff token in the page's storage."""
    user = User("user-staff-1", "staff@details.example", VENUE, "staff")
    loop.run(store.upsert_user(user, 0))
    page.goto(f"{url}/v/{VENUE}")
    page.evaluate("token => djamms.setToken(token)", issue_user_token(SECRET, user, time.time(), 3600))
