"""A durable outbox: what the edge must tell the hub survives outages and restarts.

Now playing, played and analysis results are written here first (in
SQLite, each with an idempotency key) and a single pump delivers them in order.
Delivery is at-least-once (a lost answer means a resend); the hub dedupes on the
key, so the effect is exactly once. A refused item (bad request, stale epoch) is
kept as ``rejected`` with the reason instead of blocking the line forever.

A message the disk refuses to store (full, read-only) is *held* in memory instead and delivered after the stored
ones, without bookkeeping: the hub hears what the box plays during a full disk too (not after a restart, which
loses what was held).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from djamms_edge.edge.sync.errors import HubRefused, HubUnavailable
from djamms_edge.edge.sync.lease import LeaseTiming, backoff
from djamms_edge.shared.sqlite import Database, is_storage_error

log = logging.getLogger(__name__)

Kind = Literal["now_playing", "played", "analysis", "device_error", "over_limit", "details"]
State = Literal["pending", "delivered", "rejected"]


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    key: str
    kind: Kind
    payload: dict[str, Any]
    epoch: int | None
    attempts: int
    created_ms: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboxItem:
        return cls(
            seq=row["seq"],
            key=row["key"],
            kind=row["kind"],
            payload=json.loads(row["payload"]),
            epoch=row["epoch"],
            attempts=row["attempts"],
            created_ms=row["created_ms"],
        )


Sender = Callable[[OutboxItem], Awaitable[None]]
"""Delivers one item; raises HubUnavailable (retry later) or HubRefused (never retry)."""


class Outbox:
    def __init__(
        self,
        db: Database,
        timing: LeaseTiming,
        *,
        keep_delivered: int = 1000,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._db = db
        self._timing = timing
        self._keep = keep_delivered
        self._clock = clock
        self._rng = rng
        self._wake = asyncio.Event()
        self.on_refused: Callable[[OutboxItem, HubRefused], None] | None = None
        self.down_since: float | None = None
        self._held: dict[str, OutboxItem] = {}  # key -> a message the disk refused to store, delivered from memory

    async def put(self, kind: Kind, key: str, payload: dict[str, Any], *, epoch: int | None = None) -> bool:
        """Queue one message; False if ``key`` was queued before (a repeat is a no-op, not a second message). A
        disk that refuses it: held in memory (``hold``), and the storage error raised all the same."""
        try:
            added = await self._db.write(lambda conn: self.put_in(conn, kind, key, payload, epoch=epoch))
        except Exception as exc:
            if is_storage_error(exc):
                self.hold(kind, key, payload, epoch=epoch)
            raise
        self.wake()
        return added

    def hold(self, kind: Kind, key: str, payload: dict[str, Any], *, epoch: int | None = None) -> None:
        """A message whose write the disk refused: delivered from memory after the stored ones."""
        if key not in self._held:
            self._held[key] = OutboxItem(-1, key, kind, payload, epoch, 0, int(self._clock() * 1000))
        self.wake()

    def put_in(
        self, conn: sqlite3.Connection, kind: Kind, key: str, payload: dict[str, Any], *, epoch: int | None = None
    ) -> bool:
        """``put`` inside a caller's write transaction (so a state change and its report commit together).

        Runs on the writer thread: the caller calls ``wake()`` once its transaction committed."""
        cursor = conn.execute(
            "INSERT OR IGNORE INTO outbox (key, kind, payload, epoch, created_ms) VALUES (?, ?, ?, ?, ?)",
            (key, kind, json.dumps(payload, separators=(",", ":")), epoch, int(self._clock() * 1000)),
        )
        return cursor.rowcount == 1

    def wake(self) -> None:
        """Try now (something was queued, or the hub is known to be back)."""
        self._wake.set()

    async def has(self, key: str) -> bool:
        """Whether ``key`` was ever queued (and not yet pruned), whatever became of it."""
        row = await self._db.read(lambda conn: conn.execute("SELECT 1 FROM outbox WHERE key = ?", (key,)).fetchone())
        return row is not None or key in self._held

    async def pending(self, limit: int = 100) -> list[OutboxItem]:
        def read(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute("SELECT * FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?", (limit,))
            return [OutboxItem.from_row(r) for r in rows]

        return await self._db.read(read)

    async def counts(self) -> dict[str, int]:
        def read(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT state, count(*) AS n FROM outbox GROUP BY state")
            return {"pending": 0, "delivered": 0, "rejected": 0} | {r["state"]: r["n"] for r in rows}

        counts = await self._db.read(read)
        return counts | {"pending": counts["pending"] + len(self._held)}

    async def _finish(self, item: OutboxItem, state: State, detail: str | None) -> None:
        if item.seq < 0:  # held in memory: nothing to record
            self._held.pop(item.key, None)
            return
        now_ms = int(self._clock() * 1000)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE outbox SET state = ?, detail = ?, done_ms = ?, attempts = attempts + 1 WHERE seq = ?",
                (state, detail, now_ms, item.seq),
            )
            # Keep a bounded tail of delivered items for the status page; rejected ones stay until read.
            conn.execute(
                "DELETE FROM outbox WHERE state = 'delivered' AND seq <= "
                "(SELECT seq FROM outbox WHERE state = 'delivered' ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (self._keep,),
            )

        await self._db.write(write)

    async def _count_attempt(self, item: OutboxItem) -> None:
        await self._db.write(
            lambda conn: conn.execute("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?", (item.seq,))
        )

    async def run(self, send: Sender) -> None:
        """Deliver forever, in order; back off with jitter while the hub is away, or while the disk refuses to
        record a delivery (full, read-only: the item is sent again later, and the hub takes it once by its key)."""
        failures = 0
        refused = 0
        while True:
            try:
                failures = await self._deliver_batch(send, failures)
                refused = 0
            except Exception as exc:
                if not is_storage_error(exc):
                    raise
                refused += 1
                await self._sleep(backoff(self._timing, refused, self._rng()))

    async def _deliver_batch(self, send: Sender, failures: int) -> int:
        """One batch of pending items (or a wait for one); the hub's failures in a row after it."""
        self._wake.clear()
        batch = await self.pending() + list(self._held.values())
        if not batch:
            await self._wake.wait()
            return failures
        for item in batch:
            try:
                await send(item)
            except HubUnavailable as exc:
                failures += 1
                if item.seq >= 0:
                    await self._count_attempt(item)
                if failures == 1:
                    self.down_since = self._clock()
                    log.warning("outbox: hub unavailable (%s); holding messages until it answers", exc)
                await self._sleep(backoff(self._timing, failures, self._rng()))
                break
            except HubRefused as exc:
                self._recovered(failures)
                failures = 0
                log.warning("outbox: hub refused %s %s: %s", item.kind, item.key, exc)
                await self._finish(item, "rejected", str(exc))
                if self.on_refused is not None:
                    self.on_refused(item, exc)
                continue
            self._recovered(failures)
            failures = 0
            await self._finish(item, "delivered", None)
        return failures

    def _recovered(self, failures: int) -> None:
        if failures and self.down_since is not None:
            log.info("outbox: hub answering again after %.0fs; delivering what waited", self._clock() - self.down_since)
            self.down_since = None

    async def _sleep(self, delay: float) -> None:
        # A wake() since the last attempt (hub back per the lease or the feed, a new message) cuts it short.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=delay)
