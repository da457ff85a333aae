"""The served OpenAPI document covers every route; the CLI serves, refuses bad config, prints device tokens."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import jwt
import pytest

from djamms_edge.hub.app import create_app
from djamms_edge.hub.openapi import DOCUMENT
from djamms_edge.hub.store import store_from_url
from tests.hub.conftest import SECRET, Hub, hub_config


async def test_openapi_is_served_and_lists_every_route(hub: Hub, tmp_path: Path) -> None:
    status, served = await hub.call("GET", "/api/v1/openapi.json")
    assert status == 200 and served == DOCUMENT
    app = create_app(hub_config(), store_from_url(f"sqlite:///{tmp_path / 'x.db'}", retain_changes=10))
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.resource is not None
              and r.method != "HEAD"}
    documented = {(method, path) for path, ops in DOCUMENT["paths"].items() for method in ops}
    # aiohttp spells the player action as a regex; the document as a parameter.
    routes = {(m, p.replace("{action:register|heartbeat|release}", "{action}")) for m, p in routes}
    assert routes == documented


def _config(tmp_path: Path, secret: str = SECRET) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[hub]\njwt_secret = "{secret}"\n[hub.store]\nurl = "sqlite:///{tmp_path / "hub.db"}"\n')
    return path


def _hub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "djamms_edge.hub.cli", *args], capture_output=True, text=True,
                          timeout=60, env=environment, check=False)


def test_serve_refuses_to_start_without_a_jwt_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[hub]\nport = 8700\n")
    result = _hub("serve", "--config", str(path))
    assert result.returncode == 2
    assert "hub.jwt_secret: required" in result.stderr


def test_short_secret_from_the_environment_is_refused(tmp_path: Path) -> None:
    result = _hub("serve", "--config", str(_config(tmp_path)), env={"DJAMMS_JWT_SECRET": "short"})
    assert result.returncode == 2
    assert "at least 32 bytes" in result.stderr and "short" not in result.stderr.replace("shorter", "")


def test_device_token_names_venue_and_device(tmp_path: Path) -> None:
    result = _hub("device-token", "--config", str(_config(tmp_path)), "--venue", "bar-1", "--device", "box-7")
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert (claims["role"], claims["venueId"], claims["deviceId"]) == ("device", "bar-1", "box-7")
    bad = _hub("device-token", "--config", str(_config(tmp_path)), "--venue", "bar 1;", "--device", "x")
    assert bad.returncode == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_runs_the_seeded_demo_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = _config(tmp_path)
    seeded = await asyncio.to_thread(_hub, "seed-demo", "--config", str(config), "--venue", "demo-venue")
    assert seeded.returncode == 0, seeded.stderr
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "djamms_edge.hub.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
        "--port", str(port), stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/venues/demo-venue/queue") as resp:
                        queue = await resp.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("hub did not come up")
        assert [e["title"] for e in queue["queue"]][:1] == ["Never Gonna Give You Up"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def test_serve_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _hub("serve", "--config", str(_config(tmp_path)), "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config_host", "host_arg"),
    [("127.0.0.1", "127.0.0.1"),  # --port 0 over a configured port that is taken
     ("192.0.2.1", "")],  # --host "" (every interface) over a configured address this box does not have
)
async def test_serve_port_0_and_empty_host_are_honoured(tmp_path: Path, config_host: str, host_arg: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = tmp_path / "config.toml"
        config.write_text(f'[hub]\njwt_secret = "{SECRET}"\nhost = "{config_host}"\nport = {taken.getsockname()[1]}\n'
                          f'[hub.store]\nurl = "sqlite:///{tmp_path / "hub.db"}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "djamms_edge.hub.cli", "serve", "--config", str(config), "--host", host_arg,
            "--port", "0", stderr=asyncio.subprocess.PIPE, start_new_session=True, env=env,
        )
        try:
            assert proc.stderr is not None
            line = ""
            while "hub listening:" not in line:
                raw = await asyncio.wait_for(proc.stderr.readline(), timeout=30)
                assert raw, "hub exited before listening"
                line = raw.decode()
            port = int(line.rsplit(":", 1)[1])
            assert port not in (0, taken.getsockname()[1])
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert (resp.status, await resp.json()) == (200, {"ok": True})
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
