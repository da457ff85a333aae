"""Headless Debian chromium driven by playwright (its own driver, never its browser download)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, ViewportSize, async_playwright
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
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
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
