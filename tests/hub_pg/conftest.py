"""Two hub instances, each with its own asyncpg pool and LISTEN connection, on one PostgreSQL database.

Every two-instance test runs twice: with two real ``djamms-hub serve`` processes, and with two
aiohttp applications on two loopback ports in this process (quicker to debug). Either way all
they share goes through PostgreSQL, as for hub processes behind a load balancer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_device_token, issue_user_token
from djamms_edge.hub.config import HubConfig, LimitsConfig, RegistryConfig, StoreConfig
from djamms_edge.hub.store.base import User
from djamms_edge.hub.store.postgres import PostgresStore
from tests.ports import reserved_port

JWT_SECRET = "two-instance-test-secret-0123456789abcdef"
VENUE = "venue-pg"
STARTUP_TIMEOUT_S = 30.0  # generous: a loaded CI machine starts Python slowly


@asynccontextmanager
async def serving_in_process(config: HubConfig, _workdir: Path) -> AsyncIterator[str]:
    """A hub on its own store and an ephemeral loopback port; yields its base URL."""
    app = create_app(config, PostgresStore(config.store.url, retain_changes=config.feed.retain_changes))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serving_process(config: HubConfig, workdir: Path) -> AsyncIterator[str]:
    """``djamms-hub serve`` in its own process group; terminated, then killed, on the way out."""
    ports = ExitStack()  # held while the hub runs: it binds beside the reservation
    port = ports.enter_context(reserved_port())
    config_file = workdir / f"hub-{port}.toml"
    config_file.write_text(
        f'[hub]\njwt_secret = "{config.jwt_secret}"\nlog_level = "WARNING"\n'
        f'[hub.store]\nurl = "{config.store.url}"\n'
        f"[hub.limits]\nrequests_per_client = {config.limits.requests_per_client}\n"
        f"requests_per_patron = {config.limits.requests_per_patron}\n"
        f"[hub.registry]\nstale_after_s = {config.registry.stale_after_s}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "djamms_edge.hub.cli", "serve", "--config", str(config_file), "--host", "127.0.0.1",
        "--port", str(port), env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while True:
                assert proc.returncode is None, f"hub exited with {proc.returncode}"
                assert time.monotonic() < deadline, "hub process did not come up"
                try:
                    async with http.get(url + "/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        yield url
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        ports.close()


Serving = Callable[[HubConfig, Path], AbstractAsyncContextManager[str]]


@dataclass
class TwoHubs:
    urls: tuple[str, str]
    http: aiohttp.ClientSession
    admin_token: str

    def device_token(self, device_id: str, venue_id: str = VENUE) -> str:
        return issue_device_token(JWT_SECRET, venue_id, device_id, time.time(), 3600)

    def url(self, i: int, path: str) -> str:
        return self.urls[i % 2] + "/api/v1" + path


def hub_config(pg_url: str, requests_per_client: int = 10_000, stale_after_s: float = 120.0) -> HubConfig:
    # Per-client request limits get their own test; elsewhere they would only get in the way.
    return dataclasses.replace(
        HubConfig(), jwt_secret=JWT_SECRET, store=StoreConfig(url=pg_url),
        limits=LimitsConfig(requests_per_client=requests_per_client, requests_per_patron=100_000),
        registry=RegistryConfig(stale_after_s=stale_after_s),
    )


@asynccontextmanager
async def running_two_hubs(serving: Serving, config: HubConfig, workdir: Path) -> AsyncIterator[TwoHubs]:
    """Two hubs on ``config``'s database, the test venue created."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(serving(config, workdir))
        second = await stack.enter_async_context(serving(config, workdir))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        admin = User("user-admin", "admin@example.com", None, "admin")
        store = PostgresStore(config.store.url)  # tokens are checked against their user: the admin must exist
        await store.open()
        try:
            await store.upsert_user(admin, int(time.time() * 1000))
        finally:
            await store.close()
        hubs = TwoHubs((first, second), http, issue_user_token(JWT_SECRET, admin, time.time(), 3600))
        async with http.post(hubs.url(0, "/venues"), json={"venueId": VENUE, "name": "PG venue"},
                             headers={"Authorization": f"Bearer {hubs.admin_token}"}) as resp:
            assert resp.status == 201, await resp.text()
        yield hubs


SERVINGS = pytest.mark.parametrize("serving", [serving_process, serving_in_process], ids=["processes", "in-process"])


@pytest.fixture(params=[serving_process, serving_in_process], ids=["processes", "in-process"])
async def two_hubs(pg_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[TwoHubs]:
    async with running_two_hubs(request.param, hub_config(pg_url), tmp_path) as hubs:
        yield hubs
