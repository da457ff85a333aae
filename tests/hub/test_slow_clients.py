"""Slow and greedy clients cannot take the hub down for everyone (issue 13, item 1).

A real ``djamms-hub serve`` with a low file-descriptor limit; the attacker is this process on 127.0.0.1,
the venue that must still be served comes from 127.0.0.2 (another loopback address).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from djamms_edge.hub.config import ConnectionsConfig
from djamms_edge.hub.serving import GuardedRunner, GuardedServer, YoungGarbage
from tests.hub.conftest import HubFactory, hub_config
from tests.hub.served import hub_config_file, serving

HALF_A_REQUEST = b"POST /api/v1/venues/v/requests HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"


class SlowClient:
    """A connection that sent half a request head and then one header byte now and then."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.closed_at: float | None = None

    async def trickle(self, every_s: float) -> None:
        try:
            while not self.reader.at_eof():
                self.writer.write(b"X")
                await self.writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.reader.read(1), every_s)  # b"" once the hub closed it
        except OSError:
            pass
        self.closed_at = time.monotonic()


async def open_slow(url: str, count: int) -> list[SlowClient]:
    parts = urlsplit(url)
    clients = []
    for _ in range(count):
        try:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port, local_addr=("127.0.0.1", 0))
            writer.write(HALF_A_REQUEST)
            await writer.drain()
        except OSError:
            continue  # refused before we could even write: that is the hub defending itself
        clients.append(SlowClient(reader, writer))
    return clients


async def healthz_from_another_address(url: str) -> tuple[int, float]:
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as http, \
            http.get(url + "/healthz") as resp:
        return resp.status, time.monotonic() - started


async def test_many_slow_connections_from_one_address_leave_the_hub_healthy(tmp_path: Path) -> None:
    config = hub_config_file(tmp_path, "[hub.connections]\nheader_timeout_s = 2.0\nmax_per_address = 50\n")
    # 200 descriptors: without a cap, 300 slow connections would take every one of them.
    async with serving(config, nofile=200) as hub:
        clients = await open_slow(hub.url, 300)
        attack_started = time.monotonic()  # every connection is open (or was refused) by now
        tasks = [asyncio.create_task(c.trickle(0.5)) for c in clients]
        try:
            status, took = await healthz_from_another_address(hub.url)
            assert status == 200 and took < 2.0
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        finally:
            for task in tasks:
                task.cancel()
            for client in clients:
                client.writer.close()
        closed_after = [c.closed_at - attack_started for c in clients if c.closed_at is not None]
        assert len(closed_after) == len(clients)
        # The 50 the hub admitted are closed at the header deadline (2 s), the rest at once.
        assert sorted(closed_after)[-1] < 2.0 + 3.0
        assert sum(1 for t in closed_after if t < 1.0) >= len(clients) - 50
        status, _ = await healthz_from_another_address(hub.url)
        assert status == 200
        log = "".join(hub.log)
        assert log.count("refusing connections from 127.0.0.1") == 1 and "Traceback" not in log


async def test_running_out_of_descriptors_is_logged_once_per_episode(tmp_path: Path) -> None:
    config = hub_config_file(tmp_path, "[hub.connections]\nheader_timeout_s = 3.0\nmax_per_address = 0\n")
    async with serving(config, nofile=80) as hub:
        clients = await open_slow(hub.url, 150)  # the kernel queues what the hub cannot accept
        await asyncio.sleep(4.0)  # asyncio retries a failed accept every second
        for client in clients:
            client.writer.close()
        deadline = time.monotonic() + 15
        while "accepting connections again" not in "".join(hub.log) and time.monotonic() < deadline:
            status, _ = await healthz_from_another_address(hub.url)
            await asyncio.sleep(0.2)
        status, _ = await healthz_from_another_address(hub.url)
        assert status == 200
        log = "".join(hub.log)
        assert log.count("cannot accept connections") == 1, log
        assert "accepting connections again after" in log and "Traceback" not in log


async def test_a_body_trickled_too_slowly_is_refused_with_408(start_hub: HubFactory) -> None:

    async with start_hub(config=hub_config(connections=ConnectionsConfig(body_timeout_s=0.5))) as hub:
        parts = urlsplit(hub.url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(b"POST /api/v1/auth/verify HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"secret\": ")
        await writer.drain()
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(4096), timeout=5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"Connection: close" in answer
        assert time.monotonic() - started < 3


async def test_one_token_holds_a_bounded_number_of_feed_sockets(start_hub: HubFactory) -> None:

    async with start_hub(config=hub_config(connections=ConnectionsConfig(feed_sockets_per_token=2))) as hub:
        venue = await hub.venue()
        headers = hub.device(venue, "box-1")
        feed = f"{hub.url}/api/v1/venues/{venue}/feed"
        first = await hub.http.ws_connect(feed, headers=headers)
        second = await hub.http.ws_connect(feed, headers=headers)
        async with hub.http.get(feed, headers={**headers, "Connection": "Upgrade", "Upgrade": "websocket",
                                               "Sec-WebSocket-Version": "13",
                                               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as refused:
            assert refused.status == 429 and "feed sockets" in (await refused.json())["error"]
        other_box = await hub.http.ws_connect(feed, headers=hub.device(venue, "box-2"))  # its own budget
        await first.close()
        await asyncio.sleep(0.2)
        third = await hub.http.ws_connect(feed, headers=headers)  # a closed socket frees its place
        for ws in (second, other_box, third):
            await ws.close()


async def raw_connection(url: str, receive_buffer: int | None = None) -> socket.socket:
    """A non-blocking socket to the hub from 127.0.0.1, its receive buffer shrunk before it connects if asked."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setblocking(False)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # the window the hub may fill
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    return sock


async def read_until_closed(sock: socket.socket, within_s: float, pause_s: float = 0.0,
                            enough: float = float("inf")) -> tuple[int, bool]:
    """Bytes read until the hub closed the connection (or ``within_s`` passed, or ``enough`` bytes came), and
    whether it did close it."""
    loop = asyncio.get_running_loop()
    received = 0
    deadline = time.monotonic() + within_s
    try:
        while (left := deadline - time.monotonic()) > 0 and received < enough:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 32768), left)
            if not chunk:
                return received, True
            received += len(chunk)
            await asyncio.sleep(pause_s)
    except TimeoutError:
        return received, False
    except ConnectionResetError:
        return received, True
    return received, False


OPENAPI = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: hub\r\n\r\n"


async def test_a_client_that_never_reads_its_answers_is_dropped(tmp_path: Path) -> None:
    config = hub_config_file(tmp_path, "[hub.connections]\nwrite_timeout_s = 1.0\n")
    async with serving(config) as hub, aiohttp.ClientSession() as http:
        async with http.get(hub.url + "/api/v1/openapi.json") as resp:
            answer_bytes = len(await resp.read()) + 200  # with its head: roughly
        loop = asyncio.get_running_loop()
        requests = 200  # ~6 MB of answers: more than the kernel's buffers hold, so the hub's own buffer fills
        never_reads = await raw_connection(hub.url, receive_buffer=4096)
        reads_slowly = await raw_connection(hub.url, receive_buffer=4096)
        try:
            await loop.sock_sendall(never_reads, OPENAPI * requests)
            await loop.sock_sendall(reads_slowly, OPENAPI * 20)
            # A slow but steady reader is not what the deadline is for: it gets every answer.
            everything = 20 * (answer_bytes - 200)
            got, closed = await read_until_closed(reads_slowly, within_s=20, pause_s=0.02, enough=everything)
            assert got >= everything and not closed
            status, took = await healthz_from_another_address(hub.url)
            assert status == 200 and took < 1.0
            await asyncio.sleep(2.0)  # the write deadline (1 s) has passed by now
            got, closed = await read_until_closed(never_reads, within_s=5)
            assert closed, "the hub still holds a connection whose answers nobody reads"
            assert got < requests * answer_bytes // 2  # it was cut off, not served to the end
        finally:
            never_reads.close()
            reads_slowly.close()
        status, _ = await healthz_from_another_address(hub.url)
        assert status == 200 and "Traceback" not in "".join(hub.log)


async def test_pending_heads_are_handed_to_aiohttp_whole(tmp_path: Path) -> None:
    """A head in pieces, pipelined requests, garbage and a slow second head on a kept-alive connection."""
    config = hub_config_file(tmp_path, "[hub.connections]\nheader_timeout_s = 1.5\n")
    async with serving(config) as hub:
        loop = asyncio.get_running_loop()
        pieces = await raw_connection(hub.url)
        for piece in (b"GET /hea", b"lthz HTTP/1.1\r\nHo", b"st: hub\r", b"\n",
                      b"\r\nGET /livez HTTP/1.1\r\nHost: hub\r\n\r\n"):  # and a pipelined second request
            await loop.sock_sendall(pieces, piece)
            await asyncio.sleep(0.05)
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 2:
            chunk = await asyncio.wait_for(loop.sock_recv(pieces, 65536), 5)
            assert chunk, answers
            answers += chunk
        # Kept alive: the next head must come whole within the deadline too.
        await loop.sock_sendall(pieces, b"GET /healthz HTTP/1.1\r\nHost")
        started = time.monotonic()
        _, closed = await read_until_closed(pieces, within_s=5)
        assert closed and 1.5 * 0.5 - 0.1 < time.monotonic() - started < 1.5 + 0.5
        pieces.close()

        for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"hello there\r\n"):
            sock = await raw_connection(hub.url)
            started = time.monotonic()
            await loop.sock_sendall(sock, garbage)  # not HTTP/1: aiohttp refuses it at once, no head deadline
            answer = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
            assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request") and time.monotonic() - started < 1.0, answer
            sock.close()

        # Slow heads still open when the hub stops do not hold up its exit (``serving`` expects exit 0 in 15 s).
        await open_slow(hub.url, 20)


def time_wait_ports(local_port: int) -> set[int]:
    """Remote ports of this machine's IPv4 TCP sockets in TIME_WAIT whose local port is ``local_port``."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if state == "06" and int(local.split(":")[1], 16) == local_port:
            ports.add(int(remote.split(":")[1], 16))
    return ports


async def test_a_head_cut_at_its_deadline_is_reset_and_leaves_the_hub_no_time_wait(tmp_path: Path) -> None:
    """A slow client cut at the head deadline is reset, not closed politely: nothing is lost (the hub never
    answered it), the client learns at once, and the hub keeps no TIME_WAIT entry for it (an attacker who
    reconnects at once would otherwise leave ~40,000 of them, a big share of a small box's table)."""
    config = hub_config_file(tmp_path, "[hub.connections]\nheader_timeout_s = 1.0\n")
    async with serving(config) as hub:
        loop = asyncio.get_running_loop()
        socks = [await raw_connection(hub.url) for _ in range(5)]
        client_ports = {sock.getsockname()[1] for sock in socks}
        for sock in socks:
            await loop.sock_sendall(sock, HALF_A_REQUEST)
        outcomes: list[bytes | str] = []
        for sock in socks:
            try:
                outcomes.append(await asyncio.wait_for(loop.sock_recv(sock, 100), 5))
            except ConnectionResetError:
                outcomes.append("reset")
            sock.close()
        assert outcomes == ["reset"] * 5
        assert not time_wait_ports(int(urlsplit(hub.url).port or 0)) & client_ports
        # A whole request is answered whole, also when the hub closes the connection while much of the answer
        # is still on its way (a reset would throw that away): the reset is only for cut heads.
        reader = await raw_connection(hub.url, receive_buffer=4096)
        await loop.sock_sendall(reader, OPENAPI.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        await asyncio.sleep(0.5)  # the hub has written it all and closed by now; most of it is still in flight
        answer = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(reader, 65536), 5):
            answer += chunk
        reader.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert head.startswith(b"HTTP/1.1 200") and len(body) == length > 16384
        status, _ = await healthz_from_another_address(hub.url)
        assert status == 200 and "Traceback" not in "".join(hub.log)


@contextlib.asynccontextmanager
async def guarded(app: web.Application, limits: ConnectionsConfig) -> AsyncIterator[tuple[str, GuardedServer]]:
    """``app`` served on 127.0.0.1 through the hub's GuardedRunner, in this process (to look inside the server)."""
    runner = GuardedRunner(app, limits, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        server = runner.server
        assert isinstance(server, GuardedServer)
        yield str(site.name), server
    finally:
        await runner.cleanup()


async def test_half_sent_heads_cost_no_request_handler_until_they_are_whole() -> None:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/api/v1/venues/v/requests", hello)  # where HALF_A_REQUEST goes
    async with guarded(app, ConnectionsConfig(header_timeout_s=30)) as (url, server):
        clients = await open_slow(url, 100)
        await asyncio.sleep(0.2)
        assert len(server.pending) == 100 and server.connections == []  # no aiohttp handler, parser or task
        answers = []
        for client in clients[:3]:  # the rest of the head: handed to aiohttp, with what came before
            client.writer.write(b"\r\n")
        for client in clients[:3]:
            answers.append(await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5))
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
        assert len(server.pending) == 97 and len(server.connections) == 3
        for client in clients:
            client.writer.close()


async def test_a_websocket_whose_client_never_reads_is_dropped_at_the_write_deadline() -> None:
    sent = 0

    async def flood(request: web.Request) -> web.WebSocketResponse:
        nonlocal sent
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        with contextlib.suppress(ConnectionError):
            while not ws.closed:
                await ws.send_bytes(b"x" * 65536)  # waits while the transport is paused
                sent += 65536
        return ws

    app = web.Application()
    app.router.add_get("/ws", flood)
    async with guarded(app, ConnectionsConfig(write_timeout_s=0.5)) as (url, server):
        loop = asyncio.get_running_loop()
        sock = await raw_connection(url, receive_buffer=4096)
        await loop.sock_sendall(sock, b"GET /ws HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        started = time.monotonic()
        for _ in range(100):  # the socket is never read: the flood stalls, the deadline (0.5 s) ends it
            if server.guard.write_timed_out:
                break
            await asyncio.sleep(0.1)
        assert server.guard.write_timed_out == 1 and time.monotonic() - started < 5
        got, closed = await read_until_closed(sock, within_s=5)
        sock.close()
        assert closed and got < sent + 65536 and server.connections == []


def test_the_young_generation_is_collected_every_batch_of_new_connections() -> None:
    collected: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collected.append(info["generation"])

    young = YoungGarbage(batch=3, older_every=2)
    gc.callbacks.append(seen)
    try:
        for _ in range(12):
            young.connection_made()
    finally:
        gc.callbacks.remove(seen)
    assert collected[-4:] == [0, 1, 0, 1] and len(collected) >= 4  # (others: the collector's own, if any)
