"""The reference's function endpoint: ``POST /v1/functions/{functionId}/executions``.

Clients written for the reference post ``{"body": "<json string>"}`` to a function by
name or by its Appwrite ``$id`` and get an Appwrite-style execution object whose
``responseBody`` is exactly the JSON the reference documents. The work itself is
the same service call the REST API makes.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from djamms_edge import __version__
from djamms_edge.hub.auth import Principal
from djamms_edge.hub.context import CREDENTIALS, SERVICE, client_address, principal_of
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.service import HubService, Reply, api_error_for
from djamms_edge.hub.store.base import Json, StoredExecution, StoreError, StoreUnavailable
from djamms_edge.hub.web_input import Fields, parse_json_object, read_json

routes = web.RouteTableDef()


class Call:
    """One execution's input: who asked, from where, and the function's JSON body."""

    def __init__(self, service: HubService, who: Principal | None, client: str, body: Fields) -> None:
        self.service, self.who, self.client, self.body = service, who, client, body


async def _magic_link(call: Call) -> Reply:
    f = call.body
    action = f.text("action")
    if action == "create":
        return await call.service.create_magic_link(f.email("email"), f.text("redirectUrl", max_len=2048),
                                                    call.client)
    if action == "verify":
        f.optional_text("userId")  # accepted; user ids are never chosen by the client
        return await call.service.verify_magic_link(f.text("secret", max_len=128))
    raise ApiError(400, "must be create or verify", "action")


async def _player_registry(call: Call) -> Reply:
    f, service = call.body, call.service
    action = f.text("action")
    venue_id, device_id = f.ident("venueId"), f.ident("deviceId")
    assert venue_id is not None and device_id is not None
    instance_id = f.ident("instanceId", required=False)
    if action == "register":
        return await service.register(call.who, venue_id, device_id, f.text("userAgent", required=False),
                                      instance_id)
    if action == "heartbeat":
        return await service.heartbeat(call.who, venue_id, device_id, instance_id=instance_id)
    if action == "release":
        return await service.release(call.who, venue_id, device_id, instance_id)
    raise ApiError(400, "must be register, heartbeat or release", "action")


async def _process_request(call: Call) -> Reply:
    f, service = call.body, call.service
    venue_id, payment_id = f.ident("venueId"), f.ident("paymentId")
    assert venue_id is not None and payment_id is not None
    song = f.song("song", allow_urls=service.config.requests.allow_urls)
    return await service.paid_request(venue_id, song, payment_id, f.optional_text("requesterId"), call.client)


async def _add_song(call: Call) -> Reply:
    f, service = call.body, call.service
    playlist_id = f.ident("playlistId")
    assert playlist_id is not None
    return await service.add_song(call.who, playlist_id, f.song("song", allow_urls=service.config.requests.allow_urls))


Function = Callable[[Call], Awaitable[Reply]]
FUNCTIONS: dict[str, Function] = {
    "magic-link": _magic_link,
    "68e5a317003c42c8bb6a": _magic_link,
    "player-registry": _player_registry,
    "68e5a41f00222cab705b": _player_registry,
    "processRequest": _process_request,
    "68e5acf100104d806321": _process_request,
    "addSongToPlaylist": _add_song,  # the reference gives it no $id
}


# An execution is kept for its creator's GET this long, and at most this many per creator (the oldest go).
KEEP_EXECUTIONS_S = 3600
KEEP_EXECUTIONS_PER_READER = 100


def reader_of(who: Principal | None) -> str | None:
    """Who an execution belongs to, as Appwrite's read permission names its creator: the user (any of their
    tokens), or the device of its venue. None for a guest: nobody can prove to be that guest again."""
    if who is None:
        return None
    if who.role == "device":
        return f"device:{who.venue_id}/{who.subject}"
    return f"user:{who.subject}"


async def _keep(service: HubService, who: Principal | None, execution: Json, credential: bool) -> None:
    """Store ``execution`` for its creator's GET on any hub instance (the store is shared).

    As Appwrite does: an execution is readable by the user who created it, and by nobody for a guest's (so
    a guest's is not kept). An answer that hands out a credential (a sign-in's token) is kept without its
    body, as Appwrite (1.4+) keeps no response body at all: no token at rest, none shown twice."""
    reader = reader_of(who)
    if reader is None:
        return
    now_ms = service.now_ms()
    kept = {**execution, "responseBody": ""} if credential else execution
    stored = StoredExecution(execution["$id"], execution["functionId"], reader,
                             json.dumps(kept, separators=(",", ":")), now_ms, now_ms + KEEP_EXECUTIONS_S * 1000)
    # The work is done and answered: a store in trouble (it logs that) only makes a later GET of it a 404.
    with contextlib.suppress(StoreUnavailable):
        await service.store.keep_execution(stored, KEEP_EXECUTIONS_PER_READER)


DEPLOYMENT_ID = f"djamms-hub-{__version__}"
EXECUTION_ID = re.compile(r"[0-9a-f]{20}")


def _execution(function_id: str, status: str, code: int, body: Json, started: float, error: str = "") -> Json:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "$id": secrets.token_hex(10),
        "$createdAt": now,
        "$updatedAt": now,
        "$permissions": [],
        "functionId": function_id,  # older SDKs; newer ones read resourceId/resourceType
        "resourceId": function_id,
        "resourceType": "functions",
        "deploymentId": DEPLOYMENT_ID,
        "trigger": "http",
        "status": status,
        "requestMethod": "POST",
        "requestPath": "/",
        "requestHeaders": [],
        "responseStatusCode": code,
        "responseBody": json.dumps(body, separators=(",", ":")),
        "responseHeaders": [{"name": "content-type", "value": "application/json"}],
        "logs": "",
        "errors": error,
        "duration": round(time.perf_counter() - started, 6),
        "scheduledAt": None,
    }


def _function(function_id: str) -> Function:
    function = FUNCTIONS.get(function_id)
    if function is None:
        raise ApiError(404, f"Function with the requested ID {function_id!r} could not be found (known: "
                       f"{', '.join(sorted(FUNCTIONS))})", extra={"type": "function_not_found"})
    return function


async def _principal(request: web.Request) -> Principal | None:
    """The bearer token, or Appwrite's ``X-Appwrite-JWT`` (what its SDKs send after ``set_jwt``), checked
    like a bearer token is (signature, expiry, and still current: not revoked); ApiError(401) otherwise."""
    jwt = request.headers.get("X-Appwrite-JWT")
    if jwt is not None and "Authorization" not in request.headers:
        principal = request.app[SERVICE].tokens.verify(jwt.strip())
        await request.app[CREDENTIALS].check(principal)
        return principal
    return principal_of(request)


@routes.post("/v1/functions/{functionId}/executions")
async def execute(request: web.Request) -> web.Response:
    started = time.perf_counter()
    function_id = request.match_info["functionId"]
    function = _function(function_id)
    envelope = await read_json(request)
    raw: Any = envelope.get("body", "{}")
    if not isinstance(raw, str):
        raise ApiError(400, "must be a string holding JSON", "body")
    body = Fields(parse_json_object(raw or "{}", "body"))
    service = request.app[SERVICE]
    who, credential = None, False
    try:
        # Inside: a bad token fails the execution like a missing one does (the function refuses it).
        who = await _principal(request)
        reply = await function(Call(service, who, client_address(request), body))
        credential = reply.credential
    except (ApiError, StoreError) as exc:
        # The reference threw here: the execution "failed", its response carries the error text.
        error = exc if isinstance(exc, ApiError) else api_error_for(exc)
        failed: Json = {"success": False, "error": error.message}
        if error.field is not None:
            failed["field"] = error.field
        execution = _execution(function_id, "failed", error.status, failed, started, error.message)
    else:
        # The reference's functions answered in-band ({"success": false, ...}) with a 200.
        execution = _execution(function_id, "completed", 200, reply.body, started)
    await _keep(service, who, execution, credential)
    return web.json_response(execution, status=201)


@routes.get("/v1/functions/{functionId}/executions/{executionId}")
async def get_execution(request: web.Request) -> web.Response:
    function_id, execution_id = request.match_info["functionId"], request.match_info["executionId"]
    _function(function_id)
    service = request.app[SERVICE]
    try:
        reader = reader_of(await _principal(request))
    except ApiError:
        reader = None  # a bad or revoked token is no better than none
    if reader is None:  # Appwrite's answer to a guest
        raise ApiError(401, "User (role: guests) missing scope (execution.read)",
                       extra={"type": "general_unauthorized_scope"})
    body = None
    if EXECUTION_ID.fullmatch(execution_id):  # what ``_execution`` makes; nothing else reaches the store
        body = await service.store.get_execution(function_id, execution_id, reader, service.now_ms())
    if body is None:  # unknown, expired, or someone else's: Appwrite hides what you may not read
        raise ApiError(404, f"Execution with the requested ID {execution_id!r} could not be found",
                       extra={"type": "execution_not_found"})
    return web.Response(text=body, content_type="application/json")
