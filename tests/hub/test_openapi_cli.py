"""The served OpenAPI document covers every route; the CLI serves, refuses bad config, prints device tokens."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import jwt
from aiohttp import web

from djamms_edge.hub.app import create_app
from djamms_edge.hub.openapi import DOCUMENT
from djamms_edge.hub.store import store_from_url
from tests.hub.conftest import SECRET, Hub, hub_config
from tests.hub.served import hub_command, hub_config_file, serving


@asynccontextmanager
async def _served(config: Path, host: str) -> AsyncIterator[str]:
    async with serving(config, host) as hub:
        yield hub.url


async def test_openapi_is_served_and_lists_every_route(hub: Hub, tmp_path: Path) -> None:
    status, served = await hub.call("GET", "/api/v1/openapi.json")
    assert status == 200 and served == DOCUMENT
    app = create_app(hub_config(), store_from_url(f"sqlite:///{tmp_path / 'x.db'}", retain_changes=10))
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.resource is not None
              and r.method != "HEAD" and not _web_page(r)}
    documented = {(method, path) for path, ops in DOCUMENT["paths"].items() for method in ops}
    # aiohttp spells the player action as a regex; the document as a parameter.
    routes = {(m, p.replace("{action:register|heartbeat|release}", "{action}")) for m, p in routes}
    assert routes == documented


def _web_page(route: web.AbstractRoute) -> bool:
    """HTML pages and their static files (hub/web/) are for browsers, not in the API document."""
    module = getattr(route.handler, "__module__", "")
    return route.resource is not None and (route.resource.canonical.startswith("/static")
                                           or module.startswith("djamms_edge.hub.web"))


def _config(tmp_path: Path, secret: str = SECRET) -> Path:
    return hub_config_file(tmp_path, secret=secret)


def test_serve_refuses_to_start_without_a_jwt_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[hub]\nport = 8700\n")
    result = hub_command("serve", "--config", str(path))
    assert result.returncode == 2
    assert "hub.jwt_secret: required" in result.stderr


def test_short_secret_from_the_environment_is_refused(tmp_path: Path) -> None:
    result = hub_command("serve", "--config", str(_config(tmp_path)), env={"DJAMMS_JWT_SECRET": "short"})
    assert result.returncode == 2
    assert "at least 32 bytes" in result.stderr and "short" not in result.stderr.replace("shorter", "")


def test_device_token_names_venue_and_device(tmp_path: Path) -> None:
    unknown = hub_command("device-token", "--config", str(_config(tmp_path)), "--venue", "bar-1", "--device", "box-7")
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "djamms-hub: unknown venue 'bar-1'")
    created = hub_command("venue", "create", "bar-1", "--name", "Bar One", "--config", str(_config(tmp_path)))
    assert created.returncode == 0, created.stderr
    result = hub_command("device-token", "--config", str(_config(tmp_path)), "--venue", "bar-1", "--device", "box-7")
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert (claims["role"], claims["venueId"], claims["deviceId"]) == ("device", "bar-1", "box-7")
    bad = hub_command("device-token", "--config", str(_config(tmp_path)), "--venue", "bar 1;", "--device", "x")
    assert bad.returncode == 2


async def test_serve_runs_the_seeded_demo_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = _config(tmp_path)
    seeded = await asyncio.to_thread(hub_command, "seed-demo", "--config", str(config), "--venue", "demo-venue")
    assert seeded.returncode == 0, seeded.stderr
    async with _served(config, "127.0.0.1") as url, aiohttp.ClientSession() as http, \
            http.get(f"{url}/api/v1/venues/demo-venue/queue") as resp:
        queue = await resp.json()
    assert [e["title"] for e in queue["queue"]][:1] == ["Never Gonna Give You Up"]


async def test_serve_runs_on_uvloop_and_says_so(tmp_path: Path) -> None:
    # uvloop is a dependency for speed (issue 14); if it ever fails to import, the hub still serves, on asyncio's
    # loop, and the log must say so. Here it is installed: the hub's own process has its extension mapped.
    async with serving(_config(tmp_path)) as hub:
        maps = await asyncio.to_thread(Path(f"/proc/{hub.pid}/maps").read_text)
    assert any("serving on uvloop" in line for line in hub.log)
    assert "/uvloop/loop." in maps


def test_serve_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = hub_command("serve", "--config", str(_config(tmp_path)), "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def _config_listening_on(tmp_path: Path, host: str, port: int) -> Path:
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("[hub]\n", f'[hub]\nhost = "{host}"\nport = {port}\n', 1))
    return path


async def test_serve_port_0_is_honoured(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the configured port is taken: only --port 0 lets the hub start
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = _config_listening_on(tmp_path, "127.0.0.1", taken.getsockname()[1])
        async with _served(config, "127.0.0.1") as url:
            assert url.startswith("http://127.0.0.1:") and not url.endswith((":0", f":{taken.getsockname()[1]}"))
            async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as resp:
                assert (resp.status, await resp.json()) == (200, {"ok": True, "store": "ok"})


async def test_serve_empty_host_listens_everywhere(tmp_path: Path) -> None:
    # The configured address is not this box's (TEST-NET-1): only --host "" lets the hub start. (No request
    # here: on every interface, port 0 gives IPv4 and IPv6 each their own port; the log names one.)
    async with _served(_config_listening_on(tmp_path, "192.0.2.1", 8080), "") as url:
        assert url.startswith("http://0.0.0.0:")
