"""Heartbeats answered from memory: the hub's lease table, with the store as the source of truth.

A box beats every few seconds; answering each beat with a store write costs most of a heartbeat's time
(issue 14). Here a beat is answered from a table in this process's memory when, and only when, the store
would give the same answer, and what the beat says (liveness: its time, the player's position, the
box's report) is written to the store behind it, every ``flush_interval_ms`` or before anything that
reads it. Epochs are never written from here: every election (register, take-over, reconnect), release,
revocation and fenced write stays store-first, and a lease enters the table only from a beat the store
itself answered ``updated``.

Why a memory answer is the store's answer. The store answers a beat ``updated`` with epoch E while the
device's row is active at E, unexpired, and held by the asking process (or by none named). What can
change that, and why none of it can happen unseen while this table answers:

1. *Another device's take-over, or another process of this device reconnecting* (``rules.decide_register``):
   only once the row's stored ``last_heartbeat_ms`` is older than ``stale_after`` (or ``instance_grace``,
   for a beat naming its process). The stored value is never older than ``confirmed_ms``: the beat time
   of this process's last write to the row that SUCCEEDED and matched the row at epoch E. The table
   answers only while ``now - confirmed_ms`` is under HALF the shortest of stale_after, instance_grace and
   expire_after (``window_ms``), so an election anywhere needs a clock at least that far ahead of ours.
   A flush that fails (store down, partitioned, slow) does not move ``confirmed_ms``: within the window
   the table stops answering and beats take the store path, which answers the truth or 503 — never a
   remembered "you are master" past the window.
2. *A release or a revocation* (any instance, or the CLI): explicit acts, not timed. Here they go through
   ``invalidate`` before the store call; on another instance the store's change notification
   (PostgreSQL LISTEN) invalidates the venue's leases within milliseconds, and at the latest the next
   flush finds the row changed (its UPDATE is conditional on status, epoch and process) and drops the
   lease. Only a beat of a box that released (or whose token was revoked on another instance, which the
   credential check already accepts for up to 1 s) can meet that gap, and no fenced write passes it:
   fencing is the store's.
3. *Expiry*: ``expire_after`` is in the window's minimum.

A kill -9 of the hub loses at most the liveness not yet flushed (under ``flush_interval_ms``): the lease
looks that much older in the store; no epoch, no registration and no fenced write was ever held here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from djamms_edge.hub.store.base import (
    DeviceReport,
    HubStore,
    Liveness,
    PlayPosition,
    RegistryAnswer,
    RegistryTimings,
)

log = logging.getLogger(__name__)
FLUSH_INTERVAL_MAX_MS = 1000  # liveness reaches the store within this (less with short registry timings)

_Key = tuple[str, str]  # venue, device


@dataclass(slots=True)
class _Lease:
    epoch: int
    instance_id: str | None  # the row's process as a beat naming it left it; None: unknown (serve unnamed beats)
    confirmed_ms: int  # beat time of our last successful, matching write to the row
    valid: bool = True  # False once something may have changed the row: the next beat takes the store path
    beat_ms: int | None = None  # newest beat answered from memory, not yet written
    position: PlayPosition | None = None
    position_ms: int | None = None
    report: DeviceReport | None = None
    report_ms: int | None = None

    @property
    def dirty(self) -> bool:
        return self.beat_ms is not None  # a position or report only ever comes with a beat


class LeaseTable:
    def __init__(self, store: HubStore, timings: RegistryTimings, now_ms: Callable[[], int]) -> None:
        self.store = store
        self.timings = timings
        self.now_ms = now_ms
        shortest = min(timings.stale_ms, timings.expire_ms)
        self.window_ms = shortest // 2  # for beats naming no process
        self.window_named_ms = min(shortest, timings.instance_grace_ms) // 2  # for beats naming theirs
        self.flush_interval_ms = max(10, min(FLUSH_INTERVAL_MAX_MS, self.window_named_ms // 4 or self.window_ms // 4))
        self._leases: dict[_Key, _Lease] = {}
        self._generation = 0  # bumped at each invalidation
        self._flush_lock = asyncio.Lock()
        self._failing = False
        store.on_change(self.invalidate)

    # --- answering ---------------------------------------------------------------------------------

    def answer(self, venue_id: str, device_id: str, instance_id: str | None, position: PlayPosition | None,
               report: DeviceReport | None, now_ms: int) -> RegistryAnswer | None:
        """The store's answer to this beat, from memory, or None: take the store path."""
        lease = self._leases.get((venue_id, device_id))
        if lease is None or not lease.valid:
            return None
        if instance_id is None:
            window = self.window_ms
        elif instance_id == lease.instance_id:
            window = self.window_named_ms
        else:
            return None  # another process, or the row's process unknown: the store decides (second_process)
        if not 0 <= now_ms - lease.confirmed_ms < window:
            return None
        lease.beat_ms = now_ms if lease.beat_ms is None else max(lease.beat_ms, now_ms)
        if position is not None:
            lease.position, lease.position_ms = position, now_ms
        if report is not None:
            lease.report, lease.report_ms = report, now_ms
        return RegistryAnswer("updated", lease.epoch)

    async def beat_through_store(self, venue_id: str, device_id: str, now_ms: int, position: PlayPosition | None,
                                 instance_id: str | None) -> RegistryAnswer:
        """The store's own answer; an ``updated`` one (not overtaken by an invalidation) admits the lease."""
        generation = self._generation
        answer = await self.store.heartbeat(venue_id, device_id, now_ms, self.timings, position, instance_id)
        key = (venue_id, device_id)
        if answer.status != "updated":
            lease = self._leases.get(key)
            if lease is not None:
                lease.valid = False
        elif self._generation == generation:
            lease = self._leases.get(key)
            if lease is None or lease.epoch != answer.epoch:
                # A lease of an older epoch loses its unwritten beats: the store would not take them anyway.
                self._leases[key] = _Lease(answer.epoch, instance_id, now_ms)
            else:
                lease.confirmed_ms = max(lease.confirmed_ms, now_ms)
                lease.instance_id = instance_id if instance_id is not None else lease.instance_id
                lease.valid = True
        return answer

    def invalidate(self, venue_id: str | None) -> None:
        """Something may have changed ``venue_id``'s registry (every venue's for None): no memory answers
        until the store has answered a beat again. Unwritten liveness is still flushed (conditionally)."""
        self._generation += 1  # a store-path beat in flight now does not admit its lease
        for (venue, _), lease in self._leases.items():
            if venue_id is None or venue == venue_id:
                lease.valid = False

    # --- writing behind ----------------------------------------------------------------------------

    async def flush(self, venue_id: str | None = None) -> None:
        """Write the unwritten liveness (of ``venue_id``, or all) now; a lease whose row changed is dropped.

        Raises what the store raised; the liveness stays pending and ``confirmed_ms`` does not move."""
        async with self._flush_lock:
            taken: list[tuple[_Key, _Lease, Liveness]] = []
            for key, lease in self._leases.items():
                if (venue_id is None or key[0] == venue_id) and lease.beat_ms is not None:
                    taken.append((key, lease, self._liveness(key, lease, lease.beat_ms)))
                    lease.beat_ms = lease.position = lease.position_ms = lease.report = lease.report_ms = None
            now_ms = self.now_ms()
            for key in [k for k, lease in self._leases.items()
                        if not lease.dirty and (not lease.valid or now_ms - lease.confirmed_ms >= self.window_ms)]:
                del self._leases[key]  # can answer nothing and has nothing to write: the store path re-admits it
            if not taken:
                return
            try:
                matched = await self.store.write_liveness([item for _, _, item in taken], self.timings)
            except BaseException:
                for _, lease, item in taken:  # keep them for the next flush (newer beats win)
                    self._restore(lease, item)
                raise
            for (key, lease, item), ok in zip(taken, matched, strict=True):
                if not ok:
                    if self._leases.get(key) is lease:
                        del self._leases[key]  # released, taken over, revoked or another process: store path
                else:
                    lease.confirmed_ms = max(lease.confirmed_ms, item.beat_ms)

    async def flush_quietly(self, venue_id: str | None = None) -> None:
        """``flush`` before something reads or decides on the registry; a failing store is logged (the reader
        then sees the store without the unwritten beats, as if they were lost)."""
        try:
            await self.flush(venue_id)
        except Exception as exc:
            self._failed(exc)
        else:
            self._recovered()

    async def run(self) -> None:
        """Flush every ``flush_interval_ms`` until cancelled."""
        while True:
            await asyncio.sleep(self.flush_interval_ms / 1000)
            await self.flush_quietly()

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            log.warning("heartbeats: writing liveness to the store failed (%r); beats take the store path "
                        "within %.1f s until it works again", exc, self.window_named_ms / 1000)
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            log.info("heartbeats: liveness reaches the store again")
        self._failing = False

    @staticmethod
    def _liveness(key: _Key, lease: _Lease, beat_ms: int) -> Liveness:
        return Liveness(key[0], key[1], lease.epoch, lease.instance_id, beat_ms, lease.position,
                        lease.position_ms, lease.report, lease.report_ms)

    @staticmethod
    def _restore(lease: _Lease, item: Liveness) -> None:
        lease.beat_ms = item.beat_ms if lease.beat_ms is None else max(lease.beat_ms, item.beat_ms)
        if item.position is not None and lease.position is None:
            lease.position, lease.position_ms = item.position, item.position_ms
        if item.report is not None and lease.report is None:
            lease.report, lease.report_ms = item.report, item.report_ms
