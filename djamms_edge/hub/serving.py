"""How ``djamms-hub serve`` runs the app: aiohttp with guards against slow and greedy clients.

Left alone, aiohttp lets a client hold a connection for the whole keep-alive timeout by sending half a
request head, and lets one address open connections until the process runs out of file descriptors;
then every accept fails and asyncio logs each failure. Here:

- a request's line and headers must arrive within ``header_timeout_s`` of its first byte (or of the
  connection's start), else the connection is closed;
- an idle keep-alive connection is closed after ``keepalive_timeout_s`` (aiohttp's own timer);
- one client address holds at most ``max_per_address`` connections; more are reset at once;
- accept failures ("Too many open files") are logged once per episode, with a count when it ends.

Request bodies have their own deadline where they are read (``web_input.read_json``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from djamms_edge.hub.config import ConnectionsConfig

log = logging.getLogger(__name__)
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's message when accept() gets EMFILE/ENFILE
# asyncio reports every failed accept (thousands a second while descriptors run out); an episode of them
# ends at the first connection accepted this long after the last failure.
ACCEPT_EPISODE_QUIET_S = 5.0


class ConnectionGuard:
    """The per-address counts and the accept-failure episode, shared by every connection of one server."""

    def __init__(self, limits: ConnectionsConfig) -> None:
        self.limits = limits
        self.open: Counter[str] = Counter()
        self._over_cap: set[str] = set()  # addresses refused since they last dropped below the cap
        self.refused = 0
        self.timed_out = 0
        self._accept_failures = 0
        self._accept_failing_since: float | None = None
        self._accept_failed_at = 0.0

    def admit(self, address: str) -> bool:
        cap = self.limits.max_per_address
        self._accept_recovered()
        if cap and self.open[address] >= cap:
            self.refused += 1
            if address not in self._over_cap:
                self._over_cap.add(address)
                log.warning("refusing connections from %s: it holds %d (hub.connections.max_per_address)",
                            address, cap)
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]
        if address in self._over_cap and self.open[address] < self.limits.max_per_address // 2:
            self._over_cap.discard(address)  # log again if it comes back over the cap

    def accept_failed(self, exc: BaseException | None) -> None:
        self._accept_failures += 1
        self._accept_failed_at = time.monotonic()
        if self._accept_failing_since is None:
            self._accept_failing_since = self._accept_failed_at
            log.error("cannot accept connections: %s (out of file descriptors: raise LimitNOFILE or put a "
                      "reverse proxy in front, see docs/hub-deploy.md); not logged again until it recovers", exc)

    def _accept_recovered(self) -> None:
        if self._accept_failing_since is not None \
                and time.monotonic() - self._accept_failed_at >= ACCEPT_EPISODE_QUIET_S:
            log.warning("accepting connections again after %d failed accepts over %.0f s", self._accept_failures,
                        self._accept_failed_at - self._accept_failing_since)
            self._accept_failing_since = None
            self._accept_failures = 0

    def exception_handler(self, default: Callable[[dict[str, Any]], None]) -> Callable[..., None]:
        """An event-loop exception handler that folds accept failures into one episode."""

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if context.get("message") == ACCEPT_FAILED:
                self.accept_failed(context.get("exception"))
            else:
                default(context)

        return handle


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return "unix"


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol with the per-address cap and the request-head deadline."""

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._address: str | None = None
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = _peer(transport)
        if not self._guard.admit(address):
            cast(asyncio.Transport, transport).abort()  # a reset at once: refused, it holds no descriptor
            return
        self._address = address
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._disarm()  # a whole request head arrived
        elif self._head_deadline is None and self._idle():
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._address is None:
            return  # refused in connection_made: aiohttp never saw it
        self._disarm()
        self._guard.release(self._address)
        self._address = None
        super().connection_lost(exc)

    def _idle(self) -> bool:
        """Waiting for a request head: no request queued or being handled."""
        return not self._messages and (self._waiter is None or not self._waiter.done()) \
            and not self._request_in_progress

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self._loop.call_later(self._guard.limits.header_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._idle():
            self._guard.timed_out += 1
            log.debug("closing a connection from %s: no complete request head within %.0f s", self._address,
                      self._guard.limits.header_timeout_s)
            self.force_close()


class GuardedServer(web.Server):
    """aiohttp's server whose connections are ``GuardedRequestHandler``s."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, self.guard, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner serving through ``GuardedServer``, with aiohttp's keep-alive timer set from config."""

    def __init__(self, app: web.Application, limits: ConnectionsConfig, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout_s, **kwargs)
        self.guard = ConnectionGuard(limits)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                             handler_cancellation=plain.handler_cancellation, guard=self.guard,
                             debug=self.app._debug, **self._kwargs)


async def serve(app: web.Application, limits: ConnectionsConfig, host: str, port: int,
                announce: Callable[[str], None]) -> None:
    """Serve ``app`` on host:port until SIGINT/SIGTERM, then shut down gracefully (as ``web.run_app`` does)."""
    runner = GuardedRunner(app, limits, access_log=None, shutdown_timeout=10.0)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(runner.guard.exception_handler(loop.default_exception_handler))
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before announcing: a SIGTERM right after is a clean stop
        loop.add_signal_handler(signum, stop.set)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        announce(", ".join(sorted(str(s.name) for s in runner.sites)))
        await stop.wait()
    finally:
        await runner.cleanup()
