"""A browser page on another origin calls the hub (issue 13, item 7): allowed origins in config get CORS
answers (preflight included) and follow the feed with a ticket in the WebSocket URL; others are refused."""

from __future__ import annotations

import dataclasses
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from djamms_edge.hub.config import CorsConfig
from tests.browser import chromium_page, save_screenshot
from tests.hub.conftest import HubFactory, hub_config

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Another origin</title></head>
<body><p id="out">waiting</p><script>
const hub = %(hub)s, token = %(token)s, venue = %(venue)s, out = document.getElementById("out");
(async () => {
  try {
    const auth = {Authorization: "Bearer " + token};
    const me = await (await fetch(hub + "/api/v1/me", {headers: auth})).json();
    const ticket = await (await fetch(hub + "/api/v1/venues/" + venue + "/feed/ticket",
                                      {method: "POST", headers: auth})).json();
    const ws = new WebSocket(hub.replace("http", "ws") + "/api/v1/venues/" + venue + "/feed?since=0&ticket="
                             + encodeURIComponent(ticket.ticket));
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "ready") return;
      out.textContent = "ok " + me.role + ", feed ready at " + message.version;
      ws.close();
    };
    ws.onerror = () => { out.textContent = "feed refused"; };
  } catch (error) { out.textContent = "blocked: " + error; }
})();
</script></body></html>"""


@pytest.fixture
def backend() -> str:
    return "sqlite"  # CORS does not depend on the store


async def test_a_page_on_an_allowed_origin_calls_the_api_and_follows_the_feed(start_hub: HubFactory) -> None:
    page_html = {"text": ""}

    async def serve_page(request: web.Request) -> web.Response:
        return web.Response(text=page_html["text"], content_type="text/html")

    site = web.Application()
    site.router.add_get("/", serve_page)
    allowed_site = TestServer(site, host="127.0.0.1", port=0)
    other_site = TestServer(site, host="127.0.0.2", port=0)
    await allowed_site.start_server()
    await other_site.start_server()
    allowed = f"http://127.0.0.1:{allowed_site.port}"
    try:
        config = dataclasses.replace(hub_config(), cors=CorsConfig(allowed_origins=(allowed,)))
        async with start_hub(config) as hub:
            venue = await hub.venue()
            page_html["text"] = PAGE % {"hub": json.dumps(hub.url), "venue": json.dumps(venue),
                                        "token": json.dumps(hub.user_token("staff", venue))}
            # The preflight a browser sends first, as the hub answers it.
            preflight = {"Origin": allowed, "Access-Control-Request-Method": "GET",
                         "Access-Control-Request-Headers": "authorization"}
            async with hub.http.options(hub.url + "/api/v1/me", headers=preflight) as resp:
                assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == allowed
                assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
            async with hub.http.options(hub.url + "/api/v1/me",
                                        headers={**preflight, "Origin": "https://evil.example"}) as resp:
                assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers

            async with chromium_page() as page:
                await page.goto(allowed + "/")
                await page.wait_for_function("document.getElementById('out').textContent !== 'waiting'")
                assert await page.text_content("#out") == "ok staff, feed ready at 0"
                await save_screenshot(page, "hub-cross-origin-allowed.png")
                await page.goto(f"http://127.0.0.2:{other_site.port}/")  # an origin the config does not name
                await page.wait_for_function("document.getElementById('out').textContent !== 'waiting'")
                assert (await page.text_content("#out") or "").startswith("blocked: TypeError")
    finally:
        await allowed_site.close()
        await other_site.close()


async def test_a_feed_ticket_is_for_one_venue_and_no_bearer_token(start_hub: HubFactory) -> None:
    async with start_hub() as hub:
        venue, other = await hub.venue(), await hub.venue()
        status, body = await hub.call("POST", f"/api/v1/venues/{venue}/feed/ticket", headers=hub.staff(venue))
        assert status == 200
        ticket = body["ticket"]
        ws = await hub.http.ws_connect(f"{hub.url}/api/v1/venues/{venue}/feed?since=0&ticket={ticket}")
        assert (await ws.receive_json())["type"] == "ready"
        await ws.close()
        async with hub.http.get(f"{hub.url}/api/v1/venues/{other}/feed?ticket={ticket}") as resp:
            assert resp.status == 401  # another venue's feed
        async with hub.http.get(f"{hub.url}/api/v1/me", headers={"Authorization": f"Bearer {ticket}"}) as resp:
            assert resp.status == 401  # a ticket is not a token
        assert (await hub.call("POST", f"/api/v1/venues/{venue}/feed/ticket"))[0] == 401
