"""Bounded connections for the status page: a cap on how many are open, and an idle timeout.

aiohttp keeps a connection that never sends a request (or sends half of one) open for ever, and
accepts as many as the process has file descriptors: a few hundred idle sockets from anywhere on the
LAN would take the box's descriptors (libmpv, SQLite and yt-dlp need them) and its memory. So every
connection goes through a gate: over ``limit`` open ones a newcomer gets a short 503 and is closed;
a connection whose client has sent nothing for ``idle_s`` is closed, except a live-update (SSE)
stream, which only the server writes to (those are capped by ``max_event_clients`` and find dead
clients through their keepalives).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 50\r\n"
                 b"Connection: close\r\nRetry-After: 5\r\n\r\n"
                 b'{"error": "too many connections; try again later"}')


class ConnectionGate:
    """Counts the open connections; ``streaming`` holds the transports of live-update streams."""

    def __init__(self, limit: int, idle_s: float) -> None:
        self.limit = limit
        self.idle_s = idle_s
        self.open = 0
        self.refused = 0
        self.streaming: set[asyncio.BaseTransport] = set()

    def wrap(self, make_protocol: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Gated(self, make_protocol)


class _Gated(asyncio.Protocol):
    """aiohttp's protocol behind the gate: every call is passed on once the connection is let in."""

    def __init__(self, gate: ConnectionGate, make_protocol: Callable[[], asyncio.Protocol]) -> None:
        self._gate = gate
        self._make_protocol = make_protocol
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._last_heard = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._gate.open >= self._gate.limit:
            self._gate.refused += 1
            if self._gate.refused in (1, 10, 100) or self._gate.refused % 1000 == 0:
                log.warning("status page: %d connections open, refused one more (%d so far)", self._gate.open,
                            self._gate.refused)  # fmt: skip
            transport.write(BUSY_RESPONSE)
            transport.close()
            return
        self._gate.open += 1
        self._transport = transport
        self._inner = self._make_protocol()
        self._heard()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._heard()
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._gate.open -= 1
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._gate.streaming.discard(self._transport)
        self._inner.connection_lost(exc)
        self._inner = None

    def _heard(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_heard = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self._gate.idle_s, self._check_idle)

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = None
        transport = self._transport
        if self._inner is None or transport is None or transport.is_closing():
            return
        silent = loop.time() - self._last_heard
        if transport in self._gate.streaming or silent < self._gate.idle_s:
            wait = self._gate.idle_s - silent if silent < self._gate.idle_s else self._gate.idle_s
            self._timer = loop.call_later(wait, self._check_idle)
            return
        transport.close()  # aiohttp's handler hears of it through connection_lost


class GatedTCPSite(web.TCPSite):
    """A ``TCPSite`` whose connections go through ``gate`` (aiohttp's own ``start``, with the protocol wrapped)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: ConnectionGate) -> None:
        super().__init__(runner, host, port)
        self._gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._gate.wrap(server), self._host, self._port, backlog=self._backlog
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
