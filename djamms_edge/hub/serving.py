"""How ``djamms-hub serve`` runs the app: aiohttp with guards against slow and greedy clients.

Left alone, aiohttp lets a client hold a connection for the whole keep-alive timeout by sending half a
request head, lets a client that never reads its answers hold a connection (and its answer) forever, and
lets one address open connections until the process runs out of file descriptors; then every accept fails
and asyncio logs each failure. Here:

- a request's line and headers must arrive within ``header_timeout_s`` of its first byte (or of the
  connection's start), else the connection is dropped: reset (RST, no TIME_WAIT left) when it never sent a
  whole head; the deadline is drawn at random from the second half of that time, so a crowd of slow clients
  that came at once is not dropped (and does not come back) at once;
- until its first request head is complete a connection is a ``PendingConnection`` (a buffer and a
  deadline): aiohttp's handler, parser and task per connection are built only for a whole head, so holding
  thousands of half-sent heads costs little;
- all these deadlines sit in one heap on one timer (``hub.deadlines``), not a timer per connection;
- the hub accepts from its listening sockets itself (``Listener``), at most ``ACCEPT_BATCH`` connections per
  turn of the loop, so a crowd of reconnects does not hold up answers on the connections already open;
- the garbage collector's young generations are collected every 64 new connections (``YoungGarbage``) and
  what start-up made is frozen out of full collections, so connection churn does not pile objects up for
  one long pause;
- an answer the client does not take: when a connection's write buffer stays over its high-water mark for
  ``write_timeout_s``, the connection is aborted (aiohttp has no write deadline);
- an idle keep-alive connection is closed after ``keepalive_timeout_s`` (aiohttp's own timer);
- one client address holds at most ``max_per_address`` connections; more are reset at once;
- accept failures ("Too many open files") are logged once per episode, with a count when it ends; accepting
  pauses for ``ACCEPT_RETRY_S`` after each (the kernel queues what comes meanwhile).

Request bodies have their own deadline where they are read (``web_input.read_json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import random
import re
import signal
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from djamms_edge.hub.config import ConnectionsConfig
from djamms_edge.hub.deadlines import Deadline, Deadlines

log = logging.getLogger(__name__)
# Every failed accept is reported (thousands a second while descriptors run out); an episode of them
# ends at the first connection accepted this long after the last failure.
ACCEPT_EPISODE_QUIET_S = 5.0
HEAD_DEADLINE_SPREAD = 0.5  # head deadlines fall at random in the second half of header_timeout_s
# Deadlines are checked this often (at most; a tenth of header_timeout_s if shorter). Short, so the cuts of a
# slow-client attack, each followed by a reconnect, trickle out a few at a time: at 0.1 s, ~65 at once ten
# times a second made reconnect bursts that kept every process on a small box waiting for a CPU.
DEADLINE_TICK_S = 0.01
# Connections accepted per turn of the loop. libuv accepts every queued connection in one callback; the
# connections an attack's cuts send back arrive together, and one callback accepting dozens of them (~80 us
# each) kept every request that arrived meanwhile waiting. A few per turn, then whatever else is ready.
ACCEPT_BATCH = 4
ACCEPT_RETRY_S = 1.0  # out of descriptors (or memory): accept again this much later (asyncio waits as long)
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
YOUNG_GC_BATCH = 64  # new connections between two collections of the young generation
HEAD_BUFFER_MAX = 16384  # a pending head longer than this goes to aiohttp, which parses or refuses it
_REQUEST_LINE = re.compile(rb"[A-Z]+ \S+ HTTP/1\.[01]\r?")
# A connection cut at its head deadline is reset (RST), not closed politely (FIN). The hub has sent nothing on
# it and has nothing to lose, and a slow client cut there tends to reconnect at once: a FIN close costs both
# kernels a four-packet goodbye and leaves the hub a TIME_WAIT entry for 60 s (~40,000 under a 5,000-connection
# attack: a large share of net.ipv4.tcp_max_tw_buckets, which scales with the box's memory); a reset is one
# packet and leaves nothing. SO_LINGER on with 0 s makes close() reset; serve() sets it on the listening
# socket, whose accepted connections inherit it (no system call per attack connection), and a connection
# handed to aiohttp gets the polite close back, so its answers always arrive whole.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)
_CLOSE_POLITELY = struct.pack("ii", 0, 0)


class ConnectionGuard:
    """The per-address counts and the accept-failure episode, shared by every connection of one server."""

    def __init__(self, limits: ConnectionsConfig) -> None:
        self.limits = limits
        self.open: Counter[str] = Counter()
        self._over_cap: set[str] = set()  # addresses refused since they last dropped below the cap
        self.refused = 0
        self.timed_out = 0  # connections closed at the head deadline
        self.write_timed_out = 0  # connections aborted at the write deadline
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


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return "unix"


def _head_complete(head: bytes, searched: int) -> bool:
    """An empty line ends the head; only the bytes after ``searched`` (less the 2 that may start one) are new."""
    start = max(0, searched - 2)
    return head.find(b"\n\r\n", start) >= 0 or head.find(b"\n\n", start) >= 0


def _plausible_start(head: bytes) -> bool:
    """Could this be the start of an HTTP/1 request? If not, aiohttp answers it (400) at once."""
    line_end = head.find(b"\n")
    if line_end < 0:
        return head[:1].isupper()
    return _REQUEST_LINE.fullmatch(head[:line_end]) is not None


class PendingConnection(asyncio.Protocol):
    """A connection until its first request head is complete: a buffer and a deadline, no aiohttp handler yet.

    With the whole head (or anything aiohttp must answer itself: not HTTP/1, too long) it hands the transport
    to a ``GuardedRequestHandler`` and feeds it what came so far."""

    __slots__ = ("_address", "_deadline", "_head", "_server", "_transport")

    def __init__(self, server: GuardedServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._address = ""
        self._head = b""
        self._deadline: Deadline | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = _peer(transport)
        if not self._server.guard.admit(address):
            cast(asyncio.Transport, transport).abort()  # a reset at once: refused, it holds no descriptor
            return
        self._transport, self._address = cast(asyncio.Transport, transport), address
        self._deadline = self._server.head_deadline(self._timed_out)
        self._server.pending.add(self)
        self._server.young.connection_made()

    def data_received(self, data: bytes) -> None:
        head = self._head + data
        if _head_complete(head, len(self._head)) or len(head) > HEAD_BUFFER_MAX \
                or (b"\n" not in self._head and not _plausible_start(head)):
            self._hand_over(head)
        else:
            self._head = head

    def eof_received(self) -> bool:
        return False  # no whole request came: close

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._transport is None:
            return  # refused, or handed over (the handler owns the connection now)
        self._transport = None
        self._server.pending.discard(self)
        self._server.deadlines.cancel(self._deadline)
        self._server.guard.release(self._address)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _timed_out(self) -> None:
        self._server.guard.timed_out += 1
        log.debug("resetting a connection from %s: no complete request head in time", self._address)
        if self._transport is not None:
            if not self._server.listeners_reset:
                _set_linger(self._transport.get_extra_info("socket"), _RESET_ON_CLOSE)
            self._transport.abort()

    def _hand_over(self, head: bytes) -> None:
        transport, self._transport = self._transport, None
        assert transport is not None
        self._server.pending.discard(self)
        if self._server.listeners_reset:
            _set_linger(transport.get_extra_info("socket"), _CLOSE_POLITELY)
        handler = self._server.handler(self._address)
        transport.set_protocol(handler)
        handler.connection_made(transport)
        handler.take_head_deadline(self._deadline)  # the head may still be incomplete (a long one)
        self._deadline = None
        handler.data_received(head)


def _set_linger(sock: Any, value: bytes) -> None:
    """SO_LINGER on a (listening or transport's) socket; one already gone (None, OSError) needs nothing."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, value)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol, for a connection admitted by a ``PendingConnection``: the head deadline of
    later requests on a kept-alive connection, the write deadline, and the address's place under the cap."""

    def __init__(self, manager: GuardedServer, address: str, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guarded = manager
        self._address: str | None = address
        self._head_deadline: Deadline | None = None
        self._write_deadline: Deadline | None = None

    def take_head_deadline(self, deadline: Deadline | None) -> None:
        if deadline is not None and deadline.pending:
            deadline.expire = self._head_timed_out
            self._head_deadline = deadline

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._guarded.deadlines.cancel(self._head_deadline)  # a whole request head arrived
            self._head_deadline = None
        elif self._head_deadline is None and self._address is not None and self._idle():
            # the first bytes of the next request on a kept-alive connection
            self._head_deadline = self._guarded.head_deadline(self._head_timed_out)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None and self._address is not None:
            self._write_deadline = self._guarded.write_deadline(self._write_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._guarded.deadlines.cancel(self._write_deadline)
        self._write_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._address is not None:
            self._guarded.deadlines.cancel(self._head_deadline)
            self._guarded.deadlines.cancel(self._write_deadline)
            self._head_deadline = self._write_deadline = None
            self._guarded.guard.release(self._address)
            self._address = None
        super().connection_lost(exc)

    def _idle(self) -> bool:
        """Waiting for a request head: no request queued or being handled."""
        return not self._messages and (self._waiter is None or not self._waiter.done()) \
            and not self._request_in_progress

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._idle():
            self._guarded.guard.timed_out += 1
            log.debug("closing a connection from %s: no complete request head in time", self._address)
            self.force_close()

    def _write_timed_out(self) -> None:
        self._write_deadline = None
        self._guarded.guard.write_timed_out += 1
        log.debug("aborting a connection from %s: it took none of its answer for %.0f s", self._address,
                  self._guarded.guard.limits.write_timeout_s)
        if self.transport is not None:
            self.transport.abort()


class YoungGarbage:
    """The garbage collector's young generations, collected a few connections' objects at a time.

    CPython (3.11) starts a young collection when allocations outnumber deallocations by 700. Under connection
    churn they balance (a new connection's objects are made as a closed one's are freed), so the objects of
    connections that stay open for seconds pile up in the young generations by the ten thousand and are then
    traversed in one pause of 10-20 ms, a stall for every request waiting. Collected every ``batch`` new
    connections instead, each pause stays well under a millisecond."""

    def __init__(self, batch: int = YOUNG_GC_BATCH, older_every: int = 4) -> None:
        self._batch = batch
        self._older_every = older_every
        self._made = 0
        self._collections = 0

    def connection_made(self) -> None:
        self._made += 1
        if self._made % self._batch == 0:
            self._collections += 1
            gc.collect(1 if self._collections % self._older_every == 0 else 0)


class GuardedServer(web.Server):
    """aiohttp's server whose connections start as ``PendingConnection``s and go on as ``GuardedRequestHandler``s."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        limits = guard.limits
        self.deadlines = Deadlines(self._loop, tick_s=min(DEADLINE_TICK_S, limits.header_timeout_s / 10))
        self.pending: set[PendingConnection] = set()
        self.young = YoungGarbage()
        self.listeners_reset = False  # connections are accepted with SO_LINGER 0 (see _RESET_ON_CLOSE)

    def reset_on_close(self, listeners: Sequence[Any]) -> None:
        """Accept connections that reset on close until handed to aiohttp (``_RESET_ON_CLOSE``)."""
        for listener in listeners:
            _set_linger(listener, _RESET_ON_CLOSE)
        self.listeners_reset = True

    def __call__(self) -> PendingConnection:  # type: ignore[override]
        # asyncio calls the server as its protocol factory: every connection starts as a PendingConnection.
        return PendingConnection(self)

    def handler(self, address: str) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, address, loop=self._loop, **self._kwargs)

    def head_deadline(self, expire: Callable[[], None]) -> Deadline:
        spread = HEAD_DEADLINE_SPREAD * random.random()  # noqa: S311 (spreading load, not a secret)
        return self.deadlines.at(self._loop.time() + self.guard.limits.header_timeout_s * (1 - spread), expire)

    def write_deadline(self, expire: Callable[[], None]) -> Deadline:
        return self.deadlines.at(self._loop.time() + self.guard.limits.write_timeout_s, expire)

    def pre_shutdown(self) -> None:
        for pending in list(self.pending):
            pending.close()
        self.deadlines.close()
        super().pre_shutdown()


class Listener:
    """One listening socket, accepted from by the hub itself, at most ``ACCEPT_BATCH`` connections per turn of
    the loop; each accepted connection becomes a transport of the loop's own (``connect_accepted_socket``)."""

    def __init__(self, sock: socket.socket, server: GuardedServer) -> None:
        self.sock = sock
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._connecting: set[asyncio.Task[None]] = set()
        self._retry: asyncio.TimerHandle | None = None
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    self._server.guard.accept_failed(exc)
                    self._loop.remove_reader(self.sock.fileno())
                    self._retry = self._loop.call_later(ACCEPT_RETRY_S, self._resume)
                    return
                continue  # the client gave up before we took it (ECONNABORTED), or a firewall said no
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._server, conn)
        except OSError:  # gone already
            conn.close()

    def _resume(self) -> None:
        self._retry = None
        self._loop.add_reader(self.sock.fileno(), self._accept)

    async def close(self) -> None:
        """Stop accepting, close the socket, and let the connections being set up finish."""
        if self._retry is not None:
            self._retry.cancel()
        else:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        await asyncio.gather(*self._connecting, return_exceptions=True)



async def listening_sockets(host: str | None, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for host:port, as ``loop.create_server`` makes them (every address
    the host resolves to; "" or None: every interface)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site whose listening sockets the hub accepts from itself (``Listener``)."""

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, *, backlog: int) -> None:
        super().__init__(runner, host, port, backlog=backlog)
        self.listeners: list[Listener] = []

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site; TCPSite.start would make the loop's own server
        server = self._runner.server
        assert isinstance(server, GuardedServer)
        sockets = await listening_sockets(self._host, self._port, self._backlog)
        self.listeners = [Listener(sock, server) for sock in sockets]
        self._bound_port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for listener in self.listeners:
            await listener.close()
        self.listeners = []
        await super().stop()


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
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before announcing: a SIGTERM right after is a clean stop
        loop.add_signal_handler(signum, stop.set)
    await runner.setup()
    gc.collect()
    gc.freeze()  # what start-up made lives as long as the process: full collections need not traverse it again
    try:
        site = GuardedSite(runner, host, port, backlog=1024)
        await site.start()
        assert isinstance(runner.server, GuardedServer)
        runner.server.reset_on_close([listener.sock for listener in site.listeners])
        announce(", ".join(sorted(str(s.name) for s in runner.sites)))
        await stop.wait()
    finally:
        await runner.cleanup()
