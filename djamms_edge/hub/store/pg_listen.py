"""Cross-instance change notifications over PostgreSQL LISTEN/NOTIFY.

Every hub instance keeps one dedicated connection LISTENing on the hub's channel.
A store transaction that changes a venue calls ``pg_notify(channel, venue_id)``;
PostgreSQL delivers it at commit to every listener, so a feed subscriber on any
instance wakes within milliseconds of a change made on another.

A notification only says "venue X changed": subscribers then read the versioned
change log, so nothing is lost if notifications are. When the listening connection
drops, changes made meanwhile went unannounced: after reconnecting the listener
calls ``on_gap`` so every subscriber re-reads once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from djamms_edge.shared.tasks import TaskOwner

log = logging.getLogger(__name__)

CHANNEL = "djamms_hub_changes"
PING_INTERVAL_S = 10.0  # a silently dead TCP connection is noticed within this (plus the ping timeout)
PING_TIMEOUT_S = 5.0
RETRY_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)  # reconnect backoff; the last repeats


class ChangeListener:
    def __init__(self, url: str, on_change: Callable[[str], None], on_gap: Callable[[], None],
                 *, channel: str = CHANNEL) -> None:
        self._url = url
        self._on_change = on_change
        self._on_gap = on_gap
        self._channel = channel
        self._conn: Any = None
        self._lost = asyncio.Event()
        self._tasks = TaskOwner("pg-listen")

    @property
    def failed(self) -> asyncio.Event:
        return self._tasks.failed

    async def start(self) -> None:
        """Connect and LISTEN now (a hub that cannot listen must not start), then watch the connection."""
        await self._connect()
        self._tasks.start(self._supervise(), "supervise")

    async def close(self) -> None:
        await self._tasks.close()
        await self._disconnect()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            await conn.add_listener(self._channel, self._notified)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._terminated)
        self._lost.clear()
        self._conn = conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.remove_termination_listener(self._terminated)
            await conn.close(timeout=PING_TIMEOUT_S)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_change(payload)

    def _terminated(self, _conn: Any) -> None:
        self._lost.set()

    async def _supervise(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), timeout=PING_INTERVAL_S)
            except TimeoutError:
                try:
                    await self._conn.fetchval("SELECT 1", timeout=PING_TIMEOUT_S)
                    continue
                except Exception as exc:  # whatever broke the connection, the cure is a new one
                    log.warning("change listener: PostgreSQL connection unresponsive (%r)", exc)
            else:
                log.warning("change listener: PostgreSQL connection lost")
            await self._reconnect()

    async def _reconnect(self) -> None:
        await self._disconnect_quietly()
        attempt = 0
        while True:
            try:
                await self._connect()
            except Exception as exc:  # a listener that gives up would leave other instances' changes unseen
                if attempt == 0:
                    log.warning("change listener: reconnect failing (%r); retrying", exc)
                await asyncio.sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
                attempt += 1
                continue
            log.info("change listener: listening again after %d failed attempt(s)", attempt)
            self._on_gap()  # whatever changed while we were deaf went unannounced
            return

    async def _disconnect_quietly(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
