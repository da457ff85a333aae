"""Two hub instances, each with its own asyncpg pool and LISTEN connection, on one PostgreSQL database.

They are two aiohttp applications on two loopback ports in this process: everything they
share goes through PostgreSQL, exactly as for two hub processes behind a load balancer.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_device_token, issue_user_token
from djamms_edge.hub.config import HubConfig, LimitsConfig, StoreConfig
from djamms_edge.hub.store.base import User
from djamms_edge.hub.store.postgres import PostgresStore

JWT_SECRET = "two-instance-test-secret-0123456789abcdef"
VENUE = "venue-pg"


@asynccontextmanager
async def serving(config: HubConfig) -> AsyncIterator[str]:
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


@dataclass
class TwoHubs:
    urls: tuple[str, str]
    http: aiohttp.ClientSession
    admin_token: str

    def device_token(self, device_id: str, venue_id: str = VENUE) -> str:
        return issue_device_token(JWT_SECRET, venue_id, device_id, time.time(), 3600)

    def url(self, i: int, path: str) -> str:
        return self.urls[i % 2] + "/api/v1" + path


def hub_config(pg_url: str) -> HubConfig:
    # Per-client request limits are per instance and not what these tests are about.
    return dataclasses.replace(
        HubConfig(), jwt_secret=JWT_SECRET, store=StoreConfig(url=pg_url),
        limits=LimitsConfig(requests_per_client=10_000),
    )


@pytest.fixture
async def two_hubs(pg_url: str) -> AsyncIterator[TwoHubs]:
    config = hub_config(pg_url)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(serving(config))
        second = await stack.enter_async_context(serving(config))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        admin = User("user-admin", "admin@example.com", None, "admin")
        hubs = TwoHubs((first, second), http, issue_user_token(JWT_SECRET, admin, time.time(), 3600))
        async with http.post(hubs.url(0, "/venues"), json={"venueId": VENUE, "name": "PG venue"},
                             headers={"Authorization": f"Bearer {hubs.admin_token}"}) as resp:
            assert resp.status == 201, await resp.text()
        yield hubs
