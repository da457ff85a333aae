"""Headless Debian chromium driven by playwright (its own driver, never its browser download).

Shared by the edge's status page tests and the hub's page tests. For hub pages, ``PageWatch`` collects
what a user would never see but a page must not do (script errors, CSP violations, failed loads), and
``check_layout`` asserts what every page built on hub/web/templates/base.html promises.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, Response, ViewportSize, async_playwright
from playwright.sync_api import Page as SyncPage
from playwright.sync_api import sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in CI, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm; chromium then crashes mid-test
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PHONE: ViewportSize = {"width": 390, "height": 844}  # an ordinary phone held upright


def _chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps.sh --with-postgres (Debian's chromium)")
    return str(CHROMIUM)


@asynccontextmanager
async def chromium_page(viewport: ViewportSize = PHONE) -> AsyncIterator[Page]:
    """For async tests (a server on the test's own loop)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport=viewport)
            yield page
        finally:
            await browser.close()


@contextmanager
def chromium_page_sync(viewport: ViewportSize = PHONE) -> Iterator[SyncPage]:
    """For plain tests driving another process (the daemon), where no event loop runs."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport=viewport)
        finally:
            browser.close()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


class PageWatch:
    """Console errors, uncaught exceptions, CSP violations and failed same-origin loads of one page."""

    def __init__(self, page: Page, origin: str) -> None:
        self.problems: list[str] = []
        self.origin = origin
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        # CSP violations are reported here too ("Refused to ..."); another site's trouble (a payment
        # provider's page, its favicon) is not this page's.
        if message.type == "error" and message.location.get("url", "").startswith(self.origin):
            self.problems.append(f"console: {message.text} ({message.location.get('url')})")

    def _response(self, response: Response) -> None:
        if response.url.startswith(self.origin) and response.status >= 400 and response.request.resource_type in (
                "script", "stylesheet", "image", "font"):
            self.problems.append(f"{response.status} for {response.url}")

    def assert_clean(self, *, allow: tuple[str, ...] = ()) -> None:
        """No problem except those containing one of ``allow`` (an expected 4xx an API test provokes)."""
        left = [p for p in self.problems if not any(a in p for a in allow)]
        assert not left, left


async def check_layout(page: Page) -> None:
    """The shared layout's promises: a skip link first in tab order, one main landmark, a title, no
    sideways scrolling on the current viewport."""
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert await page.title()
    assert await page.locator("main#main").count() == 1
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.classList.contains('skip-link')")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def save_screenshot(page: Page, name: str) -> None:
    """A full-page PNG in test-artifacts/ (look at it: tests assert behaviour, eyes judge looks)."""
    await page.screenshot(path=str(screenshot_path(name)), full_page=True)
