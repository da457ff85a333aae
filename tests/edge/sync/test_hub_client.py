"""HubClient against a hub that misbehaves (a tiny aiohttp server on loopback): every bad answer becomes
HubUnavailable (retry later) or HubRefused (stop asking), never a crash."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from djamms_edge.edge.sync.errors import HubRefused, HubUnavailable, StaleEpoch
from djamms_edge.edge.sync.hub_client import HubClient
from tests.ports import reserved_port


def answer(status: int, body: str, content_type: str = "application/json") -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


MakeClient = Callable[[web.Application], Awaitable[HubClient]]


@pytest.fixture
async def client_for() -> AsyncIterator[MakeClient]:
    servers: list[TestServer] = []
    clients: list[HubClient] = []

    async def make(app: web.Application) -> HubClient:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        client = HubClient(str(server.make_url("")), "token", "venue-1", "box-a", timeout_s=2)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    for server in servers:
        await server.close()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, '{"status": "registered"}'),  # no epoch
        (200, '{"status": "conflict", "currentMaster": null}'),
        (200, "<html>proxy error</html>"),
        (200, "[1, 2]"),
        (502, '{"error": "bad gateway"}'),
        (500, ""),
    ],
    ids=["no epoch", "conflict without master", "html", "not an object", "502", "empty 500"],
)
async def test_unusable_answers_are_unavailable(client_for: MakeClient, status: int, body: str) -> None:
    client = await client_for(answer(status, body))
    with pytest.raises(HubUnavailable):
        await client.register()


async def test_a_refusal_is_not_retried_as_an_outage(client_for: MakeClient) -> None:
    client = await client_for(answer(401, '{"error": "invalid token", "field": "Authorization"}'))
    with pytest.raises(HubRefused) as caught:
        await client.heartbeat()
    assert caught.value.status == 401 and caught.value.code == "Authorization"


async def test_a_stale_epoch_names_the_current_one(client_for: MakeClient) -> None:
    body = '{"error": "stale_epoch", "field": "epoch", "message": "not the master", "currentEpoch": 7}'
    client = await client_for(answer(409, body))
    with pytest.raises(StaleEpoch) as caught:
        await client.now_playing(3, "e-1", None, key="np:1")
    assert caught.value.current_epoch == 7


async def test_garbage_in_the_changes_answer_is_unavailable(client_for: MakeClient) -> None:
    client = await client_for(answer(200, '{"version": 3, "messages": [{"type": "teleport"}]}'))
    with pytest.raises(HubUnavailable):
        await client.changes(0)


async def test_nothing_listening_is_unavailable() -> None:
    with reserved_port() as nothing_listens:
        client = HubClient(f"http://127.0.0.1:{nothing_listens}", "token", "venue-1", "box-a", timeout_s=1)
        try:
            with pytest.raises(HubUnavailable):
                await client.register()
        finally:
            await client.close()
