"""The status page in a real headless chromium, on a phone-sized screen, fed by the fake source."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from playwright.async_api import Page, expect

from djamms_edge.edge.status.model import HubLink
from tests.browser import chromium_page, screenshot_path
from tests.edge.status.conftest import ADMIN_TOKEN, Running


async def _bar_percent(page: Page) -> float:
    return float(await page.locator("#progress").evaluate("el => parseFloat(el.style.width) || 0"))


async def test_page_shows_now_playing_and_follows_changes_without_reload(running: Running) -> None:
    async with chromium_page() as page:
        await page.goto(running.url("/"))
        await expect(page.locator("#title")).to_have_text("First Song")
        await expect(page.locator("#artist")).to_have_text("The Testers")
        await expect(page.locator("#role")).to_have_text("master")
        await expect(page.locator("#live")).to_have_text("live")
        await expect(page.locator("#priority li")).to_have_text(["Paid Request — Somebody for patron-7"])
        await expect(page.locator("#main li")).to_have_count(2)
        await page.evaluate("window.loadedOnce = true")

        # Position 42 s of a 1.5-200.25 s window is ~20 %, and the bar moves on its own.
        first = await _bar_percent(page)
        assert 19.0 < first < 25.0
        await asyncio.sleep(1.2)
        assert await _bar_percent(page) > first

        running.source.play("Second Song", artist="Band B", position=101.0)
        await expect(page.locator("#title")).to_have_text("Second Song")
        await expect(page.locator("#artist")).to_have_text("Band B")
        assert 49.0 < await _bar_percent(page) < 55.0

        running.source.update(role="offline", hub=HubLink(connected=False, since=time.time(), detail="timed out"))
        await expect(page.locator("#role")).to_have_text("offline")
        await expect(page.locator("#hub")).to_have_text("hub offline")
        running.source.update(hub=HubLink(connected=False, since=time.time() - 200, detail="timed out"))
        await expect(page.locator("#hub")).to_have_text("hub offline · 3 min")  # how long, for the person on call
        await expect(page.locator("#cache")).to_have_text("1.5 GB of 8.0 GB, 120 files")
        await expect(page.locator("#problems-box")).to_be_hidden()  # a healthy box shows no problems section
        problem = ("the device token is for box 'box-a' but this box is 'box-1', so the hub refuses it: issue a "
                   "token for this box with `djamms-hub device-token --venue venue-1 --device box-1`.")
        running.source.update(problems=(problem,), hub=HubLink(connected=False, since=time.time(), refused=True,
                                                                detail=f"the hub refuses this box: {problem}"))
        await expect(page.locator("#problems li")).to_have_text([problem])
        await expect(page.locator("#problems-box")).to_be_visible()
        await expect(page.locator("#hub")).to_have_text("hub refuses this box")  # not "offline": a token problem
        running.source.update(cache=None)
        await expect(page.locator("#cache")).to_have_text("not in use")

        assert await page.evaluate("window.loadedOnce") is True  # updated in place, never reloaded
        # Phone-friendly: nothing sticks out sideways on a 390 px screen.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await page.screenshot(path=str(screenshot_path("status-page-phone.png")), full_page=True)
        await page.set_viewport_size({"width": 1280, "height": 800})
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await page.screenshot(path=str(screenshot_path("status-page-desktop.png")), full_page=True)

        running.source.update(now_playing=None, problems=())
        await expect(page.locator("#problems-box")).to_be_hidden()
        await expect(page.locator("#idle")).to_be_visible()
        await expect(page.locator("#track")).to_be_hidden()


async def test_controls_from_the_page_need_the_token(running: Running) -> None:
    async with chromium_page() as page:
        await page.goto(running.url("/"))
        await expect(page.locator("#title")).to_have_text("First Song")

        await page.fill("#token", "not-the-token-at-all")
        await page.click("#pause")
        await expect(page.locator("#control-result")).to_have_text("pause: missing or wrong admin token")
        assert running.source.calls == []

        await page.fill("#token", ADMIN_TOKEN)
        await page.click("#pause")
        await expect(page.locator("#paused")).to_be_visible()
        await expect(page.locator("#resume")).to_be_visible()
        assert running.source.calls == [("pause", None)]
        # Paused: the bar stands still.
        still = await _bar_percent(page)
        await asyncio.sleep(0.8)
        assert await _bar_percent(page) == still

        await page.click("#skip")
        await expect(page.locator("#title")).to_have_text("Paid Request")
        await expect(page.locator("#priority li")).to_have_count(0)

        await page.reload()  # the token is remembered on this device
        assert await page.input_value("#token") == ADMIN_TOKEN


async def test_titles_are_text_never_markup(running: Running) -> None:
    hostile = '<img src=x onerror="window.owned=1">Song'
    playing = running.source.snapshot().now_playing
    assert playing is not None
    running.source.update(now_playing=dataclasses.replace(playing, title=hostile))
    async with chromium_page() as page:
        await page.goto(running.url("/"))
        await expect(page.locator("#title")).to_have_text(hostile)
        assert await page.locator("#title img").count() == 0
        assert await page.evaluate("window.owned") is None
