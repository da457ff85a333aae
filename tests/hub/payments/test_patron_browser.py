"""A patron on a phone (headless chromium) requests and pays for a song on the patron page, against a real hub
charging through the fake Stripe and a real edge daemon (libmpv, ao=null) playing the venue's queue."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from djamms_edge.edge.player.seams import render_tone
from djamms_edge.hub.auth import issue_device_token
from tests.browser import PageWatch, check_layout, chromium_page, save_screenshot
from tests.edge.media.http_server import MediaServer
from tests.edge.sync.test_daemons import Proc, start_edge
from tests.hub.conftest import SECRET
from tests.hub.payments.conftest import PRICE, Paying, PayingFactory

TONE_S = 5.0  # long enough that two requests ahead of ours are still queued when it is paid
PLAY_TIMEOUT_MS = 90_000  # the box fetches (yt-dlp), analyses (ffmpeg) and plays each track on a busy machine


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the page does not depend on the store; one backend keeps the suite fast


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[tuple[MediaServer, list[dict[str, Any]]]]:
    root = tmp_path / "media"
    root.mkdir()
    names = [("Night Drive", "The Testers"), ("Blue Tone", "Sine Wave"), ("Last Call", "The Barflies"),
             ("Closing Time", "Semisonic Test")]
    await asyncio.gather(*(render_tone(root / f"t{i}.m4a", 330 + 110 * i, lead=0.2, tone=TONE_S, trail=0.2)
                           for i in range(len(names))))
    server = MediaServer(root)
    await server.start()
    songs = [{"videoId": f"{server.url}/media/t{i}.m4a", "title": title, "artist": artist,
              "duration": TONE_S + 0.4} for i, (title, artist) in enumerate(names)]
    try:
        yield server, songs
    finally:
        await server.close()


async def until(check: Any, within_s: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + within_s
    while not (result := await check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")  # noqa: ASYNC240 -- failing anyway
        await asyncio.sleep(0.1)
    return result


async def test_a_patron_requests_pays_and_watches_the_song_play(
        start_paying: PayingFactory, media: tuple[MediaServer, list[dict[str, Any]]], tmp_path: Path) -> None:
    _, songs = media
    async with start_paying(songs=songs, active=True, playing=False) as p:  # the real box below plays
        token = issue_device_token(SECRET, "tavern", "box-1", time.time(), 3600)
        box = start_edge(tmp_path, "tavern", "box-1", p.hub.url, token)
        try:
            async def playing() -> bool:
                status, queue = await p.hub.call("GET", "/api/v1/venues/tavern/queue")
                return status == 200 and queue["nowPlaying"] is not None

            await until(playing, 60, "the box to play", box.log)
            await run_the_patron(p, box, songs)
        finally:
            box.stop()


async def others_pay_first(p: Paying, songs: list[dict[str, Any]]) -> None:
    """Two patrons paid just before ours (PaymentIntents the hub checks with Stripe)."""
    for song in songs[1:3]:
        intent = p.stripe.payment_intent(PRICE, "usd")
        status, _ = await p.hub.call("POST", "/api/v1/venues/tavern/requests",
                                     {"song": song, "paymentId": intent["id"]})
        assert status == 201


async def statuses_until_played(page: Page) -> list[str]:
    """Every distinct text the patron's status line shows, in order, until it says the song has played."""
    seen: list[str] = []
    deadline = time.monotonic() + PLAY_TIMEOUT_MS / 1000
    while not seen or not seen[-1].startswith("Played"):
        assert time.monotonic() < deadline, seen
        text = (await page.locator("#mine-status").text_content() or "").split(",")[0]
        if text and (not seen or seen[-1] != text):
            seen.append(text)
            if text.startswith("In the queue"):
                await save_screenshot(page, "patron-queued-phone.png")
            elif text.startswith("Playing"):
                await save_screenshot(page, "patron-playing-phone.png")
        await asyncio.sleep(0.1)
    return seen


async def run_the_patron(p: Paying, box: Proc, songs: list[dict[str, Any]]) -> None:
    async with chromium_page() as page:
        watch = PageWatch(page, p.hub.url)
        await page.goto(f"{p.hub.url}/v/tavern")
        await check_layout(page)
        await expect(page.locator("#np-title")).not_to_have_text("Nothing is playing right now.")
        await expect(page.locator("#price")).to_have_text("Each request costs 2.50 USD.")

        await page.get_by_label("Search by title or artist").fill("closing semisonic")
        await expect(page.locator("#songs li")).to_have_count(1)
        await page.get_by_role("button", name="Request Closing Time by Semisonic Test").click()
        details = re.compile(r"Price: 2\.50 USD\. Length 0:0[56]\.")
        await expect(page.locator("#confirm-details")).to_contain_text(details)
        await expect(page.locator("#confirm-details")).to_contain_text("Would play at about")
        await save_screenshot(page, "patron-confirm-phone.png")

        await page.get_by_role("button", name="Pay 2.50 USD").click()
        await expect(page.locator("h1")).to_have_text("Fake Stripe Checkout")  # the provider's page
        await expect(page.locator("#amount")).to_have_text("2.50 USD")
        await save_screenshot(page, "patron-fake-stripe-phone.png")
        await others_pay_first(p, songs)
        await page.locator("#pay").click()

        await page.wait_for_url(f"{p.hub.url}/v/tavern?request=*")
        await expect(page.locator("#mine-song")).to_have_text("Closing Time — Semisonic Test")
        await expect(page.locator("#queue li.mine")).to_contain_text("Closing Time")
        seen = await statuses_until_played(page)
        await save_screenshot(page, "patron-played-phone.png")
        positions = [int(t.rsplit(" ", 1)[1]) for t in seen if t.startswith("In the queue: number")]
        # It moved up as the box played the others, then played, then was marked played.
        assert len(positions) >= 2 and positions == sorted(positions, reverse=True) and positions[-1] == 1, seen
        assert seen[-2:] == ["Playing now!", "Played. Thank you!"], seen
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        watch.assert_clean()
    assert box.proc.poll() is None
    played = [p for p in p.stripe.sessions.values() if p["payment_status"] == "paid"]
    assert len(played) == 1 and p.stripe.refunds == []
