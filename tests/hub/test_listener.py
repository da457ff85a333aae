"""hub/serving.py's Listener: the hub accepts from its listening socket itself, a few connections per turn."""

from __future__ import annotations

import asyncio
import socket
from typing import cast

from djamms_edge.hub.config import ConnectionsConfig
from djamms_edge.hub.serving import ACCEPT_BATCH, ConnectionGuard, GuardedServer, Listener, listening_sockets


class Accepted(asyncio.Protocol):
    def __init__(self, made: list[asyncio.BaseTransport]) -> None:
        self.made = made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)


class Server:
    """What a Listener uses of GuardedServer: the protocol factory and the guard."""

    def __init__(self) -> None:
        self.guard = ConnectionGuard(ConnectionsConfig())
        self.made: list[asyncio.BaseTransport] = []

    def __call__(self) -> Accepted:
        return Accepted(self.made)


async def settle() -> None:
    for _ in range(3):  # the connection's task, then connection_made (call_soon)
        await asyncio.sleep(0)


async def test_a_crowd_of_connections_is_accepted_a_few_per_turn_of_the_loop() -> None:
    """The connections a slow-client attack's cuts send back arrive together. One turn of the loop accepts at most
    ACCEPT_BATCH of them (libuv accepted all in one callback, while requests on open connections waited), and
    the rest are accepted on the next turns."""
    server = Server()
    [sock] = await listening_sockets("127.0.0.1", 0, 64)
    listener = Listener(sock, cast(GuardedServer, server))
    loop = asyncio.get_running_loop()
    loop.remove_reader(sock.fileno())  # this test turns the loop's wheel by hand first
    crowd = 3 * ACCEPT_BATCH + 1
    clients = [socket.create_connection(sock.getsockname()) for _ in range(crowd)]  # queued by the kernel
    try:
        seen = []
        for _ in range(4):
            listener._accept()  # what one readiness callback does
            await settle()
            seen.append(len(server.made))
        assert seen == [ACCEPT_BATCH, 2 * ACCEPT_BATCH, 3 * ACCEPT_BATCH, crowd]
        more = [socket.create_connection(sock.getsockname()) for _ in range(2)]
        clients += more
        loop.add_reader(sock.fileno(), listener._accept)  # and on its own
        for _ in range(50):
            if len(server.made) == crowd + 2:
                break
            await asyncio.sleep(0.01)
        assert len(server.made) == crowd + 2
        assert {t.get_extra_info("peername") for t in server.made} == {c.getsockname() for c in clients}
    finally:
        await listener.close()
        for transport in server.made:
            transport.close()
        for client in clients:
            client.close()


async def test_a_closed_listener_accepts_nothing_and_frees_its_port() -> None:
    server = Server()
    [sock] = await listening_sockets("127.0.0.1", 0, 64)
    address = sock.getsockname()
    listener = Listener(sock, cast(GuardedServer, server))
    await listener.close()
    try:
        socket.create_connection(address, timeout=1).close()
    except ConnectionRefusedError:
        pass
    else:
        raise AssertionError("the port still accepts connections")
    [again] = await listening_sockets("127.0.0.1", address[1], 64)  # SO_REUSEADDR: the port is free at once
    again.close()
    assert server.made == []
