"""A real status server on an ephemeral loopback port, fed by the fake source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from djamms_edge.edge.status.config import StatusConfig
from djamms_edge.edge.status.fake import FakeStatusSource
from djamms_edge.edge.status.server import StatusServer, start_status_server

ADMIN_TOKEN = "test-admin-token-0123456789"


@dataclass
class Running:
    server: StatusServer
    source: FakeStatusSource
    http: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return self.server.url + path


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    source = FakeStatusSource()
    server = await start_status_server(StatusConfig(port=0, admin_token=ADMIN_TOKEN, max_event_clients=3), source)
    async with aiohttp.ClientSession() as http:
        yield Running(server, source, http)
    await server.close()
