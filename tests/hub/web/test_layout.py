"""The shared web layout: security and cache headers on every response, and a page in real chromium."""

from __future__ import annotations

import re

import pytest

from djamms_edge.hub.web import CSP
from tests.browser import PageWatch, check_layout, chromium_page, save_screenshot
from tests.hub.conftest import Hub


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the layout does not depend on the store


async def test_every_response_carries_the_strict_policy(hub: Hub) -> None:
    venue = await hub.venue("layout-bar")
    for path in (f"/v/{venue}", "/v/nowhere", "/healthz", "/api/v1/venues/x/queue", "/static/style.css"):
        async with hub.http.get(hub.url + path) as resp:
            assert resp.headers["Content-Security-Policy"] == CSP, path
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
            assert resp.headers["X-Frame-Options"] == "DENY", path
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP


async def test_pages_are_html_and_revalidated_static_files_cached_by_version(hub: Hub) -> None:
    venue = await hub.venue("layout-bar")
    async with hub.http.get(f"{hub.url}/v/{venue}", headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert resp.headers["Cache-Control"] == "no-cache"
        assert resp.headers["Content-Encoding"] == "gzip"  # bar Wi-Fi: the page travels compressed
        html = await resp.text()
    assert "<script>" not in html and "style=" not in html  # nothing inline for the policy to refuse
    css = re.search(r'href="(/static/style\.css\?v=[0-9a-f]{12})"', html)
    js = re.search(r'src="(/static/djamms\.js\?v=[0-9a-f]{12})"', html)
    assert css and js, html
    for url in (css.group(1), js.group(1)):
        async with hub.http.get(hub.url + url, headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert resp.headers["Content-Encoding"] == "gzip"
            etag = resp.headers["ETag"]
        async with hub.http.get(hub.url + url, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304  # a phone revalidating sends no body back
    async with hub.http.get(hub.url + "/static/style.css?v=old") as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-cache"  # an old version's URL gets today's file, revalidated


@pytest.mark.parametrize("path", ["/static/../pyproject.toml", "/static/%2e%2e/app.py", "/static/nope.css",
                                  "/static/", "/v/" + "x" * 300, "/v/bad%00id", "/v/..%2f", "/v/bad%20id/qr.svg",
                                  "/v/nowhere/qr.png", "/v/layout-bar/qr.gif", "/v/nowhere/poster",
                                  "/v/bad%20id/poster"])
async def test_hostile_page_paths_are_4xx(hub: Hub, path: str) -> None:
    async with hub.http.get(hub.url + path) as resp:
        assert 400 <= resp.status < 500, (path, resp.status)


async def test_unknown_venue_is_a_page_not_a_stack_trace(hub: Hub) -> None:
    async with hub.http.get(f"{hub.url}/v/no-such-bar") as resp:
        assert resp.status == 404
        assert resp.content_type == "text/html"
        assert "No such venue" in await resp.text()


async def test_layout_in_chromium_on_a_phone(hub: Hub) -> None:
    await hub.store.create_venue("layout-bar", "The Layout Arms & <Co>", 0)
    async with chromium_page() as page:
        watch = PageWatch(page, hub.url)
        await page.goto(f"{hub.url}/v/layout-bar")
        assert await page.locator(".brand").text_content() == "The Layout Arms & <Co>"  # escaped, shown as text
        await check_layout(page)
        await page.keyboard.press("Enter")  # the skip link moves focus to the content
        assert await page.evaluate("document.activeElement.id") == "main"
        # The shared helper is loaded and shows messages in the live region.
        await page.evaluate("djamms.showError('Payment failed: card declined')")
        alert = page.get_by_role("alert")
        assert await alert.text_content() == "Payment failed: card declined"
        await save_screenshot(page, "hub-layout-phone.png")
        await page.emulate_media(color_scheme="dark")
        await save_screenshot(page, "hub-layout-phone-dark.png")
        watch.assert_clean()
