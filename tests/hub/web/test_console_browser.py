"""The console's management pages in real chromium, against a real hub and a real edge daemon (issue 12).

One story, one browser: staff build a playlist and activate it, the box plays it; staff remove a paid
request (its refund is recorded), reorder the rotation, skip what plays (the box obeys within a second),
ban an artist (a patron's request for it is refused, the rotation passes it over), and a weekly window
switches the playlist when the hub's (injected) clock reaches it. Screenshots go to test-artifacts/.

The hub runs in this process on a loop thread, so the test owns its clock; the edge is ``djamms-edge run``
(libmpv with ao=null) fetching the songs from a loopback media server with yt-dlp.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import Page, expect

from djamms_edge.edge.player.seams import render_tone
from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_device_token, issue_user_token
from djamms_edge.hub.config import RegistryConfig, RequestRulesConfig, ScheduleConfig
from djamms_edge.hub.store.base import User
from djamms_edge.hub.store.sqlite import SqliteStore
from tests.browser import chromium_page_sync, screenshot_path
from tests.edge.media.http_server import MediaServer
from tests.edge.sync.test_daemons import LoopThread, Proc, start_edge, wait_until
from tests.edge.test_daemon import query
from tests.hub.conftest import SECRET, Clock, hub_config

VENUE = "console-bar"
BANDS = ["Amber Lane", "Banned Brass", "Cobalt", "Delta Nine"]
SONG_S = 6.0


@dataclasses.dataclass
class Console:
    url: str
    store: SqliteStore
    clock: Clock
    loop: LoopThread
    media: MediaServer
    tmp: Path
    box: Proc | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run(coro)

    def plays(self) -> list[sqlite3.Row]:
        return query(self.tmp / "box" / "playback.db", "SELECT * FROM plays ORDER BY started_at")

    def now_playing(self) -> dict[str, Any] | None:
        snapshot = self.run(self.store.queue_snapshot(VENUE))
        return None if snapshot.now_playing is None else snapshot.now_playing.to_json()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.tmp.glob("*.log")))

    def start_box(self) -> None:
        token = issue_device_token(SECRET, VENUE, "box", time.time(), 3600)
        self.box = start_edge(self.tmp, VENUE, "box", self.url, token)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    media_dir = tmp / "media"
    media_dir.mkdir()
    loop = LoopThread()

    async def start() -> tuple[str, SqliteStore, Clock, MediaServer, web.AppRunner]:
        await asyncio.gather(*(render_tone(media_dir / f"song{n}.m4a", 330 + 110 * n, lead=0.3, tone=SONG_S - 0.6,
                                           trail=0.3) for n in range(len(BANDS))))
        media = MediaServer(media_dir)
        await media.start()
        loopback_media = RequestRulesConfig(allow_urls=True, allowed_hosts=("127.0.0.1",))  # internal: allowed by name
        config = hub_config(requests=loopback_media,
                            registry=RegistryConfig(stale_after_s=3.0),
                            schedule=ScheduleConfig(check_interval_s=0.1))
        store = SqliteStore(tmp / "hub.db")
        clock = Clock()
        runner = web.AppRunner(create_app(config, store, clock=clock))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        await store.create_venue(VENUE, "The Console Arms", int(clock() * 1000))
        return f"http://127.0.0.1:{port}", store, clock, media, runner

    url, store, clock, media, runner = loop.run(start())
    made = Console(url, store, clock, loop, media, tmp)
    try:
        yield made
    finally:
        if made.box is not None:
            made.box.stop()
        loop.run(runner.cleanup())
        loop.run(media.close())
        loop.close()


@pytest.fixture(scope="module")
def page(console: Console) -> Iterator[Page]:
    with chromium_page_sync() as browser_page:
        problems: list[str] = []
        browser_page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
        # Expected refusals: 404 for the page of a venue that does not exist, 401 for a page opened without a
        # token. Anything else is a problem.
        expected = ("status of 404", "status of 401")
        browser_page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not any(
            e in m.text for e in expected) else None)
        user = User("user-staff-1", "staff@console.example", VENUE, "staff")
        console.run(console.store.upsert_user(user, 0))
        token = issue_user_token(SECRET, user, time.time(), 3600)
        # Signed in as the sign-in page leaves a browser: the token in the page's storage.
        browser_page.goto(f"{console.url}/v/{VENUE}")
        browser_page.evaluate("token => djamms.setToken(token)", token)
        yield browser_page
        assert not problems, problems


def song_line(console: Console, n: int) -> str:
    return f"{console.media.url}/media/song{n}.m4a | {BANDS[n]} | Song {n} | 0:{SONG_S:02.0f}"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(screenshot_path(name)), full_page=True)


def notice(page: Page, text: str) -> None:
    expect(page.get_by_role("status")).to_contain_text(text)


def test_staff_run_the_venue_from_the_console(console: Console, page: Page) -> None:
    # --- a playlist, made in the browser, activated; the box plays it ---------------------------------
    page.goto(f"{console.url}/console/{VENUE}/playlists")
    page.get_by_label("Name of the new playlist").fill("Evening")
    page.get_by_role("button", name="Create").click()
    notice(page, "Created “Evening”")
    page.get_by_label("One song a line").fill("\n".join(song_line(console, n) for n in range(len(BANDS))))
    page.get_by_role("button", name="Import").click()
    notice(page, "Imported 4 songs.")
    page.get_by_label("Patrons may request songs from this playlist").check()
    notice(page, "Patrons may request")
    page.get_by_role("button", name="Play this playlist now").click()
    notice(page, "Playing this playlist now")
    expect(page.locator("#tracks > li")).to_have_count(4)
    shot(page, "console-playlists.png")
    playlists = console.run(console.store.list_playlists(VENUE))
    assert [(p.name, p.active, p.requestable, len(p.tracks)) for p in playlists] == [("Evening", True, True, 4)]

    # --- a paid request removed (refund recorded), the rotation reordered (before the box starts, so it
    # cannot start the request first) --------------------------------------------------------------------
    paid = console.run(paid_request(console, 3, "pay-remove"))
    assert paid == 201
    page.goto(f"{console.url}/console/{VENUE}/queue")
    page.get_by_role("button", name=f"Remove Song 3 by {BANDS[3]}").first.click()
    notice(page, "marked for refund")
    refunds = console.run(console.store.list_requests(VENUE, "refund_due", 10))
    assert [(r.payment_id, r.reason) for r in refunds] == [
        ("pay-remove", "removed from the queue by staff@console.example")]

    main = [e.entry_id for e in console.run(console.store.queue_snapshot(VENUE)).main]
    first = page.locator("#main-queue > li").first.locator(".title").text_content()
    page.locator("#main-queue > li").first.get_by_role("button", name="Move").nth(1).click()  # ↓
    notice(page, f"Moved “{first}”")
    after = [e.entry_id for e in console.run(console.store.queue_snapshot(VENUE)).main]
    assert set(after) == set(main) and after != main
    shot(page, "console-queue.png")

    console.start_box()
    wait_until("the box playing the playlist", lambda: console.plays(), limit=60)
    assert console.plays()[0]["source"].startswith(console.media.url)

    # --- skip now: the box moves on within a second ---------------------------------------------------
    def hub_sees_the_play() -> dict[str, Any] | None:
        current = [r for r in console.plays() if r["ended_at"] is None]
        playing = console.now_playing()
        fresh = playing and current and current[-1]["entry_id"] == playing["entryId"]
        return playing if fresh and time.time() - current[-1]["started_at"] < SONG_S - 3 else None

    playing = wait_until("a song just started, and the hub knowing it", hub_sees_the_play, limit=30)
    page.reload()
    expect(page.get_by_role("button", name="Skip now")).to_be_enabled()
    clicked = time.monotonic()
    page.get_by_role("button", name="Skip now").click()

    def skipped() -> bool:
        rows = [r for r in console.plays() if r["entry_id"] == playing["entryId"]]
        return bool(rows) and rows[-1]["end_reason"] == "skipped"

    wait_until("the box skipping", skipped, limit=5)
    took = time.monotonic() - clicked
    print(f"skip now: the box ended the track {took:.2f} s after the click")
    assert took < 2.5, took  # within a second on an idle box (the fade itself is 0.8 s); margin for load

    # --- ban an artist: a request is refused, the rotation passes it over ----------------------------
    page.goto(f"{console.url}/console/{VENUE}/rules")
    expect(page.locator("#price-card")).to_contain_text("Requests are free here: this hub takes no payments.")
    expect(page.get_by_label("Price", exact=True)).to_have_count(0)  # nothing to set until the hub charges
    page.get_by_label("Ban", exact=True).select_option("ban_artist")
    page.get_by_label("Artist name, or YouTube URL or video id").fill(BANDS[1])
    page.get_by_role("button", name="Ban", exact=True).click()
    notice(page, "Banned.")
    expect(page.locator("#bans")).to_contain_text(BANDS[1])
    shot(page, "console-rules.png")
    assert console.run(paid_request(console, 1, "pay-banned")) == 422
    banned_at = time.time()
    plays_before = len(console.plays())
    wait_until("two more songs", lambda: len(console.plays()) >= plays_before + 3, limit=40)
    later = [r["source"] for r in console.plays() if r["started_at"] > banned_at + 0.5]
    assert later and not any(source.endswith("/song1.m4a") for source in later), later

    # --- the schedule switches the playlist at its time (the hub's clock, injected) -------------------
    late = console.run(console.store.create_playlist(VENUE, "Late", 0))
    console.run(console.store.add_track(late.playlist_id, song_of(console, 0), 0))
    console.run(console.store.set_venue_settings(VENUE, dataclasses.replace(
        console.run(console.store.venue_rules(VENUE)).settings, timezone="Europe/Paris"), 0))
    target = datetime(2031, 1, 10, 21, 59, 50, tzinfo=UTC)  # a Friday, 22:59:50 in Paris
    # The hub's clock jumps years ahead: its lease on the box looks expired, so the box registers again
    # (a new epoch, within milliseconds) and plays on; a real clock does not jump.
    console.clock.offset = target.timestamp() - time.time()
    page.goto(f"{console.url}/console/{VENUE}/schedule")
    page.get_by_label("Playlist").select_option(label="Late")
    page.get_by_label("Day").select_option(label="Friday")
    page.get_by_label("From").fill("23:00")
    page.get_by_label("Until").fill("23:59")
    page.get_by_role("button", name="Add window").click()
    notice(page, "Window added.")
    expect(page.locator("#slots")).to_contain_text("Friday 23:00–23:59")
    time.sleep(0.5)
    assert console.run(console.store.get_venue(VENUE)).active_playlist_id != late.playlist_id
    console.clock.advance(15)
    wait_until("the hub switching to Late", lambda: console.run(console.store.get_venue(VENUE)).active_playlist_id
               == late.playlist_id, limit=5)
    switched = time.time()
    wait_until("the box playing Late", lambda: [r for r in console.plays() if r["started_at"] > switched
                                                 and r["source"].endswith("/song0.m4a")], limit=30)
    page.reload()
    expect(page.locator("#slots .badge")).to_have_text("now")
    shot(page, "console-schedule.png")

    # --- cue points: the venue's own start for a song -------------------------------------------------
    page.goto(f"{console.url}/console/{VENUE}/cues")
    row = page.locator("#cues > li", has_text="Song 2")
    row.get_by_label("Start (s)").fill("1.5")
    row.get_by_role("button", name="Save cue points of Song 2").click()
    notice(page, "Song 2: plays from 1.5 s")
    video = f"{console.media.url}/media/song2.m4a"
    track = console.run(console.store.get_catalog([video], VENUE))[video]
    assert track.venue_override is not None and track.venue_override.start == 1.5
    shot(page, "console-cues.png")


def test_every_page_is_labelled_keyboard_ready_and_fits_a_phone(console: Console, page: Page) -> None:
    for name in ("queue", "playlists", "rules", "schedule", "cues", "team"):
        page.goto(f"{console.url}/console/{VENUE}/{name}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.lang") == "en"
        assert "The Console Arms" in page.title()
        assert page.locator("main#main").count() == 1
        assert page.locator('.site-nav a[aria-current="page"]').count() == 1
        unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, textarea')]
            .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id || e.outerHTML)""")
        assert unlabelled == [], (name, unlabelled)
        nameless = page.evaluate("""[...document.querySelectorAll('button')]
            .filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).map(b => b.outerHTML)""")
        assert nameless == [], (name, nameless)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.classList.contains('skip-link')"), name
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name


def test_without_a_token_a_page_sends_the_browser_to_sign_in(console: Console, page: Page) -> None:
    page.goto(f"{console.url}/console/no-such-venue/queue")
    assert "No such venue" in page.content()
    page.goto(f"{console.url}/v/{VENUE}")
    page.evaluate("djamms.setToken('not-a-token')")  # revoked, expired or forged: the hub answers 401
    page.goto(f"{console.url}/console/{VENUE}/playlists")
    page.wait_for_url("**/console/sign-in**")
    page.goto(f"{console.url}/v/{VENUE}")
    page.evaluate("djamms.setToken(null)")
    page.goto(f"{console.url}/console/{VENUE}/rules")
    page.wait_for_url("**/console/sign-in**")


def sign_in_as(console: Console, page: Page, user: User) -> None:
    console.run(console.store.upsert_user(user, 0))
    page.goto(f"{console.url}/v/{VENUE}")
    page.evaluate("token => djamms.setToken(token)", issue_user_token(SECRET, user, time.time(), 3600))


def test_the_admin_opens_a_venue_and_gives_it_a_team_in_the_browser(console: Console, page: Page) -> None:
    sign_in_as(console, page, User("user-admin-1", "admin@console.example", None, "admin"))
    page.goto(f"{console.url}/console/")
    page.get_by_label("Name").fill("The Crown & Anchor")
    expect(page.get_by_label("Venue id")).to_have_value("the-crown-anchor")  # from the name, as an address has it
    page.get_by_label("Timezone").fill("Europe/London")
    shot(page, "console-new-venue.png")
    page.get_by_role("button", name="Create venue").click()
    page.wait_for_url("**/console/the-crown-anchor/team")
    expect(page.locator("#people")).to_contain_text("Nobody yet")
    venue = console.run(console.store.get_venue("the-crown-anchor"))
    assert (venue.name, venue.timezone) == ("The Crown & Anchor", "Europe/London")

    for email in ("Owner@Crown.example", "bar@crown.example"):
        page.get_by_label("Email address").fill(email)
        page.get_by_role("button", name="Add to the team").click()
        notice(page, f"{email.lower()} is on the team")
    expect(page.locator("#people li")).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove bar@crown.example").click()
    notice(page, "bar@crown.example is removed.")
    expect(page.locator("#people li")).to_have_count(1)
    shot(page, "console-team-admin.png")
    team = console.run(console.store.list_users("the-crown-anchor"))
    assert [(u.email, u.role) for u in team] == [("owner@crown.example", "staff")]

    # The first person signs in as staff: their venue's console, their team to read, nobody to add or remove.
    sign_in_as(console, page, team[0])
    page.goto(f"{console.url}/console/")
    page.wait_for_url("**/console/the-crown-anchor/")
    page.goto(f"{console.url}/console/the-crown-anchor/team")
    expect(page.locator("#people")).to_contain_text("owner@crown.example (you)")
    expect(page.get_by_text("Only the venue's owners and the hub's admin add or remove people.")).to_be_visible()
    expect(page.get_by_label("Email address")).to_be_hidden()
    assert page.get_by_role("button", name="Remove owner@crown.example").count() == 0
    shot(page, "console-team-staff.png")


def song_of(console: Console, n: int) -> Any:
    from djamms_edge.hub.store.base import Song

    return Song(f"{console.media.url}/media/song{n}.m4a", f"Song {n}", BANDS[n], SONG_S)


async def paid_request(console: Console, n: int, payment_id: str) -> int:
    import aiohttp

    body = {"song": song_of(console, n).to_json(), "paymentId": payment_id}
    async with aiohttp.ClientSession() as http, http.post(f"{console.url}/api/v1/venues/{VENUE}/requests",
                                                          json=body) as resp:
        return resp.status
