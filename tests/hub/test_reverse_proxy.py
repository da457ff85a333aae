"""The reverse proxy of docs/hub-deploy.md, exactly as documented, in front of a real hub (issue 13, item 1).

The nginx block is read from the document itself, so what the engineer on call copies is what is tested; only
the listen line (no TLS certificate here), the hub's port and the log's path are changed. nginx runs as a real process
(Debian's nginx-light) with an access log, as a production nginx has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.hub.served import hub_config_file, serving

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "hub-deploy.md"
HUB_SETTINGS = ("[hub.limits]\ntrust_forwarded_for = true\nrequests_per_client = 3\n"
                "[hub.connections]\nmax_per_address = 0\n")  # what the document says to set behind a proxy
VENUE = "proxied-venue"
DEVICE = "proxied-box"

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # /usr/sbin is not on every user's PATH


def documented_nginx_block() -> str:
    """The nginx configuration shown under "Behind a reverse proxy"."""
    section = DEPLOY_DOC.read_text().split("## Behind a reverse proxy", 1)[1]
    match = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert match, "docs/hub-deploy.md shows no nginx block under 'Behind a reverse proxy'"
    return match.group(1)


def nginx_config(block: str, workdir: Path, port: int, hub_port: int) -> str:
    served = block.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    assert served != block, "the documented block no longer listens with 'listen 443 ssl http2;'"
    served = served.replace("http://127.0.0.1:8700", f"http://127.0.0.1:{hub_port}")
    served = served.replace("/var/log/nginx/access.log", str(workdir / "access.log"))
    temp = "\n".join(f"    {kind}_temp_path {workdir / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                              "scgi"))
    return (f"daemon off;\nmaster_process off;\npid {workdir / 'nginx.pid'};\nerror_log {workdir / 'error.log'} info;\n"
            f"events {{ worker_connections 1024; }}\n"
            f"http {{\n    access_log {workdir / 'access.log'};\n{temp}\n{served}\n}}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proxied:
    url: str  # the proxy's
    token: str  # the venue's box
    access_log: Path


async def start_nginx(workdir: Path, hub_port: int) -> tuple[asyncio.subprocess.Process, int]:
    """nginx on a free port (another, if one was taken meanwhile), once it answers."""
    for _ in range(3):
        port = free_port()
        config = workdir / "nginx.conf"
        config.write_text(nginx_config(documented_nginx_block(), workdir, port, hub_port))
        proc = await asyncio.create_subprocess_exec(NGINX, "-p", str(workdir), "-c", str(config),
                                                    stderr=asyncio.subprocess.PIPE)
        for _ in range(100):
            if proc.returncode is not None:
                break
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return proc, port
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        error = (workdir / "error.log").read_text() if (workdir / "error.log").exists() else ""
        if "Address already in use" not in error:
            raise AssertionError(f"nginx did not start:\n{error}")
    raise AssertionError("nginx found no free port in 3 tries")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert Path(NGINX).exists(), "nginx missing: scripts/install-system-deps.sh --with-postgres installs nginx-light"
    path = tmp_path_factory.mktemp("proxy")
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (path / kind).mkdir()
    return path


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
        proc, port = await start_nginx(workdir, int(hub.url.rsplit(":", 1)[1]))
        try:
            yield Proxied(f"http://127.0.0.1:{port}", token, workdir / "access.log")
        finally:
            proc.terminate()
            await proc.wait()


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
