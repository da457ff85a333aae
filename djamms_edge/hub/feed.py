"""The venue change feed: WebSocket push with resume-from-version, and a polling twin.

An edge connects with ``?since=V`` (the last version it applied). It gets every
change after V in order — or one snapshot when V is older than the retained log —
then ``ready``, then each change as it commits. See docs/hub-api.md.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import WSMsgType, web

from djamms_edge.hub.api_rest import VENUE, venue_param
from djamms_edge.hub.auth import Principal, issue_feed_ticket, require_venue_member, verify_feed_ticket
from djamms_edge.hub.context import SERVICE, SOCKETS, principal_of
from djamms_edge.hub.store.base import ChangeBatch, HubStore, Json
from djamms_edge.hub.web_input import query_int
from djamms_edge.shared.tasks import TaskOwner

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
BATCH = 500
MAX_VERSION = 2**62


def batch_messages(batch: ChangeBatch) -> list[Json]:
    if batch.snapshot is not None:
        return [{"type": "snapshot", "version": batch.snapshot.version, "queue": batch.snapshot.to_json()}]
    return [{"type": "change", "version": c.version, "change": c.data} for c in batch.changes]


def _last_version(since: int, batch: ChangeBatch) -> int:
    if batch.snapshot is not None:
        return batch.snapshot.version
    return batch.changes[-1].version if batch.changes else since


@routes.get(VENUE + "/changes")
async def changes(request: web.Request) -> web.Response:
    """Poll fallback: the same batches the WebSocket pushes."""
    venue_id = venue_param(request)
    require_venue_member(principal_of(request), venue_id)
    since = query_int(request, "since", 0, 0, MAX_VERSION)
    batch = await request.app[SERVICE].store.changes_since(venue_id, since, BATCH)
    return web.json_response({"version": batch.version, "more": batch.more, "messages": batch_messages(batch)})


FEED_TICKET_S = 60


@routes.post(VENUE + "/feed/ticket")
async def feed_ticket(request: web.Request) -> web.Response:
    """A ticket for a browser's feed WebSocket (``?ticket=``), fetched with the bearer token; 60 s to use."""
    venue_id = venue_param(request)
    who = require_venue_member(principal_of(request), venue_id)
    now = time.time()  # the wall clock the ticket is checked against (as every token is)
    ticket = issue_feed_ticket(request.app[SERVICE].config.jwt_secret, who, venue_id, now, FEED_TICKET_S)
    return web.json_response({"ticket": ticket, "expiresAt": int((now + FEED_TICKET_S) * 1000)})


@routes.get(VENUE + "/feed")
async def feed(request: web.Request) -> web.StreamResponse:
    venue_id = venue_param(request)
    ticket = request.query.get("ticket")  # never logged: the hub keeps no access log (hub/serving.py)
    if ticket is not None and "Authorization" not in request.headers:
        asking: Principal | None = verify_feed_ticket(request.app[SERVICE].config.jwt_secret, ticket, venue_id)
    else:
        asking = principal_of(request)
    who = require_venue_member(asking, venue_id)
    since = query_int(request, "since", 0, 0, MAX_VERSION)
    service = request.app[SERVICE]
    cap = service.config.connections.feed_sockets_per_token
    with request.app[SOCKETS].held_by(f"{who.venue_id}/{who.label}", cap):
        return await _serve_feed(request, venue_id, since)


async def _serve_feed(request: web.Request, venue_id: str, since: int) -> web.StreamResponse:
    service = request.app[SERVICE]
    store = service.store
    first = await store.changes_since(venue_id, since, BATCH)  # unknown venue → 404 before the upgrade
    ws = web.WebSocketResponse(heartbeat=service.config.feed.ping_interval_s)
    await ws.prepare(request)
    request.app[SOCKETS].sockets.add(ws)
    tasks = TaskOwner(f"feed:{venue_id}")
    reader = tasks.start(_drain(ws), "reader")
    try:
        await _push(ws, store, venue_id, since, first, reader, tasks)
    except ConnectionResetError:
        pass  # the edge went away mid-send; it resumes from its last version
    finally:
        await tasks.close()
        await ws.close()
    return ws


async def _push(ws: web.WebSocketResponse, store: HubStore, venue_id: str, since: int, batch: ChangeBatch,
                reader: asyncio.Task[None], tasks: TaskOwner) -> None:
    ready_sent = False
    while True:
        for message in batch_messages(batch):
            await ws.send_json(message)
        since = _last_version(since, batch)
        if batch.more:
            batch = await store.changes_since(venue_id, since, BATCH)
            continue
        if not ready_sent:
            await ws.send_json({"type": "ready", "version": since})
            ready_sent = True
        event = store.change_event(venue_id)  # taken before reading: no change slips between read and wait
        batch = await store.changes_since(venue_id, since, BATCH)
        if batch.changes or batch.snapshot is not None:
            continue
        waiter = tasks.start(event.wait(), "wait")
        await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if reader.done():
            return
        batch = await store.changes_since(venue_id, since, BATCH)


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the edge sends, so pongs and the close handshake are processed."""
    async for message in ws:
        if message.type == WSMsgType.ERROR:
            log.debug("feed socket error: %s", ws.exception())
