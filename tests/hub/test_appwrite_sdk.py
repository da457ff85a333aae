"""The official Appwrite Python SDK against a real hub (issue 13, item 7): the reference's documented calls
work, and every error is an ``AppwriteException`` with a message, never a crash inside the SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import asyncpg
import pytest
from appwrite.client import Client
from appwrite.exception import AppwriteException
from appwrite.services.functions import Functions

from djamms_edge.hub.api_compat import KEEP_EXECUTIONS_PER_READER
from tests.hub.conftest import Hub, HubFactory
from tests.hub.test_compat import CREATE, HEARTBEAT, MAGIC_LINK, PLAYER_REGISTRY, PROCESS, PROCESS_REQUEST, REGISTER

T = TypeVar("T")
PROJECT = "68cc86c3002b27e13947"  # the reference's X-Appwrite-Project


def functions(hub: Hub, jwt: str | None = None) -> Functions:
    client = Client().set_endpoint(hub.url + "/v1").set_project(PROJECT)
    if jwt is not None:
        client.set_jwt(jwt)
    return Functions(client)


async def sdk(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The SDK blocks (requests): run it off the loop that serves the hub."""
    return await asyncio.to_thread(call, *args, **kwargs)


async def sdk_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> AppwriteException:
    with pytest.raises(AppwriteException) as raised:
        await sdk(call, *args, **kwargs)
    assert raised.value.message and isinstance(raised.value.message, str)
    return raised.value


@pytest.mark.parametrize("backend", ["sqlite"])  # the endpoint, not the store, is under test
async def test_the_reference_calls_through_the_official_sdk(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    await hub.venue("venue-123")
    anonymous = functions(hub)
    with caplog.at_level(logging.WARNING, logger="djamms_edge.hub.mailer"):
        created = await sdk(anonymous.create_execution, MAGIC_LINK, body=CREATE)
    assert (created.status.value, created.responsestatuscode) == ("completed", 200)
    assert (created.resourceid, created.resourcetype.value) == (MAGIC_LINK, "functions")
    assert created.deploymentid and created.scheduledat is None
    assert json.loads(created.responsebody) == {"success": True, "message": "Magic link sent to your email"}
    # As on Appwrite, a guest's execution is readable by nobody (a guest cannot prove to be that guest again).
    guest = await sdk_error(anonymous.get_execution, MAGIC_LINK, created.id)
    assert (guest.code, guest.type) == (401, "general_unauthorized_scope")

    secret = re.search(r"secret=([0-9a-f]{64})", caplog.text).group(1)  # type: ignore[union-attr]
    verify = json.dumps({"action": "verify", "secret": secret, "userId": "user@example.com"})
    signed_in = json.loads((await sdk(anonymous.create_execution, MAGIC_LINK, body=verify)).responsebody)
    assert set(signed_in) == {"token", "user"}

    device = functions(hub, hub.device_token("venue-123", "device-456"))  # set_jwt: X-Appwrite-JWT
    registered = json.loads((await sdk(device.create_execution, PLAYER_REGISTRY, body=REGISTER)).responsebody)
    assert registered["status"] == "registered"
    beat = await sdk(device.create_execution, PLAYER_REGISTRY, body=HEARTBEAT)
    assert json.loads(beat.responsebody)["status"] == "updated"
    again = await sdk(device.get_execution, PLAYER_REGISTRY, beat.id)
    assert again.id == beat.id and again.responsebody == beat.responsebody
    paid = json.loads((await sdk(anonymous.create_execution, PROCESS_REQUEST, body=PROCESS)).responsebody)
    assert paid == {"success": True}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_errors_are_appwrite_exceptions(hub: Hub) -> None:
    await hub.venue("venue-123")
    anonymous = functions(hub)
    unknown = await sdk_error(anonymous.create_execution, "no-such-function", body="{}")
    assert (unknown.code, unknown.type) == (404, "function_not_found") and "no-such-function" in unknown.message
    box = functions(hub, hub.device_token("venue-123", "device-456"))
    missing = await sdk_error(box.get_execution, MAGIC_LINK, "0123456789abcdef0123")
    assert (missing.code, missing.type) == (404, "execution_not_found")
    too_big = await sdk_error(anonymous.create_execution, MAGIC_LINK, body="x" * 70_000)
    assert too_big.code == 413
    not_json = await sdk_error(anonymous.create_execution, MAGIC_LINK, body="{not json")
    assert (not_json.code, not_json.type) == (400, "general_argument_invalid") and "JSON" in not_json.message

    # A missing token and a bad one get the same answer: the function fails, 401 inside the execution.
    no_token = await sdk(anonymous.create_execution, PLAYER_REGISTRY, body=REGISTER)
    bad_token = await sdk(functions(hub, "not.a.jwt").create_execution, PLAYER_REGISTRY, body=REGISTER)
    for execution in (no_token, bad_token):
        assert (execution.status.value, execution.responsestatuscode) == ("failed", 401)
        assert json.loads(execution.responsebody)["success"] is False


@pytest.fixture
async def two_hubs(start_hub: HubFactory, backend: str) -> AsyncIterator[tuple[Hub, Hub]]:
    """Two hub instances on one PostgreSQL database, one clock; on SQLite (one hub process per file) one hub."""
    async with start_hub() as first:
        if backend == "sqlite":
            yield first, first
            return
        async with start_hub(clock=first.clock) as second:
            yield first, second


async def test_an_execution_is_read_by_its_creator_from_any_instance_and_by_nobody_else(
        two_hubs: tuple[Hub, Hub]) -> None:
    a, b = two_hubs
    await a.venue("venue-123")
    registered = await sdk(functions(a, a.device_token("venue-123", "device-456")).create_execution,
                           PLAYER_REGISTRY, body=REGISTER)
    box = functions(b, b.device_token("venue-123", "device-456"))  # the same box, another token, the other hub
    again = await sdk(box.get_execution, PLAYER_REGISTRY, registered.id)
    assert (again.id, again.responsebody, again.status.value) == (registered.id, registered.responsebody, "completed")
    # Another box of the venue, its staff, an admin: Appwrite's 404 (what you may not read does not exist).
    for token in (b.device_token("venue-123", "device-789"), b.user_token("staff", "venue-123"),
                  b.user_token("admin", None)):
        hidden = await sdk_error(functions(b, token).get_execution, PLAYER_REGISTRY, registered.id)
        assert (hidden.code, hidden.type) == (404, "execution_not_found")
    for client in (functions(b), functions(b, "not.a.jwt")):
        guest = await sdk_error(client.get_execution, PLAYER_REGISTRY, registered.id)
        assert (guest.code, guest.type) == (401, "general_unauthorized_scope")
    wrong_function = await sdk_error(box.get_execution, MAGIC_LINK, registered.id)
    assert wrong_function.code == 404
    a.clock.advance(3601)  # kept an hour
    expired = await sdk_error(box.get_execution, PLAYER_REGISTRY, registered.id)
    assert (expired.code, expired.type) == (404, "execution_not_found")


async def test_an_execution_id_alone_gives_no_sign_in_token(two_hubs: tuple[Hub, Hub], backend: str,
                                                            caplog: pytest.LogCaptureFixture,
                                                            request: pytest.FixtureRequest) -> None:
    a, b = two_hubs
    await a.venue("venue-123")
    staff = a.user_token("staff", "venue-123")

    async def sign_in(jwt: str | None) -> tuple[str, str]:
        """A magic link for user@example.com verified through the SDK (as ``jwt``'s holder, or a guest)."""
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="djamms_edge.hub.mailer"):
            await sdk(functions(a).create_execution, MAGIC_LINK, body=CREATE)
        secret = re.search(r"secret=([0-9a-f]{64})", caplog.text).group(1)  # type: ignore[union-attr]
        verify = json.dumps({"action": "verify", "secret": secret, "userId": "user@example.com"})
        signed_in = await sdk(functions(a, jwt).create_execution, MAGIC_LINK, body=verify)
        return signed_in.id, json.loads(signed_in.responsebody)["token"]

    by_guest, token = await sign_in(None)
    for client in (functions(b), functions(b, staff), functions(b, b.device_token("venue-123", "device-456")),
                   functions(b, token)):  # not even the new token: a guest made it
        refused = await sdk_error(client.get_execution, MAGIC_LINK, by_guest)
        assert refused.code in (401, 404) and token not in refused.message
    # A sign-in sent by someone holding a token is theirs to read again, without the token in it.
    by_staff, second_token = await sign_in(staff)
    kept = await sdk(functions(b, staff).get_execution, MAGIC_LINK, by_staff)
    assert (kept.id, kept.status.value, kept.responsestatuscode, kept.responsebody) == (by_staff, "completed", 200, "")
    # And no token is at rest in the store.
    stored = await _stored_executions(backend, a, request)
    assert stored and not any(t in body for body in stored for t in (token, second_token))


async def _stored_executions(backend: str, hub: Hub, request: pytest.FixtureRequest) -> list[str]:
    """Every stored execution's body, read straight from the database file or server."""
    if backend == "sqlite":
        path = request.getfixturevalue("tmp_path") / "hub.db"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return [row[0] for row in conn.execute("SELECT body FROM executions")]
    conn = await asyncpg.connect(request.getfixturevalue("pg_url"))
    try:
        return [row["body"] for row in await conn.fetch("SELECT body FROM executions")]
    finally:
        await conn.close()


async def test_each_creator_keeps_its_newest_executions_only(hub: Hub) -> None:
    await hub.venue("venue-123")
    device = hub.device("venue-123", "device-456")
    ids = []
    for _ in range(KEEP_EXECUTIONS_PER_READER + 1):
        status, execution = await hub.call("POST", f"/v1/functions/{PLAYER_REGISTRY}/executions",
                                           {"body": HEARTBEAT}, device)
        assert status == 201
        ids.append(execution["$id"])
    statuses = [(await hub.call("GET", f"/v1/functions/{PLAYER_REGISTRY}/executions/{i}", headers=device))[0]
                for i in (ids[0], ids[1], ids[-1])]
    assert statuses == [404, 200, 200]  # exactly the newest 100 kept


async def test_a_revoked_token_sent_as_x_appwrite_jwt_is_refused(hub: Hub) -> None:
    """The SDK's ``set_jwt`` header is checked like a bearer token: a revoked box's token works no more."""
    await hub.venue("venue-123")
    box = functions(hub, hub.device_token("venue-123", "device-456"))
    registered = await sdk(box.create_execution, PLAYER_REGISTRY, body=REGISTER)
    status, _ = await hub.call("POST", "/api/v1/venues/venue-123/devices/device-456/revoke", {},
                               hub.staff("venue-123"))
    assert status == 200
    refused = await sdk(box.create_execution, PLAYER_REGISTRY, body=HEARTBEAT)
    assert (refused.status.value, refused.responsestatuscode) == ("failed", 401)
    gone = await sdk_error(box.get_execution, PLAYER_REGISTRY, registered.id)
    assert gone.code == 401
