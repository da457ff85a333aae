"""Loopback ports for the servers tests start, without the free-port-then-bind race.

Picking a free port (bind to 0, close, pass the number on) leaves a window before the server binds it in
which another process on a loaded machine can take it: a rare, unreproducible failure. Where the server can
bind port 0 itself and say which port it got (``djamms-hub serve --port 0`` logs ``hub listening: URL``, the
edge logs ``status page at URL``, aiohttp's TestServer and ``runner.addresses``), tests use that. Where the
port must be known before the server starts (a hub's ``public_url``, a server restarted on the same port, a
program given its ports on the command line, PostgreSQL), ``reserved_port()`` holds it instead.

It relies on Linux's SO_REUSEADDR rules (socket(7)): a socket bound with SO_REUSEADDR that never listens keeps
every other socket off the port (binds to port 0 and outgoing connections never pick it, a bind without
SO_REUSEADDR is refused), yet a server that sets SO_REUSEADDR itself, as the hub, aiohttp, asyncio, uvloop and
PostgreSQL all do, binds and listens on it beside the reservation. While no server listens, connecting is
refused: the reservation is also "a port nothing listens on" for tests of an unreachable server.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# What ``djamms-edge run`` logs once its status page listens (on the port its config names, or the one it got for 0).
STATUS_PAGE_AT = re.compile(r"status page at (http://127\.0\.0\.1:\d+)")


@contextmanager
def reserved_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port on ``host`` that only servers this test starts can bind, for as long as the context lasts."""
    with socket.socket() as hold:
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hold.bind((host, 0))
        yield int(hold.getsockname()[1])


def logged_status_url(log: Path) -> str | None:
    """The status page's URL from an edge daemon's log (the latest start's), or None before it listens."""
    found = STATUS_PAGE_AT.findall(log.read_text()) if log.exists() else []
    return str(found[-1]) if found else None
