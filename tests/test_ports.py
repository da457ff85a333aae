"""tests/ports.py: the Linux behaviour reserved_port() relies on, checked on the machine the suite runs on."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.ports import reserved_port


def _server_socket(port: int) -> socket.socket:
    """A listening socket as the hub, aiohttp and PostgreSQL make one (SO_REUSEADDR before bind)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_a_reserved_port_refuses_connections_until_a_server_listens_on_it_and_again_after() -> None:
    with reserved_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        for _ in range(2):  # a server started, stopped and started again on the same port
            with _server_socket(port) as server, socket.create_connection(("127.0.0.1", port), timeout=2):
                server.accept()[0].close()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_nothing_else_binds_a_reserved_port() -> None:
    with reserved_port() as port:
        with socket.socket() as plain, pytest.raises(OSError) as refused:
            plain.bind(("127.0.0.1", port))
        assert refused.value.errno == errno.EADDRINUSE
        with _server_socket(port), socket.socket() as second, pytest.raises(OSError) as taken:  # one listener only
            second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            second.bind(("127.0.0.1", port))
            second.listen()
        assert taken.value.errno == errno.EADDRINUSE
