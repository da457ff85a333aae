"""The official Appwrite Python SDK against a real hub (issue 13, item 7): the reference's documented calls
work, and every error is an ``AppwriteException`` with a message, never a crash inside the SDK."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from appwrite.client import Client
from appwrite.exception import AppwriteException
from appwrite.services.functions import Functions

from tests.hub.conftest import Hub
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
    again = await sdk(anonymous.get_execution, MAGIC_LINK, created.id)
    assert again.id == created.id and again.responsebody == created.responsebody

    secret = re.search(r"secret=([0-9a-f]{64})", caplog.text).group(1)  # type: ignore[union-attr]
    verify = json.dumps({"action": "verify", "secret": secret, "userId": "user@example.com"})
    signed_in = json.loads((await sdk(anonymous.create_execution, MAGIC_LINK, body=verify)).responsebody)
    assert set(signed_in) == {"token", "user"}

    device = functions(hub, hub.device_token("venue-123", "device-456"))  # set_jwt: X-Appwrite-JWT
    registered = json.loads((await sdk(device.create_execution, PLAYER_REGISTRY, body=REGISTER)).responsebody)
    assert registered["status"] == "registered"
    beat = json.loads((await sdk(device.create_execution, PLAYER_REGISTRY, body=HEARTBEAT)).responsebody)
    assert beat["status"] == "updated"
    paid = json.loads((await sdk(anonymous.create_execution, PROCESS_REQUEST, body=PROCESS)).responsebody)
    assert paid == {"success": True}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_errors_are_appwrite_exceptions(hub: Hub) -> None:
    await hub.venue("venue-123")
    anonymous = functions(hub)
    unknown = await sdk_error(anonymous.create_execution, "no-such-function", body="{}")
    assert (unknown.code, unknown.type) == (404, "function_not_found") and "no-such-function" in unknown.message
    missing = await sdk_error(anonymous.get_execution, MAGIC_LINK, "0123456789abcdef0123")
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
