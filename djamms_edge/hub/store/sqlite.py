"""The hub store on SQLite: all of the hub's SQL lives here.

Each public method is one call to ``Database.write`` (one ``BEGIN IMMEDIATE``
transaction on the single writer thread) or ``Database.read``, so every
check-then-write rule is atomic. Change notifications are in-process: one hub
process owns the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from djamms_edge.hub import fastjson
from djamms_edge.hub.ratelimit import LocalRateLimiter, RateLimiter
from djamms_edge.hub.rules import (
    admins_duration,
    decide_register,
    decide_release,
    mark_key,
    moved,
    shared_by_agreement,
)
from djamms_edge.hub.store import executions_sql
from djamms_edge.hub.store.base import (
    DAY_MS,
    KEEP_DEVICE_ERRORS_MS,
    KEEP_WRITES_MS,
    PRUNE_EVERY,
    REFUSABLE_STATUSES,
    Analysis,
    CatalogTrack,
    Change,
    ChangeBatch,
    Conflict,
    DeviceError,
    DeviceRecord,
    DeviceReport,
    InvalidMagicLink,
    Json,
    KnownDuration,
    Liveness,
    MarkKind,
    MasterInfo,
    MasterWrite,
    NowPlaying,
    Offsets,
    PaidRequest,
    PairingState,
    Playlist,
    PlayPosition,
    PlayReport,
    QueueEntry,
    QueueSnapshot,
    Refusal,
    RegistryAnswer,
    RegistryTimings,
    RequestOutcome,
    RequestRecord,
    RequestRules,
    RequestStatus,
    ScheduleSlot,
    Song,
    StaleEpoch,
    StoreUnavailable,
    UnknownEntry,
    UnknownPlaylist,
    UnknownRequest,
    UnknownVenue,
    User,
    UserNotFound,
    Venue,
    VenueRules,
    VenueSchedule,
    VenueSettings,
    WriteResult,
)
from djamms_edge.hub.store.changes import ChangeNews
from djamms_edge.hub.store.rows import (
    CATALOG_FOR_VENUE,
    KNOWN_DURATIONS,
    KNOWN_SONG,
    NOW_PLAYING,
    PENDING_SONGS,
    VENUE_COLUMNS,
    catalog_track_of,
    device_error_json,
    device_of,
    entry_of,
    history_json,
    known_duration_of,
    mark_of,
    master_of,
    now_playing_of,
    playlist_of,
    report_columns,
    request_of,
    second_process_refused,
    settings_of,
    slot_of,
    track_at,
    track_of,
    user_of,
    venue_analysis_of,
    venue_of,
)
from djamms_edge.hub.store.sqlite_executions import SqliteExecutions
from djamms_edge.hub.store.sqlite_paid import PaidStep, paid_step, submit_paid_steps
from djamms_edge.hub.store.sqlite_payments import SqlitePayments
from djamms_edge.hub.store.sqlite_schema import migrations
from djamms_edge.shared.sqlite import Database, Synchronous
from djamms_edge.shared.tasks import TaskOwner

T = TypeVar("T")
log = logging.getLogger(__name__)
# SQLite primary result codes that mean the store (disk, file, lock), not the request, is in trouble: BUSY,
# LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL. The hub answers 503, never 500.
STORE_TROUBLE_CODES = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15})
OTHER_WRITERS_POLL_S = 1.0  # how soon another process's write to the file reaches this hub's feeds and caches


def _store_trouble(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and isinstance(code, int) and code & 0xFF in STORE_TROUBLE_CODES


# The writer thread lets go of the GIL inside SQLite and needs it back a handful of times per batch. Under load the
# event loop's thread is always busy, and CPython lets a waiting thread in only after its switch interval (5 ms):
# a batch of ~25 paid requests took ~12 ms of which ~3 were work, and the writer, not the CPU, set the pace.
# While batches are being written the interval is 0.2 ms (bench/hub_load.py: paid requests 0.36x -> 0.43x of
# bare aiohttp); otherwise it is left alone, so nothing else (heartbeats answered from memory) pays for switches.
WRITING_SWITCH_INTERVAL_S = 0.0002
_writing = {"stores": 0, "interval_before": 0.005}


@contextlib.contextmanager
def _writer_gets_the_gil_sooner() -> Iterator[None]:
    if _writing["stores"] == 0:
        _writing["interval_before"] = sys.getswitchinterval()
        sys.setswitchinterval(WRITING_SWITCH_INTERVAL_S)
    _writing["stores"] += 1
    try:
        yield
    finally:
        _writing["stores"] -= 1
        if _writing["stores"] == 0:
            sys.setswitchinterval(_writing["interval_before"])


@dataclass(frozen=True, slots=True)
class _Pending:
    """A write waiting for its batch: ``fn``, or a paid request's row (sqlite_paid: many of them in one go)."""

    fn: Callable[[sqlite3.Connection], Any] | None
    future: asyncio.Future[Any]
    durable: bool
    paid_step: PaidStep | None = None


class SqliteStore(ChangeNews, SqlitePayments, SqliteExecutions):
    def __init__(self, path: Path, *, retain_changes: int = 1000) -> None:
        self.path = path
        # FULL: a paid request the hub has acknowledged must survive a power cut (heartbeats opt out, _write).
        self._db = Database(path, migrations, synchronous="FULL")
        self._retain = retain_changes
        ChangeNews.__init__(self)
        self._pending: list[_Pending] = []
        self._trouble: str | None = None  # the last write's store error, until a write succeeds
        self._committer: asyncio.Task[None] | None = None  # runs the pending writes, batch after batch
        self._tasks = TaskOwner(f"sqlite-store:{path.name}")

    async def open(self) -> None:
        await self._db.open()
        self._tasks.start(self._watch_other_writers(await self._db.data_version()), "other-writers")

    async def close(self) -> None:
        await self._tasks.close()
        if self._committer is not None:
            await self._committer  # the writes already queued are run (and answered) first
        await self._db.close()

    async def _watch_other_writers(self, version: int) -> None:
        """Another process's commits to the file (``djamms-hub payments reconcile``, the admin commands) wake this
        hub's feeds, lease table and rule caches, as PostgreSQL's NOTIFY does: SQLite tells no process of another's
        writes, so the writer connection's ``data_version`` is read every ``OTHER_WRITERS_POLL_S``."""
        while True:
            await asyncio.sleep(OTHER_WRITERS_POLL_S)
            try:
                now = await self._db.data_version()
            except sqlite3.Error:
                continue  # store trouble: the writes report it; look again next time
            if now != version:
                version = now
                self._announce_everything()  # what changed is unknown: every venue looks again

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run ``fn`` in its own savepoint, batched with the writes queued meanwhile into one transaction.

        Group commit: under load, dozens of heartbeats share one BEGIN IMMEDIATE/COMMIT and one
        trip to the writer thread, yet each still sees the effects of those before it and fails
        alone. Batches are run by one task of the store's own, so a cancelled caller strands no other write
        (its own write may still happen, as it might have with the caller waiting).
        A batch of only non-``durable`` writes (heartbeats: losing one to a power cut costs nothing)
        commits without waiting for the disk; any durable write in a batch makes it sync."""
        return cast(T, await self._enqueue(fn, durable=durable))

    async def _enqueue(self, fn: Callable[[sqlite3.Connection], Any] | None, *, durable: bool,
                       paid_step: PaidStep | None = None) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(fn, future, durable, paid_step))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending(), name=f"sqlite-commits-{self.path.name}")
        return await future

    async def _commit_pending(self) -> None:
        """The writes queued while a batch runs form the next batch. One task, not a lock taken by each caller:
        the answers of a batch go out in one turn of the event loop, not one turn per waiter."""
        with _writer_gets_the_gil_sooner():
            while self._pending:
                batch, self._pending = self._pending, []
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Pending]) -> None:
        level: Synchronous = "FULL" if any(p.durable for p in batch) else "NORMAL"
        try:
            outcomes = await self._db.write(lambda conn: _run_writes(conn, batch), synchronous=level)
        except Exception as exc:  # the commit itself failed: nothing in the batch happened
            outcomes = [(False, exc)] * len(batch)
        if any(ok for ok, _ in outcomes):
            self._recovered()
        for future, (ok, value) in zip((p.future for p in batch), outcomes, strict=True):
            if future.cancelled():  # its caller stopped waiting
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(self._unavailable(value) if _store_trouble(value) else value)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._db.read(fn)
        except sqlite3.Error as exc:
            if _store_trouble(exc):
                raise self._unavailable(exc) from exc
            raise

    def trouble(self) -> str | None:
        return self._trouble

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        """The disk or file is in trouble (full, I/O error, read-only, locked): 503 for every caller."""
        if self._trouble is None:
            log.error("SQLite store %s in trouble: %s; answering 503 until a write succeeds", self.path, exc)
        self._trouble = str(exc)
        return StoreUnavailable(f"SQLite store unavailable: {exc}")

    def _recovered(self) -> None:
        if self._trouble is not None:
            log.warning("SQLite store %s writes again (after: %s)", self.path, self._trouble)
            self._trouble = None

    def rate_limiter(self, scope: str, capacity: int, per_seconds: float) -> RateLimiter:
        return LocalRateLimiter(capacity, per_seconds)  # one hub process per SQLite file: local is shared

    # --- venues and users ------------------------------------------------------------------------

    async def create_venue(self, venue_id: str, name: str, now_ms: int, timezone: str = "UTC") -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO venues (venue_id, name, timezone, created_at_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (venue_id, name, timezone, now_ms),
            )
            return cur.rowcount == 1

        return await self._write(tx)

    async def get_venue(self, venue_id: str) -> Venue | None:
        def read(conn: sqlite3.Connection) -> Venue | None:
            row = conn.execute(f"SELECT {VENUE_COLUMNS} FROM venues WHERE venue_id = ?", (venue_id,)).fetchone()
            return None if row is None else venue_of(row)

        return await self._read(read)

    async def list_venues(self) -> list[Venue]:
        def read(conn: sqlite3.Connection) -> list[Venue]:
            return [venue_of(r) for r in conn.execute(f"SELECT {VENUE_COLUMNS} FROM venues ORDER BY venue_id")]

        return await self._db.read(read)

    async def upsert_user(self, user: User, now_ms: int, *, only_staff_of: str | None = None) -> User:
        def tx(conn: sqlite3.Connection) -> User:
            conn.execute(
                "INSERT INTO users (user_id, email, venue_id, role, autoplay, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (email) DO UPDATE SET venue_id = excluded.venue_id, role = excluded.role,"
                " token_version = token_version"
                " + (venue_id IS NOT excluded.venue_id OR role IS NOT excluded.role)"
                " WHERE ?7 IS NULL OR (role = 'staff' AND (venue_id IS NULL OR venue_id = ?7))",
                (user.user_id, user.email, user.venue_id, user.role, int(user.autoplay), now_ms, only_staff_of),
            )
            found = _user_by_email(conn, user.email)
            assert found is not None
            return found

        return await self._write(tx)

    async def get_user(self, user_id: str) -> User | None:
        def read(conn: sqlite3.Connection) -> User | None:
            row = conn.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
            return None if row is None else user_of(row)

        return await self._read(read)

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._db.read(lambda conn: _user_by_email(conn, email))

    async def list_users(self, venue_id: str | None) -> list[User]:
        def read(conn: sqlite3.Connection) -> list[User]:
            rows = conn.execute(
                "SELECT * FROM users WHERE ? IS NULL OR venue_id = ? ORDER BY email", (venue_id, venue_id)
            ).fetchall()
            return [user_of(r) for r in rows]

        return await self._db.read(read)

    async def remove_user(self, user_id: str, *, only_staff_of: str | None = None) -> bool:
        return await self._write(lambda conn: conn.execute(
            f"DELETE FROM users WHERE user_id = ?1 AND {_ONLY_STAFF_OF}", (user_id, only_staff_of)).rowcount == 1)

    async def bump_user_tokens(self, user_id: str, *, only_staff_of: str | None = None) -> int | None:
        def tx(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "UPDATE users SET token_version = token_version + 1"
                f" WHERE user_id = ?1 AND {_ONLY_STAFF_OF} RETURNING token_version",
                (user_id, only_staff_of),
            ).fetchone()
            return None if row is None else int(row[0])

        return await self._write(tx)

    # --- device credentials, reports and pairing -------------------------------------------------

    async def device_token_version(self, venue_id: str, device_id: str) -> int | None:
        def read(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT token_version, revoked FROM devices WHERE venue_id = ? AND device_id = ?", (venue_id, device_id)
            ).fetchone()
            if row is None:
                return 0
            return None if row["revoked"] else int(row["token_version"])

        return await self._db.read(read)

    async def reissue_device(self, venue_id: str, device_id: str, now_ms: int) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            _require_venue(conn, venue_id)
            return _reissue_device(conn, venue_id, device_id, now_ms)

        return await self._write(tx)

    async def revoke_device(self, venue_id: str, device_id: str, now_ms: int) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            _require_venue(conn, venue_id)
            known = conn.execute(
                "UPDATE devices SET token_version = token_version + 1, revoked = 1"
                " WHERE venue_id = ? AND device_id = ? RETURNING 1", (venue_id, device_id),
            ).fetchone() is not None
            if not known and conn.execute(
                "SELECT 1 FROM players WHERE venue_id = ? AND device_id = ?", (venue_id, device_id)
            ).fetchone() is None:
                return False
            if not known:  # a box on a hand-copied token that never reported: revoke it all the same
                conn.execute(
                    "INSERT INTO devices (venue_id, device_id, token_version, revoked, created_at_ms)"
                    " VALUES (?, ?, 1, 1, ?)", (venue_id, device_id, now_ms),
                )
            if conn.execute(
                "UPDATE players SET status = 'offline', expires_at_ms = ?"
                " WHERE venue_id = ? AND device_id = ? AND status = 'active' RETURNING 1",
                (now_ms, venue_id, device_id),
            ).fetchone() is not None:
                self._emit(conn, venue_id, {"type": "master", "master": None}, now_ms)
            return True

        revoked = await self._write(tx)
        self._announce_change(venue_id)
        return revoked

    async def record_device_report(self, venue_id: str, device_id: str, report: DeviceReport, now_ms: int) -> None:
        # Not durable, like the heartbeat that carries it: the next one says the same.
        await self._write(lambda conn: _record_report(conn, venue_id, device_id, report, now_ms), durable=False)

    async def list_devices(self, venue_id: str) -> list[DeviceRecord]:
        def read(conn: sqlite3.Connection) -> list[DeviceRecord]:
            rows = conn.execute("SELECT * FROM devices WHERE venue_id = ? ORDER BY device_id", (venue_id,))
            return [device_of(r) for r in rows]

        return await self._db.read(read)

    async def create_pairing(self, code_hash: str, secret_hash: str, device_id: str, expires_ms: int,
                             now_ms: int) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM pairings WHERE code_hash = ? AND expires_at_ms <= ?", (code_hash, now_ms))
            return conn.execute(
                "INSERT INTO pairings (code_hash, secret_hash, device_id, status, expires_at_ms, created_at_ms)"
                " VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING",
                (code_hash, secret_hash, device_id, expires_ms, now_ms),
            ).rowcount == 1

        return await self._write(tx)

    async def claim_pairing(self, code_hash: str, venue_id: str, claimed_by: str, now_ms: int) -> PairingState:
        def tx(conn: sqlite3.Connection) -> PairingState:
            _require_venue(conn, venue_id)
            row = conn.execute(
                "UPDATE pairings SET status = 'claimed', venue_id = ?, claimed_by = ?"
                " WHERE code_hash = ? AND status = 'pending' AND expires_at_ms > ? RETURNING device_id, expires_at_ms",
                (venue_id, claimed_by, code_hash, now_ms),
            ).fetchone()
            if row is None:
                return PairingState("unknown")
            version = _reissue_device(conn, venue_id, row["device_id"], now_ms)
            conn.execute("UPDATE pairings SET token_version = ? WHERE code_hash = ?", (version, code_hash))
            return PairingState("claimed", row["device_id"], venue_id, version, row["expires_at_ms"])

        return await self._write(tx)

    async def collect_pairing(self, secret_hash: str, now_ms: int) -> PairingState:
        def tx(conn: sqlite3.Connection) -> PairingState:
            row = conn.execute(
                "UPDATE pairings SET status = 'delivered' WHERE secret_hash = ? AND status = 'claimed'"
                " RETURNING device_id, venue_id, token_version, expires_at_ms", (secret_hash,),
            ).fetchone()
            if row is not None:
                return PairingState("claimed", row["device_id"], row["venue_id"], row["token_version"],
                                    row["expires_at_ms"])
            row = conn.execute(
                "SELECT device_id, expires_at_ms FROM pairings"
                " WHERE secret_hash = ? AND status = 'pending' AND expires_at_ms > ?", (secret_hash, now_ms),
            ).fetchone()
            if row is None:
                return PairingState("unknown")
            return PairingState("pending", row["device_id"], expires_at_ms=row["expires_at_ms"])

        return await self._write(tx)

    # --- magic links -----------------------------------------------------------------------------

    async def create_magic_link(
        self, token_hash: str, email: str, redirect_url: str, expires_ms: int, now_ms: int
    ) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO magic_links (token_hash, email, redirect_url, expires_at_ms, created_at_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_hash, email, redirect_url, expires_ms, now_ms),
            )

        await self._write(tx)

    async def consume_magic_link(self, token_hash: str, now_ms: int, *, auto_create: bool, new_user_id: str) -> User:
        def tx(conn: sqlite3.Connection) -> User:
            row = conn.execute(
                "UPDATE magic_links SET used_at_ms = ?"
                " WHERE token_hash = ? AND used_at_ms IS NULL AND expires_at_ms > ? RETURNING token_hash, email",
                (now_ms, token_hash, now_ms),
            ).fetchone()
            if row is None or not hmac.compare_digest(row["token_hash"], token_hash):
                raise InvalidMagicLink("Invalid or expired magic link")
            user = _user_by_email(conn, row["email"])
            if user is None:
                if not auto_create:
                    # Raising rolls the consumption back: the link stays usable once a user exists.
                    raise UserNotFound("User not found and auto-creation is disabled")
                conn.execute(
                    "INSERT INTO users (user_id, email, venue_id, role, autoplay, created_at_ms)"
                    " VALUES (?, ?, NULL, 'staff', 1, ?)",
                    (new_user_id, row["email"], now_ms),
                )
                user = _user_by_email(conn, row["email"])
                assert user is not None
            return user

        return await self._write(tx)

    # --- player registry -------------------------------------------------------------------------

    async def register_player(
        self, venue_id: str, device_id: str, user_agent: str, now_ms: int, timings: RegistryTimings,
        instance_id: str | None = None, name_unnamed_lease: bool = True,
    ) -> RegistryAnswer:
        def tx(conn: sqlite3.Connection) -> RegistryAnswer:
            _require_venue(conn, venue_id)
            conn.execute(
                "UPDATE players SET status = 'offline' WHERE venue_id = ? AND status = 'active' AND expires_at_ms < ?",
                (venue_id, now_ms),
            )
            master = _active_master(conn, venue_id)
            decision = decide_register(master, device_id, now_ms, timings.stale_ms, instance_id,
                                       timings.instance_grace_ms)
            lease_id = instance_id if name_unnamed_lease or (master and master.instance_id) else None
            if master is not None and decision == "reconnect":
                conn.execute(
                    "UPDATE players SET last_heartbeat_ms = ?, expires_at_ms = ?, user_agent = ?,"
                    " instance_id = coalesce(?, instance_id) WHERE player_id = ?",
                    (now_ms, now_ms + timings.expire_ms, user_agent, lease_id, master.player_id),
                )
                return RegistryAnswer("reconnected", master.epoch, master.player_id, device_id,
                                      master.last_heartbeat_ms)
            if master is not None and decision in ("conflict", "second_process"):
                return RegistryAnswer("conflict", master.epoch, None, master.device_id, master.last_heartbeat_ms,
                                      second_process=decision == "second_process")
            if master is not None:  # takeover: the reference's "expire old master"
                conn.execute(
                    "UPDATE players SET status = 'offline', expires_at_ms = ? WHERE player_id = ?",
                    (now_ms, master.player_id),
                )
            (epoch,) = conn.execute(
                "UPDATE venues SET epoch = epoch + 1 WHERE venue_id = ? RETURNING epoch", (venue_id,)
            ).fetchone()
            player_id = secrets.token_hex(10)
            conn.execute(
                "INSERT INTO players (player_id, venue_id, device_id, user_agent, status, epoch, last_heartbeat_ms,"
                " expires_at_ms, created_at_ms, instance_id) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
                (player_id, venue_id, device_id, user_agent, epoch, now_ms, now_ms + timings.expire_ms, now_ms,
                 instance_id if name_unnamed_lease else None),
            )
            self._emit(conn, venue_id, {"type": "master", "master": {"deviceId": device_id, "epoch": epoch}}, now_ms)
            return RegistryAnswer("registered", epoch, player_id)

        answer = await self._write(tx)
        if answer.status == "registered":
            self._announce_change(venue_id)
        return answer

    async def heartbeat(self, venue_id: str, device_id: str, now_ms: int, timings: RegistryTimings,
                        position: PlayPosition | None = None, instance_id: str | None = None) -> RegistryAnswer:
        def tx(conn: sqlite3.Connection) -> RegistryAnswer:
            row = conn.execute(
                "UPDATE players SET last_heartbeat_ms = ?, expires_at_ms = ?,"
                " position_entry_id = coalesce(?, position_entry_id), position_s = coalesce(?, position_s),"
                " position_at_ms = CASE WHEN ? IS NULL THEN position_at_ms ELSE ? END,"
                " instance_id = coalesce(instance_id, ?)"
                " WHERE venue_id = ? AND device_id = ? AND status = 'active' AND expires_at_ms >= ?"
                " AND (? IS NULL OR instance_id IS NULL OR instance_id = ?) RETURNING epoch",
                (now_ms, now_ms + timings.expire_ms, position and position.entry_id, position and position.seconds,
                 position and position.entry_id, now_ms, instance_id, venue_id, device_id, now_ms, instance_id,
                 instance_id),
            ).fetchone()
            if row is not None:
                return RegistryAnswer("updated", row["epoch"])
            holder = conn.execute(
                "SELECT epoch, last_heartbeat_ms FROM players"
                " WHERE venue_id = ? AND device_id = ? AND status = 'active' AND expires_at_ms >= ?",
                (venue_id, device_id, now_ms),
            ).fetchone()
            if holder is not None:  # the device holds the lease, but through another process
                return RegistryAnswer("conflict", holder["epoch"], None, device_id, holder["last_heartbeat_ms"],
                                      second_process=True)
            return RegistryAnswer("not_found", _venue_epoch(conn, venue_id))

        # Not durable: a heartbeat lost to a power cut only makes the lease look a few seconds older.
        return await self._write(tx, durable=False)

    async def release_player(self, venue_id: str, device_id: str, now_ms: int, timings: RegistryTimings,
                             instance_id: str | None = None) -> RegistryAnswer:
        def tx(conn: sqlite3.Connection) -> RegistryAnswer:
            master = _active_master(conn, venue_id)
            decision = decide_release(master, device_id, now_ms, instance_id, timings.instance_grace_ms)
            if master is None or decision == "not_holder":
                return RegistryAnswer("not_found", _venue_epoch(conn, venue_id))
            if decision == "second_process":
                return second_process_refused(master)
            conn.execute("UPDATE players SET status = 'offline', expires_at_ms = ? WHERE player_id = ?",
                         (now_ms, master.player_id))
            self._emit(conn, venue_id, {"type": "master", "master": None}, now_ms)
            return RegistryAnswer("released", master.epoch)

        answer = await self._write(tx)
        if answer.status == "released":
            self._announce_change(venue_id)
        return answer

    async def current_master(self, venue_id: str) -> MasterInfo | None:
        return await self._read(lambda conn: _active_master(conn, venue_id))

    async def write_liveness(self, beats: Sequence[Liveness], timings: RegistryTimings) -> list[bool]:
        def tx(conn: sqlite3.Connection) -> list[bool]:
            matched = []
            for beat in beats:
                position = beat.position
                matched.append(conn.execute(LIVENESS_UPDATE, {
                    "beat": beat.beat_ms, "expire": timings.expire_ms, "venue": beat.venue_id,
                    "device": beat.device_id, "epoch": beat.epoch, "instance": beat.instance_id,
                    "entry": position and position.entry_id, "seconds": position and position.seconds,
                    "at": beat.position_ms if position else None,
                }).fetchone() is not None)
                if beat.report is not None:
                    _record_report(conn, beat.venue_id, beat.device_id, beat.report, beat.report_ms or beat.beat_ms)
            return matched

        return await self._write(tx, durable=False)  # liveness: a power cut costs a few seconds of it

    # --- paid requests ---------------------------------------------------------------------------

    async def submit_paid_request(self, request: PaidRequest, rules: RequestRules, now_ms: int) -> RequestOutcome:
        step = paid_step(request, rules, now_ms, self._retain)
        outcome: RequestOutcome = await self._enqueue(None, durable=True, paid_step=step)
        if outcome.accepted and not outcome.replayed:
            self._announce_change(request.venue_id)
        return outcome

    async def list_requests(self, venue_id: str, status: RequestStatus | None, limit: int) -> list[RequestRecord]:
        def read(conn: sqlite3.Connection) -> list[RequestRecord]:
            rows = conn.execute(
                "SELECT * FROM requests WHERE venue_id = ? AND (? IS NULL OR status = ?)"
                " ORDER BY created_at_ms DESC LIMIT ?",
                (venue_id, status, status, limit),
            ).fetchall()
            return [request_of(r) for r in rows]

        return await self._read(read)

    async def refuse_request(self, venue_id: str, request_id: str, reason: str, now_ms: int, *,
                             fence: MasterWrite | None = None) -> Refusal:
        def tx(conn: sqlite3.Connection) -> Refusal:
            if fence is not None:
                _require_master(conn, fence)
            row = conn.execute(
                "SELECT * FROM requests WHERE request_id = ? AND venue_id = ?", (request_id, venue_id)
            ).fetchone()
            if row is None:
                raise UnknownRequest(f"unknown request {request_id!r} at venue {venue_id!r}")
            if row["status"] not in REFUSABLE_STATUSES:
                return Refusal(request_of(row), changed=False)
            refused = conn.execute(
                "UPDATE requests SET status = 'refund_due', reason = ? WHERE request_id = ? RETURNING *",
                (reason, request_id),
            ).fetchone()
            removed = tuple(r["entry_id"] for r in conn.execute(
                "DELETE FROM queue_entries WHERE venue_id = ? AND request_id = ? RETURNING entry_id",
                (venue_id, request_id),
            ).fetchall())
            for entry_id in removed:
                self._emit(conn, venue_id, {"type": "entry_removed", "entryId": entry_id}, now_ms)
            return Refusal(request_of(refused), changed=True, removed_entry_ids=removed)

        refusal = await self._write(tx)
        if refusal.removed_entry_ids:
            self._announce_change(venue_id)
        return refusal

    # --- playlists and catalog -------------------------------------------------------------------

    async def create_playlist(self, venue_id: str, name: str, now_ms: int) -> Playlist:
        def tx(conn: sqlite3.Connection) -> Playlist:
            _require_venue(conn, venue_id)
            playlist_id = "pl-" + secrets.token_hex(8)
            conn.execute(
                "INSERT INTO playlists (playlist_id, venue_id, name, created_at_ms) VALUES (?, ?, ?, ?)",
                (playlist_id, venue_id, name, now_ms),
            )
            return Playlist(playlist_id, venue_id, name)

        return await self._write(tx)

    async def get_playlist(self, playlist_id: str) -> Playlist | None:
        return await self._read(lambda conn: _playlist(conn, playlist_id))

    async def list_playlists(self, venue_id: str) -> list[Playlist]:
        def read(conn: sqlite3.Connection) -> list[Playlist]:
            ids = conn.execute(
                "SELECT playlist_id FROM playlists WHERE venue_id = ? ORDER BY created_at_ms, playlist_id", (venue_id,)
            ).fetchall()
            return [p for (pid,) in ids if (p := _playlist(conn, pid)) is not None]

        return await self._read(read)

    async def add_track(self, playlist_id: str, song: Song, now_ms: int) -> Playlist:
        def tx(conn: sqlite3.Connection) -> tuple[Playlist, bool]:
            playlist = _playlist(conn, playlist_id)
            if playlist is None:
                raise UnknownPlaylist(f"unknown playlist {playlist_id!r}")
            conn.execute(
                "INSERT INTO playlist_tracks (playlist_id, position, video_id, title, artist, duration, details_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (playlist_id, len(playlist.tracks) + 1, song.video_id, song.title, song.artist, song.duration,
                 song.details_by),
            )
            if playlist.active:  # the venue plays this list: the new song joins the rotation at once
                self._append_entry(conn, playlist.venue_id, QueueEntry("", "main", song), now_ms)
            updated = _playlist(conn, playlist_id)
            assert updated is not None
            return updated, playlist.active

        playlist, changed_queue = await self._write(tx)
        if changed_queue:
            self._announce_change(playlist.venue_id)
        return playlist

    async def activate_playlist(self, venue_id: str, playlist_id: str, now_ms: int) -> int:
        version = await self._write(lambda conn: self._activate(conn, venue_id, playlist_id, now_ms))
        self._announce_change(venue_id)
        return version

    async def report_analysis(self, analysis: Analysis, now_ms: int) -> CatalogTrack:
        def tx(conn: sqlite3.Connection) -> CatalogTrack:
            if analysis.venue_id is not None:
                conn.execute(
                    "INSERT INTO venue_analyses (venue_id, video_id, duration, analysis_start, analysis_end, loudness,"
                    " analysed_by, analysed_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (venue_id, video_id) DO UPDATE SET duration = excluded.duration,"
                    " analysis_start = excluded.analysis_start, analysis_end = excluded.analysis_end,"
                    " loudness = excluded.loudness, analysed_by = excluded.analysed_by,"
                    " analysed_at_ms = excluded.analysed_at_ms",
                    (analysis.venue_id, analysis.video_id, analysis.duration, analysis.real_start_offset,
                     analysis.real_end_offset, analysis.loudness, analysis.device_id, now_ms),
                )
                conn.execute("INSERT INTO catalog (video_id) VALUES (?) ON CONFLICT DO NOTHING", (analysis.video_id,))
                others = conn.execute(
                    "SELECT * FROM venue_analyses WHERE video_id = ? AND venue_id != ?",
                    (analysis.video_id, analysis.venue_id),
                ).fetchall()
                if not shared_by_agreement(analysis, [venue_analysis_of(row) for row in others],
                                           _known_durations(conn, analysis.video_id)):
                    return _catalog(conn, [analysis.video_id], analysis.venue_id)[analysis.video_id]
            conn.execute(
                "INSERT INTO catalog (video_id, duration, analysis_start, analysis_end, loudness, analysed_by,"
                " analysed_at_ms, trusted_duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (video_id) DO UPDATE SET duration = COALESCE(excluded.duration, duration),"
                " analysis_start = COALESCE(excluded.analysis_start, analysis_start),"
                " analysis_end = COALESCE(excluded.analysis_end, analysis_end),"
                " loudness = COALESCE(excluded.loudness, loudness),"
                " analysed_by = excluded.analysed_by, analysed_at_ms = excluded.analysed_at_ms,"
                " trusted_duration = COALESCE(excluded.trusted_duration, trusted_duration)",
                (analysis.video_id, analysis.duration, analysis.real_start_offset, analysis.real_end_offset,
                 analysis.loudness, analysis.device_id, now_ms, admins_duration(analysis)),
            )
            return _catalog(conn, [analysis.video_id], analysis.venue_id)[analysis.video_id]

        return await self._write(tx)

    async def known_durations(self, video_id: str) -> list[KnownDuration]:
        return await self._read(lambda conn: _known_durations(conn, video_id))

    async def set_override(self, video_id: str, override: Offsets | None, by: str, now_ms: int) -> CatalogTrack:
        def tx(conn: sqlite3.Connection) -> CatalogTrack:
            start, end = (override.start, override.end) if override else (None, None)
            conn.execute(
                "INSERT INTO catalog (video_id, override_set, override_start, override_end, override_by,"
                " override_at_ms) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (video_id) DO UPDATE SET override_set = excluded.override_set,"
                " override_start = excluded.override_start, override_end = excluded.override_end,"
                " override_by = excluded.override_by, override_at_ms = excluded.override_at_ms",
                (video_id, int(override is not None), start, end, by, now_ms),
            )
            return _catalog(conn, [video_id])[video_id]

        return await self._write(tx)

    async def set_venue_override(self, venue_id: str, video_id: str, override: Offsets | None, by: str,
                                 now_ms: int) -> CatalogTrack:
        def tx(conn: sqlite3.Connection) -> CatalogTrack:
            _require_venue(conn, venue_id)
            conn.execute("INSERT INTO catalog (video_id) VALUES (?) ON CONFLICT DO NOTHING", (video_id,))
            if override is None:
                conn.execute("DELETE FROM venue_overrides WHERE venue_id = ? AND video_id = ?", (venue_id, video_id))
            else:
                conn.execute(
                    "INSERT INTO venue_overrides (venue_id, video_id, override_start, override_end, override_by,"
                    " override_at_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (venue_id, video_id) DO UPDATE SET"
                    " override_start = excluded.override_start, override_end = excluded.override_end,"
                    " override_by = excluded.override_by, override_at_ms = excluded.override_at_ms",
                    (venue_id, video_id, override.start, override.end, by, now_ms),
                )
            return _catalog(conn, [video_id], venue_id)[video_id]

        return await self._write(tx)

    async def get_catalog(self, video_ids: list[str], venue_id: str | None = None) -> dict[str, CatalogTrack]:
        return await self._read(lambda conn: _catalog(conn, video_ids, venue_id))

    # --- queue and feed --------------------------------------------------------------------------

    async def queue_snapshot(self, venue_id: str) -> QueueSnapshot:
        return await self._read(lambda conn: _snapshot(conn, venue_id))

    async def changes_since(self, venue_id: str, version: int, limit: int) -> ChangeBatch:
        def read(conn: sqlite3.Connection) -> ChangeBatch:
            current = _require_venue(conn, venue_id)["version"]
            if version == current:
                return ChangeBatch(current)
            if version < current:
                rows = conn.execute(
                    "SELECT version, change FROM venue_changes WHERE venue_id = ? AND version > ?"
                    " ORDER BY version LIMIT ?",
                    (venue_id, version, limit),
                ).fetchall()
                if rows and rows[0]["version"] == version + 1:
                    changes = tuple(Change(r["version"], json.loads(r["change"])) for r in rows)
                    return ChangeBatch(current, changes, more=changes[-1].version < current)
            # Too old for the log (or from a future this hub never had): start over from a snapshot.
            return ChangeBatch(current, snapshot=_snapshot(conn, venue_id))

        return await self._read(read)

    async def advance_queue(self, write: MasterWrite, finished_entry_id: str | None, now_ms: int) -> WriteResult:
        def change(conn: sqlite3.Connection) -> Json:
            current = _now_playing(conn, write.venue_id)
            if finished_entry_id is not None and (current is None or current.entry.entry_id != finished_entry_id):
                # A resent advance for a track already left behind: never pop a second entry.
                return {"advanced": False, "nowPlaying": None if current is None else current.to_json()}
            head = conn.execute(
                "SELECT * FROM queue_entries WHERE venue_id = ?"
                " ORDER BY CASE queue WHEN 'priority' THEN 0 ELSE 1 END, seq LIMIT 1",
                (write.venue_id,),
            ).fetchone()
            playing = None if head is None else self._take_entry(conn, write, entry_of(head), now_ms)
            if playing is None and current is not None:
                if current.entry.request_id is not None:
                    _mark_request_played(conn, current.entry.request_id)
                conn.execute("DELETE FROM now_playing WHERE venue_id = ?", (write.venue_id,))
                self._emit(conn, write.venue_id, {"type": "now_playing", "nowPlaying": None}, now_ms)
            return {"advanced": True, "nowPlaying": None if playing is None else playing.to_json()}

        return await self._master_write(write, change, now_ms)

    async def set_now_playing(
        self, write: MasterWrite, entry_id: str | None, song: Song | None, now_ms: int
    ) -> WriteResult:
        def change(conn: sqlite3.Connection) -> Json:
            current = _now_playing(conn, write.venue_id)
            if current is not None and entry_id is not None and current.entry.entry_id == entry_id:
                if (current.device_id, current.epoch) == (write.device_id, write.epoch):
                    return {"nowPlaying": current.to_json()}  # a resend
                # A take-over resumed the entry its last box was cut off in: the same play, on this box now.
                conn.execute("UPDATE now_playing SET device_id = ?, epoch = ?, ended_at_ms = NULL WHERE venue_id = ?",
                             (write.device_id, write.epoch, write.venue_id))
                moved = _now_playing(conn, write.venue_id)
                assert moved is not None
                self._emit(conn, write.venue_id, {"type": "now_playing", "nowPlaying": moved.to_json()}, now_ms)
                return {"nowPlaying": moved.to_json()}
            row = None
            if entry_id is not None:
                row = conn.execute(
                    "SELECT * FROM queue_entries WHERE venue_id = ? AND entry_id = ?", (write.venue_id, entry_id)
                ).fetchone()
            if row is not None:
                playing = self._take_entry(conn, write, entry_of(row), now_ms)
            elif song is not None:
                # Played from the edge's own replica (offline, or a playlist track the hub no longer queues).
                adhoc = QueueEntry(entry_id or "e-" + secrets.token_hex(8), "main", song)
                playing = self._set_playing(conn, write, adhoc, now_ms)
            else:
                raise UnknownEntry(f"entry {entry_id!r} is not queued at venue {write.venue_id!r}; send the song")
            return {"nowPlaying": playing.to_json()}

        return await self._master_write(write, change, now_ms)

    async def report_played(self, write: MasterWrite, report: PlayReport, now_ms: int) -> WriteResult:
        def tx(conn: sqlite3.Connection) -> WriteResult:
            replay = _replay(conn, write)
            if replay is not None:
                return replay
            # History is a fact, not a queue change: any epoch this device really held is accepted, so a
            # master that played through an outage and lost its lease meanwhile still reports what it played.
            held = conn.execute(
                "SELECT 1 FROM players WHERE venue_id = ? AND device_id = ? AND epoch = ?",
                (write.venue_id, write.device_id, write.epoch),
            ).fetchone()
            if held is None:
                master = _active_master(conn, write.venue_id)
                raise StaleEpoch(_venue_epoch(conn, write.venue_id), master.device_id if master else None)
            video_id = report.song.video_id if report.song else None
            request_id = report.request_id
            if report.entry_id is not None and (video_id is None or request_id is None):
                for table in ("now_playing", "queue_entries"):
                    row = conn.execute(
                        f"SELECT video_id, request_id FROM {table} WHERE venue_id = ? AND entry_id = ?",
                        (write.venue_id, report.entry_id),
                    ).fetchone()
                    if row is not None:
                        video_id, request_id = video_id or row["video_id"], request_id or row["request_id"]
                        break
            if video_id is None:
                raise UnknownEntry(f"entry {report.entry_id!r} is unknown at venue {write.venue_id!r}; send the song")
            cur = conn.execute(
                "INSERT INTO play_history (venue_id, entry_id, video_id, request_id, device_id, epoch, played_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (write.venue_id, report.entry_id, video_id, request_id, write.device_id, write.epoch,
                 report.played_at_ms),
            )
            if request_id is not None:
                _mark_request_played(conn, request_id)
            if report.entry_id is not None:  # its play is over: a box taking over does not resume it
                conn.execute("UPDATE now_playing SET ended_at_ms = ? WHERE venue_id = ? AND entry_id = ?",
                             (report.played_at_ms, write.venue_id, report.entry_id))
            body = {"recorded": True, "historyId": cur.lastrowid}
            _remember(conn, write, body, now_ms)
            return WriteResult(body)

        return await self._write(tx)

    async def play_history(self, venue_id: str, limit: int = 100) -> list[Json]:
        def read(conn: sqlite3.Connection) -> list[Json]:
            rows = conn.execute(
                "SELECT entry_id, video_id, request_id, device_id, epoch, played_at_ms FROM play_history"
                " WHERE venue_id = ? ORDER BY played_at_ms DESC, id DESC LIMIT ?",
                (venue_id, limit),
            ).fetchall()
            return [history_json(r) for r in rows]

        return await self._read(read)

    async def report_device_error(self, report: DeviceError, now_ms: int) -> WriteResult:
        def tx(conn: sqlite3.Connection) -> WriteResult:
            _require_venue(conn, report.venue_id)
            cur = conn.execute(
                "INSERT INTO device_errors (venue_id, device_id, idempotency_key, video_id, message, at_ms,"
                " received_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (report.venue_id, report.device_id, report.idempotency_key, report.video_id, report.message,
                 report.at_ms, now_ms),
            )
            if cur.rowcount == 1:
                return WriteResult({"recorded": True, "errorId": cur.lastrowid})
            (error_id,) = conn.execute(
                "SELECT id FROM device_errors WHERE venue_id = ? AND device_id = ? AND idempotency_key = ?",
                (report.venue_id, report.device_id, report.idempotency_key),
            ).fetchone()
            return WriteResult({"recorded": True, "errorId": error_id}, replayed=True)

        return await self._write(tx)

    async def device_errors(self, venue_id: str, limit: int) -> list[Json]:
        def read(conn: sqlite3.Connection) -> list[Json]:
            rows = conn.execute(
                "SELECT * FROM device_errors WHERE venue_id = ? ORDER BY received_at_ms DESC, id DESC LIMIT ?",
                (venue_id, limit),
            ).fetchall()
            return [device_error_json(r) for r in rows]

        return await self._read(read)

    async def housekeeping(self, now_ms: int) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            removed = conn.execute("DELETE FROM magic_links WHERE expires_at_ms < ?", (now_ms - DAY_MS,)).rowcount
            removed += conn.execute(
                "DELETE FROM master_writes WHERE created_at_ms < ?", (now_ms - KEEP_WRITES_MS,)
            ).rowcount
            removed += conn.execute(
                "DELETE FROM players WHERE status = 'offline' AND expires_at_ms < ?", (now_ms - KEEP_WRITES_MS,)
            ).rowcount
            removed += conn.execute(
                "DELETE FROM device_errors WHERE received_at_ms < ?", (now_ms - KEEP_DEVICE_ERRORS_MS,)
            ).rowcount
            removed += conn.execute("DELETE FROM pairings WHERE expires_at_ms < ?", (now_ms - DAY_MS,)).rowcount
            removed += conn.execute(executions_sql.EXPIRE, (now_ms,)).rowcount
            return removed

        return await self._write(tx)

    # --- the staff console -----------------------------------------------------------------------

    async def remove_entry(self, venue_id: str, entry_id: str, now_ms: int) -> QueueEntry:
        def tx(conn: sqlite3.Connection) -> QueueEntry:
            row = conn.execute(
                "SELECT * FROM queue_entries WHERE venue_id = ? AND entry_id = ?", (venue_id, entry_id)
            ).fetchone()
            if row is None:
                raise UnknownEntry(f"entry {entry_id!r} is not queued at venue {venue_id!r}")
            entry = entry_of(row)
            if entry.request_id is not None:
                raise Conflict("a paid entry is removed by refusing its request (it is refunded)")
            conn.execute("DELETE FROM queue_entries WHERE entry_id = ?", (entry_id,))
            self._emit(conn, venue_id, {"type": "entry_removed", "entryId": entry_id}, now_ms)
            return entry

        entry = await self._write(tx)
        self._announce_change(venue_id)
        return entry

    async def move_entry(self, venue_id: str, entry_id: str, position: int, now_ms: int) -> QueueSnapshot:
        def tx(conn: sqlite3.Connection) -> QueueSnapshot:
            main = list(_snapshot(conn, venue_id).main)
            index = next((i for i, e in enumerate(main) if e.entry_id == entry_id), None)
            if index is None:
                raise UnknownEntry(f"entry {entry_id!r} is not in the main queue of venue {venue_id!r}")
            order = moved(main, index, position - 1)
            for seq, entry in enumerate(order, start=1):
                conn.execute("UPDATE queue_entries SET seq = ? WHERE entry_id = ?", (seq, entry.entry_id))
            self._emit(conn, venue_id, {"type": "main_replaced", "entries": [e.to_json() for e in order]}, now_ms)
            return _snapshot(conn, venue_id)

        snapshot = await self._write(tx)
        self._announce_change(venue_id)
        return snapshot

    async def skip_now(self, venue_id: str, now_ms: int) -> Json:
        def tx(conn: sqlite3.Connection) -> Json:
            _require_venue(conn, venue_id)
            playing = _now_playing(conn, venue_id)
            if playing is None:
                raise UnknownEntry(f"nothing is playing at venue {venue_id!r}")
            change: Json = {"type": "skip", "entryId": playing.entry.entry_id, "at": now_ms}
            change["version"] = self._emit(conn, venue_id, change, now_ms)
            return change

        change = await self._write(tx)
        self._announce_change(venue_id)
        return change

    async def queue_next(self, venue_id: str, song: Song, by: str, now_ms: int) -> QueueEntry:
        def tx(conn: sqlite3.Connection) -> QueueEntry:
            _require_venue(conn, venue_id)
            entry = self._insert_entry(conn, venue_id, QueueEntry("", "priority", song, None, by), now_ms)
            (first,) = conn.execute(
                "SELECT MIN(seq) FROM queue_entries WHERE venue_id = ? AND queue = 'priority'", (venue_id,)
            ).fetchone()
            conn.execute("UPDATE queue_entries SET seq = ? WHERE entry_id = ?", (first - 1, entry.entry_id))
            self._emit(conn, venue_id, {"type": "entry_added", "entry": entry.to_json(), "at": "head"}, now_ms)
            return entry

        entry = await self._write(tx)
        self._announce_change(venue_id)
        return entry

    async def update_playlist(self, venue_id: str, playlist_id: str, name: str | None,
                              requestable: bool | None) -> Playlist:
        def tx(conn: sqlite3.Connection) -> Playlist:
            _venue_playlist(conn, venue_id, playlist_id)
            conn.execute(
                "UPDATE playlists SET name = COALESCE(?, name), requestable = COALESCE(?, requestable)"
                " WHERE playlist_id = ?",
                (name, None if requestable is None else int(requestable), playlist_id),
            )
            return _venue_playlist(conn, venue_id, playlist_id)

        return await self._write(tx)

    async def delete_playlist(self, venue_id: str, playlist_id: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            if _venue_playlist(conn, venue_id, playlist_id).active:
                raise Conflict("this playlist is playing; activate another one before deleting it")
            for table in ("schedule_slots", "playlist_tracks", "playlists"):
                conn.execute(f"DELETE FROM {table} WHERE playlist_id = ?", (playlist_id,))

        await self._write(tx)

    async def remove_track(self, venue_id: str, playlist_id: str, position: int, video_id: str,
                           now_ms: int) -> Playlist:
        def tx(conn: sqlite3.Connection) -> Playlist:
            playlist = _venue_playlist(conn, venue_id, playlist_id)
            track_at(playlist, position, video_id)
            tracks = [t for i, t in enumerate(playlist.tracks, start=1) if i != position]
            _write_tracks(conn, playlist_id, tracks)
            if playlist.active:
                row = conn.execute(
                    "SELECT entry_id FROM queue_entries WHERE venue_id = ? AND queue = 'main' AND video_id = ?"
                    " ORDER BY seq LIMIT 1", (venue_id, video_id),
                ).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM queue_entries WHERE entry_id = ?", (row["entry_id"],))
                    self._emit(conn, venue_id, {"type": "entry_removed", "entryId": row["entry_id"]}, now_ms)
            return _venue_playlist(conn, venue_id, playlist_id)

        playlist = await self._write(tx)
        self._announce_change(venue_id)
        return playlist

    async def move_track(self, venue_id: str, playlist_id: str, position: int, video_id: str,
                         to_position: int) -> Playlist:
        def tx(conn: sqlite3.Connection) -> Playlist:
            playlist = _venue_playlist(conn, venue_id, playlist_id)
            track_at(playlist, position, video_id)
            _write_tracks(conn, playlist_id, moved(playlist.tracks, position - 1, to_position - 1))
            return _venue_playlist(conn, venue_id, playlist_id)

        return await self._write(tx)

    async def known_songs(self, video_ids: list[str], venue_id: str | None = None) -> dict[str, Song]:
        def read(conn: sqlite3.Connection) -> dict[str, Song]:
            found: dict[str, Song] = {}
            for video_id in dict.fromkeys(video_ids):
                row = conn.execute(KNOWN_SONG.format(p=":video", v=":venue"),
                                   {"video": video_id, "venue": venue_id}).fetchone()
                if row is not None:
                    found[video_id] = track_of(row)
            return found

        return await self._read(read)

    async def set_track_details(self, venue_id: str, playlist_id: str, position: int, video_id: str, song: Song,
                                now_ms: int) -> Playlist:
        def tx(conn: sqlite3.Connection) -> tuple[Playlist, bool]:
            playlist = _venue_playlist(conn, venue_id, playlist_id)
            old = track_at(playlist, position, video_id)
            details = (song.title, song.artist, song.duration)
            conn.execute(
                "UPDATE playlist_tracks SET title = ?, artist = ?, duration = ?, details_by = NULL"
                " WHERE playlist_id = ? AND position = ?", (*details, playlist_id, position))
            entries = 0
            if playlist.active:
                entries = conn.execute(
                    "UPDATE queue_entries SET title = ?, artist = ?, duration = ? WHERE venue_id = ? AND queue = 'main'"
                    " AND video_id = ? AND request_id IS NULL AND title = ? AND artist = ?",
                    (*details, venue_id, video_id, old.title, old.artist)).rowcount
            if entries:
                main = _snapshot(conn, venue_id).main
                self._emit(conn, venue_id, {"type": "main_replaced", "entries": [e.to_json() for e in main]}, now_ms)
            return _venue_playlist(conn, venue_id, playlist_id), entries > 0

        updated, changed = await self._write(tx)
        if changed:
            self._announce_change(venue_id)
        return updated

    async def pending_songs(self, venue_id: str, limit: int) -> list[str]:
        return await self._read(lambda conn: [row[0] for row in conn.execute(
            PENDING_SONGS.format(venue="?", limit="?"), (venue_id, limit))])

    async def describe_song(self, venue_id: str, song: Song, now_ms: int) -> int:
        def tx(conn: sqlite3.Connection) -> tuple[int, bool]:
            _require_venue(conn, venue_id)
            details = (song.title, song.artist, song.duration)
            tracks = conn.execute(
                "UPDATE playlist_tracks SET title = ?, artist = ?, duration = ?, details_by = ?"
                " WHERE video_id = ? AND title = '' AND artist = ''"
                " AND playlist_id IN (SELECT playlist_id FROM playlists WHERE venue_id = ?)",
                (*details, song.details_by, song.video_id, venue_id),
            ).rowcount
            entries = conn.execute(
                "UPDATE queue_entries SET title = ?, artist = ?, duration = ?"
                " WHERE venue_id = ? AND video_id = ? AND title = '' AND artist = ''",
                (*details, venue_id, song.video_id),
            ).rowcount
            conn.execute(
                "UPDATE now_playing SET title = ?, artist = ?, duration = ?"
                " WHERE venue_id = ? AND video_id = ? AND title = '' AND artist = ''",
                (*details, venue_id, song.video_id),
            )
            if entries:  # the boxes and patron pages show the queue from the feed
                main = _snapshot(conn, venue_id).main
                self._emit(conn, venue_id, {"type": "main_replaced", "entries": [e.to_json() for e in main]}, now_ms)
            return tracks + entries, entries > 0

        filled, changed = await self._write(tx)
        if changed:
            self._announce_change(venue_id)
        return filled

    async def venue_rules(self, venue_id: str) -> VenueRules:
        return await self._read(lambda conn: _venue_rules(conn, venue_id))

    async def set_venue_settings(self, venue_id: str, settings: VenueSettings, now_ms: int) -> VenueRules:
        def tx(conn: sqlite3.Connection) -> VenueRules:
            _require_venue(conn, venue_id)
            conn.execute(
                "UPDATE venues SET allow_explicit = ?, max_duration_s = ?, artist_limit = ?, timezone = ?"
                " WHERE venue_id = ?",
                (int(settings.allow_explicit), settings.max_duration_s, settings.artist_limit, settings.timezone,
                 venue_id),
            )
            return self._emit_rules(conn, venue_id, now_ms)

        return await self._rules_write(venue_id, tx)

    async def add_mark(self, venue_id: str, kind: MarkKind, value: str, now_ms: int) -> VenueRules:
        def tx(conn: sqlite3.Connection) -> VenueRules:
            _require_venue(conn, venue_id)
            conn.execute(
                "INSERT INTO venue_marks (mark_id, venue_id, kind, value, value_key, created_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                ("mk-" + secrets.token_hex(8), venue_id, kind, value, mark_key(kind, value), now_ms),
            )
            return self._emit_rules(conn, venue_id, now_ms)

        return await self._rules_write(venue_id, tx)

    async def remove_mark(self, venue_id: str, mark_id: str, now_ms: int) -> VenueRules:
        def tx(conn: sqlite3.Connection) -> VenueRules:
            _require_venue(conn, venue_id)
            cur = conn.execute("DELETE FROM venue_marks WHERE venue_id = ? AND mark_id = ?", (venue_id, mark_id))
            if cur.rowcount == 0:
                raise UnknownEntry(f"no mark {mark_id!r} at venue {venue_id!r}")
            return self._emit_rules(conn, venue_id, now_ms)

        return await self._rules_write(venue_id, tx)

    async def add_schedule_slot(self, venue_id: str, slot: ScheduleSlot, now_ms: int) -> ScheduleSlot:
        def tx(conn: sqlite3.Connection) -> ScheduleSlot:
            _venue_playlist(conn, venue_id, slot.playlist_id)
            conn.execute(
                "INSERT INTO schedule_slots (slot_id, venue_id, playlist_id, weekday, start_minute, end_minute,"
                " created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (slot.slot_id, venue_id, slot.playlist_id, slot.weekday, slot.start_minute, slot.end_minute, now_ms),
            )
            return slot

        return await self._write(tx)

    async def delete_schedule_slot(self, venue_id: str, slot_id: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            cur = conn.execute("DELETE FROM schedule_slots WHERE venue_id = ? AND slot_id = ?", (venue_id, slot_id))
            if cur.rowcount == 0:
                raise UnknownEntry(f"no schedule slot {slot_id!r} at venue {venue_id!r}")

        await self._write(tx)

    async def schedules(self, venue_id: str | None = None) -> list[VenueSchedule]:
        def read(conn: sqlite3.Connection) -> list[VenueSchedule]:
            if venue_id is not None:
                venues = [_require_venue(conn, venue_id)]
            else:
                venues = conn.execute(
                    "SELECT * FROM venues WHERE venue_id IN (SELECT venue_id FROM schedule_slots)"
                    " OR schedule_slot_id IS NOT NULL ORDER BY venue_id"
                ).fetchall()
            return [
                VenueSchedule(v["venue_id"], v["timezone"], v["schedule_slot_id"], tuple(
                    slot_of(r) for r in conn.execute(
                        "SELECT * FROM schedule_slots WHERE venue_id = ? ORDER BY weekday, start_minute, slot_id",
                        (v["venue_id"],),
                    )
                ))
                for v in venues
            ]

        return await self._read(read)

    async def apply_schedule(self, venue_id: str, expected_slot_id: str | None, slot: ScheduleSlot | None,
                             now_ms: int) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            venue = _require_venue(conn, venue_id)
            if venue["schedule_slot_id"] != expected_slot_id:
                return False
            conn.execute("UPDATE venues SET schedule_slot_id = ? WHERE venue_id = ?",
                         (None if slot is None else slot.slot_id, venue_id))
            if slot is not None and venue["active_playlist_id"] != slot.playlist_id:
                self._activate(conn, venue_id, slot.playlist_id, now_ms)
            return True

        applied = await self._write(tx)
        if applied:
            self._announce_change(venue_id)
        return applied

    async def _rules_write(self, venue_id: str, tx: Callable[[sqlite3.Connection], VenueRules]) -> VenueRules:
        rules = await self._write(tx)
        self._rules_changed(venue_id)
        self._announce_change(venue_id)
        return rules

    def _emit_rules(self, conn: sqlite3.Connection, venue_id: str, now_ms: int) -> VenueRules:
        rules = _venue_rules(conn, venue_id)
        self._emit(conn, venue_id, {"type": "rules", "rules": rules.to_json()}, now_ms)
        return rules

    # --- transaction helpers (run on the writer thread) ------------------------------------------

    async def _master_write(
        self, write: MasterWrite, change: Callable[[sqlite3.Connection], Json], now_ms: int
    ) -> WriteResult:
        """Replay by idempotency key, else fence by epoch, apply ``change`` and remember its answer."""

        def tx(conn: sqlite3.Connection) -> WriteResult:
            replay = _replay(conn, write)
            if replay is not None:
                return replay
            _require_master(conn, write)
            body = change(conn)
            body["version"] = _require_venue(conn, write.venue_id)["version"]
            _remember(conn, write, body, now_ms)
            return WriteResult(body)

        result = await self._write(tx)
        if not result.replayed:
            self._announce_change(write.venue_id)
        return result

    def _activate(self, conn: sqlite3.Connection, venue_id: str, playlist_id: str, now_ms: int) -> int:
        """Make ``playlist_id`` the venue's playlist: the main queue becomes its tracks, in order."""
        playlist = _venue_playlist(conn, venue_id, playlist_id)
        conn.execute("UPDATE venues SET active_playlist_id = ? WHERE venue_id = ?", (playlist_id, venue_id))
        conn.execute("DELETE FROM queue_entries WHERE venue_id = ? AND queue = 'main'", (venue_id,))
        entries = [self._insert_entry(conn, venue_id, QueueEntry("", "main", song), now_ms) for song in playlist.tracks]
        return self._emit(conn, venue_id, {"type": "main_replaced", "entries": [e.to_json() for e in entries]}, now_ms)

    def _emit(self, conn: sqlite3.Connection, venue_id: str, data: Json, now_ms: int) -> int:
        (version,) = conn.execute(
            "UPDATE venues SET version = version + 1 WHERE venue_id = ? RETURNING version", (venue_id,)
        ).fetchone()
        conn.execute(
            "INSERT INTO venue_changes (venue_id, version, change, created_at_ms) VALUES (?, ?, ?, ?)",
            (venue_id, version, fastjson.dumps(data), now_ms),
        )
        if version % PRUNE_EVERY == 0:
            conn.execute(
                "DELETE FROM venue_changes WHERE venue_id = ? AND version <= ?", (venue_id, version - self._retain)
            )
        return int(version)

    def _insert_entry(self, conn: sqlite3.Connection, venue_id: str, entry: QueueEntry, now_ms: int) -> QueueEntry:
        entry_id = "e-" + secrets.token_hex(8)
        song = entry.song
        conn.execute(  # at the end of its queue: one statement
            "INSERT INTO queue_entries (entry_id, venue_id, queue, seq, video_id, title, artist, duration,"
            " request_id, requester_id, paid_credit, created_at_ms)"
            " SELECT ?, ?, ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ? FROM queue_entries"
            " WHERE venue_id = ? AND queue = ?",
            (entry_id, venue_id, entry.queue, song.video_id, song.title, song.artist, song.duration,
             entry.request_id, entry.requester_id, entry.paid_credit, now_ms, venue_id, entry.queue),
        )
        return QueueEntry(entry_id, entry.queue, song, entry.request_id, entry.requester_id, entry.paid_credit)

    def _append_entry(self, conn: sqlite3.Connection, venue_id: str, entry: QueueEntry, now_ms: int) -> QueueEntry:
        added = self._insert_entry(conn, venue_id, entry, now_ms)
        self._emit(conn, venue_id, {"type": "entry_added", "entry": added.to_json()}, now_ms)
        return added

    def _take_entry(self, conn: sqlite3.Connection, write: MasterWrite, entry: QueueEntry, now_ms: int) -> NowPlaying:
        """Move a queued entry to now playing; a playlist entry goes round to the back of the main queue."""
        conn.execute("DELETE FROM queue_entries WHERE entry_id = ?", (entry.entry_id,))
        self._emit(conn, write.venue_id, {"type": "entry_removed", "entryId": entry.entry_id}, now_ms)
        if entry.queue == "main":
            self._append_entry(conn, write.venue_id, QueueEntry("", "main", entry.song), now_ms)
        return self._set_playing(conn, write, entry, now_ms)

    def _set_playing(self, conn: sqlite3.Connection, write: MasterWrite, entry: QueueEntry, now_ms: int) -> NowPlaying:
        previous = _now_playing(conn, write.venue_id)
        if previous is not None and previous.entry.request_id is not None:
            _mark_request_played(conn, previous.entry.request_id)  # a paid request that was playing has played
        song = entry.song
        conn.execute(
            "INSERT OR REPLACE INTO now_playing (venue_id, entry_id, queue, video_id, title, artist, duration,"
            " request_id, requester_id, paid_credit, started_at_ms, device_id, epoch)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (write.venue_id, entry.entry_id, entry.queue, song.video_id, song.title, song.artist, song.duration,
             entry.request_id, entry.requester_id, entry.paid_credit, now_ms, write.device_id, write.epoch),
        )
        playing = NowPlaying(entry, now_ms, write.device_id, write.epoch)
        self._emit(conn, write.venue_id, {"type": "now_playing", "nowPlaying": playing.to_json()}, now_ms)
        return playing


# --- row helpers (pure functions of a connection) ---------------------------------------------------


def _run_writes(conn: sqlite3.Connection, batch: list[_Pending]) -> list[tuple[bool, Any]]:
    """Each write of a batch in order: (True, its result) or (False, its error). Paid requests queued next to
    each other go to SQLite together (sqlite_paid.submit_paid_steps); every other write in its own savepoint."""
    outcomes: list[tuple[bool, Any]] = []
    start = 0
    while start < len(batch):
        end = start
        while end < len(batch) and batch[end].paid_step is not None:
            end += 1
        if end > start:
            outcomes.extend(submit_paid_steps(conn, [cast(PaidStep, p.paid_step) for p in batch[start:end]]))
            start = end
            continue
        fn = batch[start].fn
        assert fn is not None
        outcomes.append(_in_savepoint(conn, fn))
        start += 1
    return outcomes


def _in_savepoint(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> tuple[bool, Any]:
    """Run one write of a batch: its effects are kept, or undone alone if it raises.

    Unless SQLite rolled the whole transaction back itself (a full disk, an I/O error): then the writes
    before this one in the batch are gone too, and the batch fails as one — none is acknowledged."""
    conn.execute("SAVEPOINT one_write")
    try:
        result = fn(conn)
    except Exception as exc:
        if not conn.in_transaction:
            raise
        conn.execute("ROLLBACK TO one_write")
        conn.execute("RELEASE one_write")
        return False, exc
    conn.execute("RELEASE one_write")
    return True, result


def _require_venue(conn: sqlite3.Connection, venue_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM venues WHERE venue_id = ?", (venue_id,)).fetchone()
    if row is None:
        raise UnknownVenue(f"unknown venue {venue_id!r}")
    return row


# A beat answered from memory, written behind it: only to the row still active at the epoch it was answered
# with, for the same process; times and position never move backwards (another instance may have written
# a newer beat meanwhile).
_NEWER_POSITION = ":at IS NOT NULL AND :at >= coalesce(position_at_ms, 0)"
LIVENESS_UPDATE = (
    "UPDATE players SET last_heartbeat_ms = max(last_heartbeat_ms, :beat),"
    " expires_at_ms = max(expires_at_ms, :beat + :expire),"
    f" position_entry_id = CASE WHEN {_NEWER_POSITION} THEN :entry ELSE position_entry_id END,"
    f" position_s = CASE WHEN {_NEWER_POSITION} THEN :seconds ELSE position_s END,"
    f" position_at_ms = CASE WHEN {_NEWER_POSITION} THEN :at ELSE position_at_ms END,"
    " instance_id = coalesce(instance_id, :instance)"
    " WHERE venue_id = :venue AND device_id = :device AND status = 'active' AND epoch = :epoch"
    " AND expires_at_ms >= :beat AND (:instance IS NULL OR instance_id IS NULL OR instance_id = :instance)"
    " RETURNING 1"
)


def _record_report(conn: sqlite3.Connection, venue_id: str, device_id: str, report: DeviceReport,
                   now_ms: int) -> None:
    conn.execute(
        "INSERT INTO devices (venue_id, device_id, software_version, user_agent, now_playing, problems,"
        " reported_at_ms, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (venue_id, device_id) DO UPDATE SET software_version = excluded.software_version,"
        " user_agent = excluded.user_agent, now_playing = excluded.now_playing,"
        " problems = excluded.problems, reported_at_ms = excluded.reported_at_ms",
        (venue_id, device_id, *report_columns(report), now_ms, now_ms),
    )


def _venue_epoch(conn: sqlite3.Connection, venue_id: str) -> int:
    row = conn.execute("SELECT epoch FROM venues WHERE venue_id = ?", (venue_id,)).fetchone()
    return 0 if row is None else int(row["epoch"])


def _known_durations(conn: sqlite3.Connection, video_id: str) -> list[KnownDuration]:
    return [known_duration_of(row) for row in conn.execute(KNOWN_DURATIONS.format(p="?"), (video_id, video_id))]


def _active_master(conn: sqlite3.Connection, venue_id: str) -> MasterInfo | None:
    row = conn.execute(
        "SELECT player_id, device_id, epoch, last_heartbeat_ms, instance_id FROM players"
        " WHERE venue_id = ? AND status = 'active'",
        (venue_id,),
    ).fetchone()
    return None if row is None else master_of(row)


def _require_master(conn: sqlite3.Connection, write: MasterWrite) -> None:
    """Fencing: StaleEpoch unless ``write``'s device holds the venue's lease at ``write``'s epoch."""
    master = _active_master(conn, write.venue_id)
    if master is None or master.epoch != write.epoch or master.device_id != write.device_id:
        raise StaleEpoch(_venue_epoch(conn, write.venue_id), master.device_id if master else None)


def _reissue_device(conn: sqlite3.Connection, venue_id: str, device_id: str, now_ms: int) -> int:
    (version,) = conn.execute(
        "INSERT INTO devices (venue_id, device_id, token_version, revoked, created_at_ms) VALUES (?, ?, 1, 0, ?)"
        " ON CONFLICT (venue_id, device_id) DO UPDATE SET token_version = token_version + 1, revoked = 0"
        " RETURNING token_version",
        (venue_id, device_id, now_ms),
    ).fetchone()
    return int(version)


# remove_user / bump_user_tokens with only_staff_of (?2): the user is staff, not an owner, of that venue.
_ONLY_STAFF_OF = "(?2 IS NULL OR (role = 'staff' AND venue_id = ?2))"


def _user_by_email(conn: sqlite3.Connection, email: str) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone()
    return None if row is None else user_of(row)


def _now_playing(conn: sqlite3.Connection, venue_id: str) -> NowPlaying | None:
    row = conn.execute(NOW_PLAYING.format(venue="?"), (venue_id,)).fetchone()
    return None if row is None else now_playing_of(row)


def _snapshot(conn: sqlite3.Connection, venue_id: str) -> QueueSnapshot:
    venue = _require_venue(conn, venue_id)
    rows = conn.execute(
        "SELECT * FROM queue_entries WHERE venue_id = ? ORDER BY queue DESC, seq", (venue_id,)
    ).fetchall()  # 'priority' sorts after 'main' ascending, so DESC puts it first
    entries = [entry_of(r) for r in rows]
    return QueueSnapshot(
        venue_id,
        venue["version"],
        venue["epoch"],
        _now_playing(conn, venue_id),
        tuple(e for e in entries if e.queue == "priority"),
        tuple(e for e in entries if e.queue == "main"),
        _active_master(conn, venue_id),
        _venue_rules(conn, venue_id),
    )


def _playlist(conn: sqlite3.Connection, playlist_id: str) -> Playlist | None:
    row = conn.execute(
        "SELECT p.*, v.active_playlist_id FROM playlists p JOIN venues v USING (venue_id) WHERE p.playlist_id = ?",
        (playlist_id,),
    ).fetchone()
    if row is None:
        return None
    tracks = conn.execute(
        "SELECT * FROM playlist_tracks WHERE playlist_id = ? ORDER BY position", (playlist_id,)
    ).fetchall()
    return playlist_of(row, tracks)


def _venue_playlist(conn: sqlite3.Connection, venue_id: str, playlist_id: str) -> Playlist:
    playlist = _playlist(conn, playlist_id)
    if playlist is None or playlist.venue_id != venue_id:
        raise UnknownPlaylist(f"unknown playlist {playlist_id!r} at venue {venue_id!r}")
    return playlist


def _write_tracks(conn: sqlite3.Connection, playlist_id: str, tracks: Sequence[Song]) -> None:
    conn.execute("DELETE FROM playlist_tracks WHERE playlist_id = ?", (playlist_id,))
    conn.executemany(
        "INSERT INTO playlist_tracks (playlist_id, position, video_id, title, artist, duration, details_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(playlist_id, i, t.video_id, t.title, t.artist, t.duration, t.details_by)
         for i, t in enumerate(tracks, start=1)],
    )


def _venue_rules(conn: sqlite3.Connection, venue_id: str) -> VenueRules:
    venue = _require_venue(conn, venue_id)
    marks = conn.execute(
        "SELECT * FROM venue_marks WHERE venue_id = ? ORDER BY kind, value_key", (venue_id,)
    ).fetchall()
    return VenueRules(settings_of(venue), tuple(mark_of(r) for r in marks))


def _catalog(conn: sqlite3.Connection, video_ids: list[str], venue_id: str | None = None) -> dict[str, CatalogTrack]:
    found: dict[str, CatalogTrack] = {}
    query = CATALOG_FOR_VENUE.format(venue=":venue") + " WHERE c.video_id = :video"
    for video_id in dict.fromkeys(video_ids):
        row = conn.execute(query, {"venue": venue_id, "video": video_id}).fetchone()
        if row is not None:
            found[video_id] = catalog_track_of(row, for_venue=True)
    return found


def _mark_request_played(conn: sqlite3.Connection, request_id: str) -> None:
    conn.execute("UPDATE requests SET status = 'played' WHERE request_id = ? AND status = 'pending'", (request_id,))


def _replay(conn: sqlite3.Connection, write: MasterWrite) -> WriteResult | None:
    if write.idempotency_key is None:
        return None
    row = conn.execute(
        "SELECT result FROM master_writes WHERE venue_id = ? AND idempotency_key = ?",
        (write.venue_id, write.idempotency_key),
    ).fetchone()
    return None if row is None else WriteResult(json.loads(row["result"]), replayed=True)


def _remember(conn: sqlite3.Connection, write: MasterWrite, body: Json, now_ms: int) -> None:
    if write.idempotency_key is not None:
        conn.execute(
            "INSERT INTO master_writes (venue_id, idempotency_key, result, created_at_ms) VALUES (?, ?, ?, ?)",
            (write.venue_id, write.idempotency_key, json.dumps(body), now_ms),
        )
