"""Slow and greedy clients cannot take the hub down for everyone (issue 13, item 1).

A real ``djamms-hub serve`` with a low file-descriptor limit; the attacker is this process on 127.0.0.1,
the venue that must still be served comes from 127.0.0.2 (another loopback address).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from djamms_edge.hub.config import ConnectionsConfig
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
