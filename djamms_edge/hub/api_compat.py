"""The reference's function endpoint: ``POST /v1/functions/{functionId}/executions``.

Clients written for the reference post ``{"body": "<json string>"}`` to a function by
name or by its Appwrite ``$id`` and get an Appwrite-style execution object whose
``responseBody`` is exactly the JSON the reference documents. The work itself is
the same service call the REST API makes.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from djamms_edge.hub.auth import Principal
from djamms_edge.hub.context import SERVICE, client_address, principal_of
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.service import HubService, Reply, api_error_for
from djamms_edge.hub.store.base import Json, StoreError
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
        return await service.release(call.who, venue_id, device_id)
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


def _execution(function_id: str, status: str, code: int, body: Json, started: float, error: str = "") -> Json:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "$id": secrets.token_hex(10),
        "$createdAt": now,
        "$updatedAt": now,
        "$permissions": [],
        "functionId": function_id,
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
    }


@routes.post("/v1/functions/{functionId}/executions")
async def execute(request: web.Request) -> web.Response:
    started = time.perf_counter()
    function_id = request.match_info["functionId"]
    function = FUNCTIONS.get(function_id)
    if function is None:
        raise ApiError(404, f"unknown function (known: {', '.join(sorted(FUNCTIONS))})", "functionId")
    envelope = await read_json(request)
    raw: Any = envelope.get("body", "{}")
    if not isinstance(raw, str):
        raise ApiError(400, "must be a string holding JSON", "body")
    call = Call(request.app[SERVICE], principal_of(request), client_address(request),
                Fields(parse_json_object(raw or "{}", "body")))
    try:
        reply = await function(call)
    except (ApiError, StoreError) as exc:
        # The reference threw here: the execution "failed", its response carries the error text.
        error = exc if isinstance(exc, ApiError) else api_error_for(exc)
        body: Json = {"success": False, "error": error.message}
        if error.field is not None:
            body["field"] = error.field
        return web.json_response(_execution(function_id, "failed", error.status, body, started, error.message),
                                 status=201)
    # The reference's functions answered in-band ({"success": false, ...}) with a 200.
    return web.json_response(_execution(function_id, "completed", 200, reply.body, started), status=201)
