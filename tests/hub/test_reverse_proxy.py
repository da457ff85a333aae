"""The reverse proxy of docs/hub-deploy.md, exactly as documented, in front of a real hub (issue 13, item 1).

nginx (Debian's nginx-light, tests/hub/reverse_proxy.py) runs as a real process with an access log, as a
production nginx has one; the hub is configured as the document says.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.hub.reverse_proxy import start_nginx
from tests.hub.served import hub_config_file, serving

HUB_SETTINGS = ("[hub.limits]\ntrust_forwarded_for = true\nrequests_per_client = 3\n"
                "[hub.connections]\nmax_per_address = 0\n")  # what the document says to set behind a proxy
VENUE = "proxied-venue"
DEVICE = "proxied-box"


@dataclass
class Proxied:
    url: str  # the proxy's
    token: str  # the venue's box
    access_log: Path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxy")


@pytest.fixture(scope="module")
def seeded(workdir: Path) -> Iterator[tuple[Path, str]]:
    config = hub_config_file(workdir, HUB_SETTINGS)
    seeded = subprocess.run([sys.executable, "-m", "djamms_edge.hub.cli", "seed-demo", "--config", str(config),
                             "--venue", VENUE, "--device", DEVICE], capture_output=True, text=True, check=True,
                            timeout=60)
    yield config, json.loads(seeded.stdout)["deviceToken"]


@pytest.fixture
async def proxied(workdir: Path, seeded: tuple[Path, str]) -> AsyncIterator[Proxied]:
    config, token = seeded
    async with serving(config) as hub:
        proc, port = await asyncio.to_thread(start_nginx, workdir, int(hub.url.rsplit(":", 1)[1]))
        try:
            yield Proxied(f"http://127.0.0.1:{port}", token, workdir / "access.log")
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait)


def from_address(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)),
                                 timeout=aiohttp.ClientTimeout(total=10))


async def paid_request(http: aiohttp.ClientSession, url: str, forged: str | None = None) -> int:
    headers = {"X-Forwarded-For": forged} if forged else {}
    body = {"song": {"videoId": "dQw4w9WgXcQ", "title": "Proxied", "artist": f"artist-{uuid.uuid4().hex[:8]}",
                     "duration": 200}, "paymentId": f"pi-{uuid.uuid4().hex}", "requesterId": "patron"}
    async with http.post(f"{url}/api/v1/venues/{VENUE}/requests", json=body, headers=headers) as resp:
        return resp.status


async def test_each_patron_is_limited_by_their_own_address_and_cannot_forge_another(proxied: Proxied) -> None:
    async with from_address("127.0.0.2") as patron, from_address("127.0.0.3") as neighbour:
        # Every request claims another address in X-Forwarded-For: the proxy must overwrite it, or each one
        # would count against an address of the patron's choosing and the limit would never bite.
        answers = [await paid_request(patron, proxied.url, forged=f"10.0.0.{n}") for n in range(4)]
        assert answers == [201, 201, 201, 429]  # hub.limits.requests_per_client = 3
        assert await paid_request(neighbour, proxied.url) == 201  # someone else at the bar is not affected


async def test_the_change_feed_works_through_the_proxy_and_its_ticket_is_not_logged(proxied: Proxied) -> None:
    bearer = {"Authorization": f"Bearer {proxied.token}"}
    feed = f"{proxied.url}/api/v1/venues/{VENUE}/feed"
    async with from_address("127.0.0.4") as http:
        async with http.post(feed + "/ticket", headers=bearer) as resp:
            assert resp.status == 200
            ticket = (await resp.json())["ticket"]
        async with http.ws_connect(f"{feed}?ticket={ticket}") as ws:  # as a browser opens it
            while (await ws.receive_json(timeout=10))["type"] != "ready":
                pass
            assert await paid_request(http, proxied.url) == 201
            pushed = await ws.receive_json(timeout=10)  # a change, pushed live through the proxy
            assert pushed["type"] != "ready"
    logged = proxied.access_log.read_text()
    assert f"/api/v1/venues/{VENUE}/feed/ticket" in logged  # the log is on: the ticket's request is there
    assert ticket not in logged  # a ticket opens the venue's feed for 60 s: it must not sit in a log file
