"""The edge's local status page: an aiohttp app over a ``StatusSource``.

Routes: ``/`` (the page), ``/api/status`` (JSON), ``/events`` (server-sent
events, one per change), ``/metrics`` (Prometheus) and ``POST
/api/control/{skip,pause,resume,volume}`` behind the admin token. Every error
is a JSON body with the right 4xx; nothing the client sends can cause a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from djamms_edge.edge.status.config import StatusConfig
from djamms_edge.edge.status.connections import ConnectionGate, GatedTCPSite
from djamms_edge.edge.status.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from djamms_edge.edge.status.metrics import render_metrics
from djamms_edge.edge.status.model import ControlRefused, StatusSource, snapshot_to_json

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096  # control bodies are tiny; anything bigger is refused with 413
KEEPALIVE_SECONDS = 15.0  # an SSE comment this often finds dead clients and keeps proxies open
SHUTDOWN_GRACE_SECONDS = 2.0
MAX_VOLUME = 100.0

# Inline scripts and styles are not allowed: the page's own files only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


@dataclass
class _State:
    config: StatusConfig
    source: StatusSource
    clock: Callable[[], float]
    static: dict[str, tuple[bytes, str]]
    gate: ConnectionGate
    live_clients: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)


STATE = web.AppKey("status_state", _State)


class StatusServer:
    """A running status page; ``await close()`` stops it and ends live connections."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_status_server(
    config: StatusConfig, source: StatusSource, *, clock: Callable[[], float] = time.time
) -> StatusServer:
    """Serve the page for ``source`` on ``config.host``/``config.port`` (port 0 = any free port)."""
    app = build_app(config, source, clock=clock)
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    await runner.setup()
    site = GatedTCPSite(runner, config.host, config.port, app[STATE].gate)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    server = StatusServer(runner, config.host, _bound_port(runner) or config.port)
    log.info("status page at %s (controls %s)", server.url, "on" if config.admin_token else "off")
    return server


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None


def build_app(config: StatusConfig, source: StatusSource, *, clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_security_headers, _json_errors, _known_host])
    gate = ConnectionGate(config.max_connections, config.idle_timeout_s)
    app[STATE] = _State(config=config, source=source, clock=clock, static=_load_static(), gate=gate)
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name}", _static)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/events", _events)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/api/control/{action}", _control)
    app.on_shutdown.append(_on_shutdown)
    return app


def _load_static() -> dict[str, tuple[bytes, str]]:
    # A handful of small files, read once: no disk access per request on a Pi's SD card.
    folder = resources.files("djamms_edge.edge.status") / "static"
    files: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].closing.set()


# --- middlewares -------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("www-authenticate", "allow")}
        return web.json_response({"error": exc.text or exc.reason}, status=exc.status, headers=headers)


@web.middleware
async def _known_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    # DNS rebinding: a web page the staff opens elsewhere could point its own
    # domain at this box and read the page as "same origin". Such requests carry
    # that domain in Host; people reach the box by IP, localhost, its name or mDNS.
    try:
        host = request.url.host or ""
    except ValueError:  # a Host header yarl cannot parse
        host = ""
    if not _is_local_name(host, request.app[STATE].config.host_names):
        raise web.HTTPMisdirectedRequest(text="unknown Host: open the status page by the box's address or name")
    return await handler(request)


def _is_local_name(host: str, extra_names: tuple[str, ...]) -> bool:
    name = host.lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name in ("localhost", socket.gethostname().lower()) or name.endswith((".local", ".localhost")):
        return True
    return name in (extra.lower().rstrip(".") for extra in extra_names)


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:  # SSE responses set theirs before streaming
        response.headers.update(SECURITY_HEADERS)
    return response


# --- read-only routes --------------------------------------------------------------


async def _index(request: web.Request) -> web.Response:
    return _static_response(request, "index.html")


async def _static(request: web.Request) -> web.Response:
    return _static_response(request, request.match_info["name"])


def _static_response(request: web.Request, name: str) -> web.Response:
    found = request.app[STATE].static.get(name)
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    body, content_type = found
    return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-cache"})


async def _status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = snapshot_to_json(state.source.snapshot(), state.clock())
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    text = render_metrics(state.source.snapshot(), state.clock(), state.live_clients)
    return web.Response(text=text, headers={"Content-Type": METRICS_CONTENT_TYPE})


async def _events(request: web.Request) -> web.StreamResponse:
    """One ``status`` event with the whole snapshot now, then one per change."""
    state = request.app[STATE]
    if state.live_clients >= state.config.max_event_clients:
        raise web.HTTPServiceUnavailable(text="too many live status pages open; try again later")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", **SECURITY_HEADERS}
    )
    await response.prepare(request)
    state.live_clients += 1
    if request.transport is not None:
        state.gate.streaming.add(request.transport)  # written to by us: never idle
    try:
        await response.write(b"retry: 2000\n\n")
        sent: int | None = None
        while not state.closing.is_set():
            snapshot = state.source.snapshot()
            if snapshot.version != sent:
                data = json.dumps(snapshot_to_json(snapshot, state.clock()), separators=(",", ":"))
                await response.write(f"event: status\nid: {snapshot.version}\ndata: {data}\n\n".encode())
                sent = snapshot.version
            else:
                await response.write(b": keepalive\n\n")
            await _change_or_closing(state, sent)
    except ConnectionError:
        pass  # the page was closed; nothing to tell anyone
    finally:
        state.live_clients -= 1
        if request.transport is not None:
            state.gate.streaming.discard(request.transport)
    return response


async def _change_or_closing(state: _State, version: int) -> None:
    """Return on a version newer than ``version``, on shutdown, or after the keepalive interval."""
    changed = asyncio.ensure_future(state.source.wait_changed(version))
    closing = asyncio.ensure_future(state.closing.wait())
    try:
        await asyncio.wait((changed, closing), timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (changed, closing):
            waiter.cancel()
        await asyncio.gather(changed, closing, return_exceptions=True)


# --- controls ----------------------------------------------------------------------


async def _control(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _check_admin(request, state.config.admin_token)
    action = request.match_info["action"]
    source = state.source
    if action not in ("skip", "pause", "resume", "volume"):
        raise web.HTTPNotFound(text=f"unknown control {action!r}; use skip, pause, resume or volume")
    body = await _json_body(request)
    try:
        if action == "skip":
            await source.skip()
        elif action == "pause":
            await source.pause()
        elif action == "resume":
            await source.resume()
        else:
            await source.set_volume(_volume_from(body))
    except ControlRefused as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    log.info("control %s from the status page", action)
    return web.json_response({"ok": True, "action": action})


def _check_admin(request: web.Request, admin_token: str) -> None:
    if not admin_token:
        raise web.HTTPForbidden(text="controls are disabled: set edge.status.admin_token")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest on bytes: constant time whatever the given token's content.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), admin_token.encode()):
        raise web.HTTPUnauthorized(
            text="missing or wrong admin token", headers={"WWW-Authenticate": 'Bearer realm="djamms-edge"'}
        )


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # over MAX_BODY_BYTES raises 413, turned into JSON by _json_errors
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="body is not valid JSON") from None
    except RecursionError:  # a few thousand nested brackets fit in MAX_BODY_BYTES
        raise web.HTTPBadRequest(text="body is nested too deeply") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _volume_from(body: dict[str, Any]) -> float:
    volume = body.get("volume")
    if isinstance(volume, bool) or not isinstance(volume, (int, float)):
        raise web.HTTPBadRequest(text='body must be {"volume": <number 0-100>}')
    if not math.isfinite(volume) or not 0 <= volume <= MAX_VOLUME:
        raise web.HTTPUnprocessableEntity(text=f"volume must be between 0 and {MAX_VOLUME:g}, got {volume}")
    return float(volume)
