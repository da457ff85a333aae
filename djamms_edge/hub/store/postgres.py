"""The hub store on PostgreSQL (asyncpg), for several hub instances on one database.

Every public method is one transaction. A rule that must hold across instances
locks the venue's row first (``SELECT … FOR NO KEY UPDATE``): every writer of a
venue's registry, queue, requests or playlists queues up behind that one row lock,
so a check-then-write (one master, the per-artist limit, epoch fencing,
idempotency keys) sees every earlier commit and nothing can slip in between.
Always taking the venue row first also gives one lock order, so writers never
deadlock. Unique constraints back the rules up (one active player per venue, one
request per paymentId), and a magic link is consumed by one conditional UPDATE.

Hot paths take one round trip: a heartbeat is one statement, a paid request one
call of a server-side function (pg_schema, migration 2) that holds the venue lock
only inside PostgreSQL; rules stay in Python (rules.py) and are passed in.

Each change is also announced with ``pg_notify`` in the same transaction; the
``ChangeListener`` on every instance turns that into the store's change events.
While the database is unreachable every method raises ``StoreUnavailable`` (503).
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from djamms_edge.hub.identity import artist_key
from djamms_edge.hub.ratelimit import RateLimiter
from djamms_edge.hub.rules import (
    admins_duration,
    decide_register,
    decide_release,
    mark_key,
    moved,
    paid_request_refusal,
    shared_by_agreement,
)
from djamms_edge.hub.store import executions_sql, redacted_url
from djamms_edge.hub.store.base import (
    DAY_MS,
    KEEP_DEVICE_ERRORS_MS,
    KEEP_WRITES_MS,
    PAID_CREDIT,
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
    StoreError,
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
from djamms_edge.hub.store.payments_sql import numbered
from djamms_edge.hub.store.pg_executions import PgExecutions
from djamms_edge.hub.store.pg_listen import CHANNEL, ChangeListener
from djamms_edge.hub.store.pg_migrations import apply_migrations
from djamms_edge.hub.store.pg_payments import PgPayments
from djamms_edge.hub.store.pg_schema import MIGRATIONS
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

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = Any  # asyncpg.Connection; asyncpg ships no type information

# No floor: connections are opened on demand and kept while used (asyncpg closes them after 5 idle
# minutes). A floor would have asyncpg log a traceback at every release while the database is down.
POOL_MIN = 0
POOL_MAX = 10
# The rare deadlock or serialization failure is retried this often, then surfaces.
TRANSIENT_RETRIES = 3
TRANSIENT_ERRORS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# The database is gone (restarting, unreachable, full): the hub answers 503, not 500, until it is back.
# Class 53 is a full disk, out of memory or too many connections; 58 an I/O error on the server; 25006 a
# write on a read-only server (a standby after failover); 57 an administrator's shutdown or cancel.
# InterfaceError/InternalClientError: a connection torn down mid-transaction ("the underlying connection
# is closed"); a misuse bug would land here too, but is still logged (once) with its message.
OUTAGE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                 asyncpg.AdminShutdownError, asyncpg.TooManyConnectionsError, asyncpg.InterfaceError,
                 asyncpg.InternalClientError, asyncpg.InsufficientResourcesError, asyncpg.PostgresSystemError,
                 asyncpg.ReadOnlySQLTransactionError, asyncpg.OperatorInterventionError)


# A notification payload prefix: a venue's rules or price changed. No venue id starts with '#' (web_input.ID_PATTERN).
RULES_NEWS = "#rules:"
REPORT_UPSERT = (
    "INSERT INTO devices (venue_id, device_id, software_version, user_agent, now_playing, problems,"
    " reported_at_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
    " ON CONFLICT (venue_id, device_id) DO UPDATE SET software_version = excluded.software_version,"
    " user_agent = excluded.user_agent, now_playing = excluded.now_playing,"
    " problems = excluded.problems, reported_at_ms = excluded.reported_at_ms"
)
# A beat answered from memory, written behind it (see sqlite.LIVENESS_UPDATE): $1 beat, $2 expire_ms, $3 venue,
# $4 device, $5 epoch, $6 instance, $7 entry, $8 seconds, $9 position time.
_NEWER_POSITION = "$9::bigint IS NOT NULL AND $9 >= coalesce(position_at_ms, 0)"
LIVENESS_UPDATE = (
    "UPDATE players SET last_heartbeat_ms = greatest(last_heartbeat_ms, $1),"
    " expires_at_ms = greatest(expires_at_ms, $1 + $2),"
    f" position_entry_id = CASE WHEN {_NEWER_POSITION} THEN $7 ELSE position_entry_id END,"
    f" position_s = CASE WHEN {_NEWER_POSITION} THEN $8 ELSE position_s END,"
    f" position_at_ms = CASE WHEN {_NEWER_POSITION} THEN $9 ELSE position_at_ms END,"
    " instance_id = coalesce(instance_id, $6)"
    " WHERE venue_id = $3 AND device_id = $4 AND status = 'active' AND epoch = $5"
    " AND expires_at_ms >= $1 AND ($6::text IS NULL OR instance_id IS NULL OR instance_id = $6)"
    " RETURNING 1"
)


class UnstorableValue(StoreError):
    """Client text PostgreSQL cannot hold (NUL, an unpaired surrogate); refused, never a 500."""


async def migrate_database(url: str) -> list[int]:
    """Bring the database at ``url`` to the current schema; returns the migrations applied now."""
    conn = await asyncpg.connect(url)
    try:
        return await apply_migrations(conn, MIGRATIONS)
    finally:
        await conn.close()


class PostgresStore(ChangeNews, PgPayments, PgExecutions):
    def __init__(self, url: str, *, retain_changes: int = 1000, pool_min: int = POOL_MIN,
                 pool_max: int = POOL_MAX) -> None:
        self.url = url
        self._retain = retain_changes
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._pool: Any = None
        ChangeNews.__init__(self)
        self._listener = ChangeListener(url, self._on_notification, self._announce_everything)
        self._outage: str | None = None  # why, while it lasts: logged once when it starts and once when it ends

    async def open(self) -> None:
        try:
            await migrate_database(self.url)
            self._pool = await asyncpg.create_pool(self.url, min_size=self._pool_min, max_size=self._pool_max)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"PostgreSQL store {redacted_url(self.url)} unavailable: {exc}") from exc
        try:
            await self._listener.start()
        except BaseException:
            await self._pool.close()
            raise

    async def close(self) -> None:
        await self._listener.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def rate_limiter(self, scope: str, capacity: int, per_seconds: float) -> RateLimiter:
        return SharedRateLimiter(self, scope, capacity, per_seconds)

    def trouble(self) -> str | None:
        return self._outage

    # --- change events ---------------------------------------------------------------------------

    async def _announce_rules(self, conn: Conn, venue_id: str) -> None:
        """Tell every instance (at commit) that ``venue_id``'s rules or price changed."""
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, RULES_NEWS + venue_id)

    def _on_notification(self, venue_id: str) -> None:
        """A NOTIFY from any instance (this one's too)."""
        if venue_id.startswith(RULES_NEWS):  # not a change of the venue's feed: news for rule caches
            self._rules_changed(venue_id.removeprefix(RULES_NEWS))
        else:
            self._announce_change(venue_id)

    # --- transactions ----------------------------------------------------------------------------

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]], *, read_only: bool = False,
                  single_statement: bool = False) -> T:
        """Run ``fn(conn)`` in one transaction; retried only on deadlock/serialization failures.

        Reads use REPEATABLE READ so a multi-statement read (a snapshot) sees one instant. A
        ``single_statement`` function runs without BEGIN/COMMIT: one statement is atomic by itself,
        and that saves two round trips."""
        if self._pool is None:
            raise RuntimeError("PostgreSQL store is not open")
        isolation = "repeatable_read" if read_only else "read_committed"
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                async with self._pool.acquire() as conn:
                    if single_statement:
                        result = await fn(conn)
                    else:
                        async with conn.transaction(isolation=isolation, readonly=read_only):
                            result = await fn(conn)
            except TRANSIENT_ERRORS as exc:
                if attempt == TRANSIENT_RETRIES:
                    raise
                log.debug("retrying transaction after %r", exc)
                continue
            except asyncpg.DataError:
                # SQLite stores a NUL happily; PostgreSQL text cannot, and no UTF-8 holds a lone surrogate.
                raise UnstorableValue("text contains a NUL or unpaired surrogate character") from None
            except OUTAGE_ERRORS as exc:
                if self._outage is None:
                    log.warning("PostgreSQL unavailable: %r", exc)
                self._outage = f"PostgreSQL unavailable: {exc}"
                raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
            if self._outage is not None:
                self._outage = None
                log.info("PostgreSQL available again")
            return result
        raise AssertionError("unreachable")

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        return await self._tx(fn, read_only=True)

    async def _one(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """``fn`` runs exactly one statement: atomic on its own, no BEGIN/COMMIT round trips."""
        return await self._tx(fn, single_statement=True)

    # --- venues and users ------------------------------------------------------------------------

    async def create_venue(self, venue_id: str, name: str, now_ms: int, timezone: str = "UTC") -> bool:
        async def tx(conn: Conn) -> bool:
            status = await conn.execute(
                "INSERT INTO venues (venue_id, name, timezone, created_at_ms) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT DO NOTHING",
                venue_id, name, timezone, now_ms,
            )
            return bool(status == "INSERT 0 1")

        return await self._one(tx)

    async def get_venue(self, venue_id: str) -> Venue | None:
        async def read(conn: Conn) -> Venue | None:
            row = await conn.fetchrow(f"SELECT {VENUE_COLUMNS} FROM venues WHERE venue_id = $1", venue_id)
            return None if row is None else venue_of(row)

        return await self._one(read)

    async def list_venues(self) -> list[Venue]:
        async def read(conn: Conn) -> list[Venue]:
            return [venue_of(r) for r in await conn.fetch(f"SELECT {VENUE_COLUMNS} FROM venues ORDER BY venue_id")]

        return await self._one(read)

    async def upsert_user(self, user: User, now_ms: int, *, only_staff_of: str | None = None) -> User:
        async def tx(conn: Conn) -> User:
            row = await conn.fetchrow(
                "INSERT INTO users AS u (user_id, email, venue_id, role, autoplay, created_at_ms)"
                " VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (email) DO UPDATE SET venue_id = excluded.venue_id, role = excluded.role,"
                " token_version = u.token_version"
                " + (u.venue_id IS DISTINCT FROM excluded.venue_id OR u.role IS DISTINCT FROM excluded.role)::int"
                " WHERE $7::text IS NULL OR (u.role = 'staff' AND (u.venue_id IS NULL OR u.venue_id = $7))"
                " RETURNING *",
                user.user_id, user.email, user.venue_id, user.role, user.autoplay, now_ms, only_staff_of,
            )
            if row is None:  # the guard kept an existing user as they are (the conflicting row is locked)
                row = await conn.fetchrow("SELECT * FROM users WHERE email = $1", user.email)
            return user_of(row)

        return await self._tx(tx)

    async def get_user(self, user_id: str) -> User | None:
        async def read(conn: Conn) -> User | None:
            row = await conn.fetchrow("SELECT * FROM users WHERE user_id = $1", user_id)
            return None if row is None else user_of(row)

        return await self._one(read)

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._one(lambda conn: _user_by_email(conn, email))

    async def list_users(self, venue_id: str | None) -> list[User]:
        async def read(conn: Conn) -> list[User]:
            rows = await conn.fetch(
                "SELECT * FROM users WHERE $1::text IS NULL OR venue_id = $1 ORDER BY email", venue_id
            )
            return [user_of(r) for r in rows]

        return await self._one(read)

    async def remove_user(self, user_id: str, *, only_staff_of: str | None = None) -> bool:
        async def statement(conn: Conn) -> bool:
            return _affected(await conn.execute(f"DELETE FROM users WHERE user_id = $1 AND {_ONLY_STAFF_OF}",
                                                user_id, only_staff_of)) == 1

        return await self._one(statement)

    async def bump_user_tokens(self, user_id: str, *, only_staff_of: str | None = None) -> int | None:
        async def statement(conn: Conn) -> int | None:
            version = await conn.fetchval(
                "UPDATE users SET token_version = token_version + 1"
                f" WHERE user_id = $1 AND {_ONLY_STAFF_OF} RETURNING token_version",
                user_id, only_staff_of,
            )
            return None if version is None else int(version)

        return await self._one(statement)

    # --- device credentials, reports and pairing -------------------------------------------------

    async def device_token_version(self, venue_id: str, device_id: str) -> int | None:
        async def read(conn: Conn) -> int | None:
            row = await conn.fetchrow(
                "SELECT token_version, revoked FROM devices WHERE venue_id = $1 AND device_id = $2",
                venue_id, device_id,
            )
            if row is None:
                return 0
            return None if row["revoked"] else int(row["token_version"])

        return await self._one(read)

    async def reissue_device(self, venue_id: str, device_id: str, now_ms: int) -> int:
        async def tx(conn: Conn) -> int:
            await _require_venue(conn, venue_id)
            return await _reissue_device(conn, venue_id, device_id, now_ms)

        return await self._tx(tx)

    async def revoke_device(self, venue_id: str, device_id: str, now_ms: int) -> bool:
        async def tx(conn: Conn) -> bool:
            await _lock_venue(conn, venue_id)
            known = await conn.fetchval(
                "UPDATE devices SET token_version = token_version + 1, revoked = true"
                " WHERE venue_id = $1 AND device_id = $2 RETURNING true", venue_id, device_id,
            )
            if not known:
                if await conn.fetchval(
                    "SELECT 1 FROM players WHERE venue_id = $1 AND device_id = $2 LIMIT 1", venue_id, device_id
                ) is None:
                    return False
                # A box on a hand-copied token that never reported: revoke it all the same.
                await conn.execute(
                    "INSERT INTO devices (venue_id, device_id, token_version, revoked, created_at_ms)"
                    " VALUES ($1, $2, 1, true, $3)", venue_id, device_id, now_ms,
                )
            if await conn.fetchval(
                "UPDATE players SET status = 'offline', expires_at_ms = $1"
                " WHERE venue_id = $2 AND device_id = $3 AND status = 'active' RETURNING true",
                now_ms, venue_id, device_id,
            ):
                await self._emit(conn, venue_id, {"type": "master", "master": None}, now_ms)
            return True

        revoked = await self._tx(tx)
        self._announce_change(venue_id)
        return bool(revoked)

    async def record_device_report(self, venue_id: str, device_id: str, report: DeviceReport, now_ms: int) -> None:
        async def statement(conn: Conn) -> None:
            await conn.execute(REPORT_UPSERT, venue_id, device_id, *report_columns(report), now_ms)

        await self._one(statement)

    async def list_devices(self, venue_id: str) -> list[DeviceRecord]:
        async def read(conn: Conn) -> list[DeviceRecord]:
            rows = await conn.fetch("SELECT * FROM devices WHERE venue_id = $1 ORDER BY device_id", venue_id)
            return [device_of(r) for r in rows]

        return await self._one(read)

    async def create_pairing(self, code_hash: str, secret_hash: str, device_id: str, expires_ms: int,
                             now_ms: int) -> bool:
        async def tx(conn: Conn) -> bool:
            await conn.execute("DELETE FROM pairings WHERE code_hash = $1 AND expires_at_ms <= $2", code_hash, now_ms)
            status = await conn.execute(
                "INSERT INTO pairings (code_hash, secret_hash, device_id, status, expires_at_ms, created_at_ms)"
                " VALUES ($1, $2, $3, 'pending', $4, $5) ON CONFLICT DO NOTHING",
                code_hash, secret_hash, device_id, expires_ms, now_ms,
            )
            return bool(status == "INSERT 0 1")

        return await self._tx(tx)

    async def claim_pairing(self, code_hash: str, venue_id: str, claimed_by: str, now_ms: int) -> PairingState:
        async def tx(conn: Conn) -> PairingState:
            await _require_venue(conn, venue_id)
            # One conditional UPDATE: of two staff entering the same code at once, the second waits for the
            # first's row lock, re-checks status = 'pending' on the committed row and matches nothing.
            row = await conn.fetchrow(
                "UPDATE pairings SET status = 'claimed', venue_id = $1, claimed_by = $2"
                " WHERE code_hash = $3 AND status = 'pending' AND expires_at_ms > $4"
                " RETURNING device_id, expires_at_ms",
                venue_id, claimed_by, code_hash, now_ms,
            )
            if row is None:
                return PairingState("unknown")
            version = await _reissue_device(conn, venue_id, row["device_id"], now_ms)
            await conn.execute("UPDATE pairings SET token_version = $1 WHERE code_hash = $2", version, code_hash)
            return PairingState("claimed", row["device_id"], venue_id, version, row["expires_at_ms"])

        return await self._tx(tx)

    async def collect_pairing(self, secret_hash: str, now_ms: int) -> PairingState:
        async def tx(conn: Conn) -> PairingState:
            row = await conn.fetchrow(
                "UPDATE pairings SET status = 'delivered' WHERE secret_hash = $1 AND status = 'claimed'"
                " RETURNING device_id, venue_id, token_version, expires_at_ms", secret_hash,
            )
            if row is not None:
                return PairingState("claimed", row["device_id"], row["venue_id"], row["token_version"],
                                    row["expires_at_ms"])
            row = await conn.fetchrow(
                "SELECT device_id, expires_at_ms FROM pairings"
                " WHERE secret_hash = $1 AND status = 'pending' AND expires_at_ms > $2", secret_hash, now_ms,
            )
            if row is None:
                return PairingState("unknown")
            return PairingState("pending", row["device_id"], expires_at_ms=row["expires_at_ms"])

        return await self._tx(tx)

    # --- magic links -----------------------------------------------------------------------------

    async def create_magic_link(
        self, token_hash: str, email: str, redirect_url: str, expires_ms: int, now_ms: int
    ) -> None:
        async def tx(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO magic_links (token_hash, email, redirect_url, expires_at_ms, created_at_ms)"
                " VALUES ($1, $2, $3, $4, $5)",
                token_hash, email, redirect_url, expires_ms, now_ms,
            )

        await self._one(tx)

    async def consume_magic_link(self, token_hash: str, now_ms: int, *, auto_create: bool, new_user_id: str) -> User:
        async def tx(conn: Conn) -> User:
            # One conditional UPDATE: of two concurrent verifies, the second waits for the first's row lock,
            # re-checks `used_at_ms IS NULL` against the committed row, and matches nothing.
            email = await conn.fetchval(
                "UPDATE magic_links SET used_at_ms = $1"
                " WHERE token_hash = $2 AND used_at_ms IS NULL AND expires_at_ms > $1 RETURNING email",
                now_ms, token_hash,
            )
            if email is None:
                raise InvalidMagicLink("Invalid or expired magic link")
            user = await _user_by_email(conn, email)
            if user is None:
                if not auto_create:
                    # Raising rolls the consumption back: the link stays usable once a user exists.
                    raise UserNotFound("User not found and auto-creation is disabled")
                # Two links for one new email verified at once: the loser's insert does nothing.
                await conn.execute(
                    "INSERT INTO users (user_id, email, venue_id, role, autoplay, created_at_ms)"
                    " VALUES ($1, $2, NULL, 'staff', true, $3) ON CONFLICT DO NOTHING",
                    new_user_id, email, now_ms,
                )
                user = await _user_by_email(conn, email)
                assert user is not None
            return user

        return await self._tx(tx)

    # --- player registry -------------------------------------------------------------------------

    async def register_player(
        self, venue_id: str, device_id: str, user_agent: str, now_ms: int, timings: RegistryTimings,
        instance_id: str | None = None, name_unnamed_lease: bool = True,
    ) -> RegistryAnswer:
        async def tx(conn: Conn) -> RegistryAnswer:
            await _lock_venue(conn, venue_id)
            await conn.execute(
                "UPDATE players SET status = 'offline'"
                " WHERE venue_id = $1 AND status = 'active' AND expires_at_ms < $2",
                venue_id, now_ms,
            )
            master = await _active_master(conn, venue_id)
            decision = decide_register(master, device_id, now_ms, timings.stale_ms, instance_id,
                                       timings.instance_grace_ms)
            lease_id = instance_id if name_unnamed_lease or (master and master.instance_id) else None
            if master is not None and decision == "reconnect":
                await conn.execute(
                    "UPDATE players SET last_heartbeat_ms = $1, expires_at_ms = $2, user_agent = $3,"
                    " instance_id = coalesce($5, instance_id) WHERE player_id = $4",
                    now_ms, now_ms + timings.expire_ms, user_agent, master.player_id, lease_id,
                )
                return RegistryAnswer("reconnected", master.epoch, master.player_id, device_id,
                                      master.last_heartbeat_ms)
            if master is not None and decision in ("conflict", "second_process"):
                return RegistryAnswer("conflict", master.epoch, None, master.device_id, master.last_heartbeat_ms,
                                      second_process=decision == "second_process")
            if master is not None:  # takeover: the reference's "expire old master"
                await conn.execute(
                    "UPDATE players SET status = 'offline', expires_at_ms = $1 WHERE player_id = $2",
                    now_ms, master.player_id,
                )
            epoch = await conn.fetchval(
                "UPDATE venues SET epoch = epoch + 1 WHERE venue_id = $1 RETURNING epoch", venue_id
            )
            player_id = secrets.token_hex(10)
            await conn.execute(
                "INSERT INTO players (player_id, venue_id, device_id, user_agent, status, epoch, last_heartbeat_ms,"
                " expires_at_ms, created_at_ms, instance_id) VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $6, $8)",
                player_id, venue_id, device_id, user_agent, epoch, now_ms, now_ms + timings.expire_ms,
                instance_id if name_unnamed_lease else None,
            )
            await self._emit(conn, venue_id, {"type": "master", "master": {"deviceId": device_id, "epoch": epoch}},
                             now_ms)
            return RegistryAnswer("registered", epoch, player_id)

        answer = await self._tx(tx)
        if answer.status == "registered":
            self._announce_change(venue_id)
        return answer

    async def heartbeat(self, venue_id: str, device_id: str, now_ms: int, timings: RegistryTimings,
                        position: PlayPosition | None = None, instance_id: str | None = None) -> RegistryAnswer:
        async def statement(conn: Conn) -> RegistryAnswer:
            # No venue lock: one conditional UPDATE of the device's own row. A concurrent takeover holds that
            # row's lock; this waits, re-checks status = 'active' on the committed row and matches nothing.
            row = await conn.fetchrow(
                "WITH beat AS (UPDATE players SET last_heartbeat_ms = $1, expires_at_ms = $2,"
                " position_entry_id = coalesce($5, position_entry_id), position_s = coalesce($6, position_s),"
                " position_at_ms = CASE WHEN $5::text IS NULL THEN position_at_ms ELSE $1 END,"
                " instance_id = coalesce(instance_id, $7)"
                " WHERE venue_id = $3 AND device_id = $4 AND status = 'active' AND expires_at_ms >= $1"
                " AND ($7::text IS NULL OR instance_id IS NULL OR instance_id = $7)"
                " RETURNING epoch)"
                " SELECT (SELECT epoch FROM beat) AS updated, (SELECT epoch FROM venues WHERE venue_id = $3) AS venue,"
                # the device holds the lease through another process (the statement's snapshot: before beat)
                " (SELECT last_heartbeat_ms FROM players WHERE venue_id = $3 AND device_id = $4 AND status = 'active'"
                "  AND expires_at_ms >= $1 AND instance_id <> $7) AS other_process",
                now_ms, now_ms + timings.expire_ms, venue_id, device_id, position and position.entry_id,
                position and position.seconds, instance_id,
            )
            if row["updated"] is not None:
                return RegistryAnswer("updated", row["updated"])
            if row["other_process"] is not None:
                return RegistryAnswer("conflict", row["venue"] or 0, None, device_id, row["other_process"],
                                      second_process=True)
            return RegistryAnswer("not_found", row["venue"] or 0)

        return await self._one(statement)

    async def release_player(self, venue_id: str, device_id: str, now_ms: int, timings: RegistryTimings,
                             instance_id: str | None = None) -> RegistryAnswer:
        async def tx(conn: Conn) -> RegistryAnswer:
            if await _lock_venue(conn, venue_id, required=False) is None:
                return RegistryAnswer("not_found", 0)
            master = await _active_master(conn, venue_id)
            decision = decide_release(master, device_id, now_ms, instance_id, timings.instance_grace_ms)
            if master is None or decision == "not_holder":
                return RegistryAnswer("not_found", await _venue_epoch(conn, venue_id))
            if decision == "second_process":
                return second_process_refused(master)
            await conn.execute("UPDATE players SET status = 'offline', expires_at_ms = $1 WHERE player_id = $2",
                               now_ms, master.player_id)
            await self._emit(conn, venue_id, {"type": "master", "master": None}, now_ms)
            return RegistryAnswer("released", master.epoch)

        answer = await self._tx(tx)
        if answer.status == "released":
            self._announce_change(venue_id)
        return answer

    async def current_master(self, venue_id: str) -> MasterInfo | None:
        return await self._one(lambda conn: _active_master(conn, venue_id))

    async def write_liveness(self, beats: Sequence[Liveness], timings: RegistryTimings) -> list[bool]:
        async def tx(conn: Conn) -> list[bool]:
            matched = []
            for beat in beats:
                position = beat.position
                matched.append(await conn.fetchval(
                    LIVENESS_UPDATE, beat.beat_ms, timings.expire_ms, beat.venue_id, beat.device_id, beat.epoch,
                    beat.instance_id, position and position.entry_id, position and position.seconds,
                    beat.position_ms if position else None,
                ) is not None)
                if beat.report is not None:
                    await conn.execute(REPORT_UPSERT, beat.venue_id, beat.device_id, *report_columns(beat.report),
                                       beat.report_ms or beat.beat_ms)
            return matched

        return await self._tx(tx)

    # --- paid requests ---------------------------------------------------------------------------

    async def submit_paid_request(self, request: PaidRequest, rules: RequestRules, now_ms: int) -> RequestOutcome:
        async def statement(conn: Conn) -> RequestOutcome:
            # One call, one statement, one round trip: the replay check, the venue lock (the 4th of 20
            # concurrent same-artist requests waits for it, then counts the 3 committed before it), the
            # request row, the queue entry and the change all happen inside PostgreSQL (pg_schema, migration 2).
            song = request.song
            refusals = [paid_request_refusal(song.duration, n, rules) for n in range(rules.artist_limit + 1)]
            request_id = request.request_id or str(uuid.uuid4())
            entry = _with_new_id(QueueEntry("", "priority", song, request_id, request.requester_id, PAID_CREDIT))
            row = await conn.fetchrow(
                "SELECT * FROM djamms_submit_paid_request($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
                " $14, $15::json, $16, $17, $18, $19)",
                request.venue_id, request.payment_id, request_id, request.requester_id, request.client_address,
                song.video_id, song.title, song.artist, artist_key(song.artist), song.duration,
                now_ms - rules.artist_window_ms, refusals, entry.entry_id, entry.paid_credit,
                json.dumps({"type": "entry_added", "entry": entry.to_json()}), now_ms, self._retain, PRUNE_EVERY,
                CHANNEL,
            )
            if row is None:
                raise UnknownVenue(f"unknown venue {request.venue_id!r}")
            status: RequestStatus = row["r_status"]
            return RequestOutcome(row["r_request_id"], status != "refund_due", row["r_reason"], row["r_replayed"],
                                  status)

        outcome = await self._one(statement)
        if outcome.accepted and not outcome.replayed:
            self._announce_change(request.venue_id)
        return outcome

    async def list_requests(self, venue_id: str, status: RequestStatus | None, limit: int) -> list[RequestRecord]:
        async def read(conn: Conn) -> list[RequestRecord]:
            rows = await conn.fetch(
                "SELECT * FROM requests WHERE venue_id = $1 AND ($2::text IS NULL OR status = $2)"
                " ORDER BY created_at_ms DESC LIMIT $3",
                venue_id, status, limit,
            )
            return [request_of(r) for r in rows]

        return await self._one(read)

    async def refuse_request(self, venue_id: str, request_id: str, reason: str, now_ms: int, *,
                             fence: MasterWrite | None = None) -> Refusal:
        async def tx(conn: Conn) -> Refusal:
            # The venue lock orders this after any advance that might be taking the entry to now playing.
            await _lock_venue(conn, venue_id, required=False)
            if fence is not None:
                await _require_master(conn, fence)
            row = await conn.fetchrow(
                "SELECT * FROM requests WHERE request_id = $1 AND venue_id = $2", request_id, venue_id
            )
            if row is None:
                raise UnknownRequest(f"unknown request {request_id!r} at venue {venue_id!r}")
            if row["status"] not in REFUSABLE_STATUSES:
                return Refusal(request_of(row), changed=False)
            refused = await conn.fetchrow(
                "UPDATE requests SET status = 'refund_due', reason = $1 WHERE request_id = $2 RETURNING *",
                reason, request_id,
            )
            removed = tuple(r["entry_id"] for r in await conn.fetch(
                "DELETE FROM queue_entries WHERE venue_id = $1 AND request_id = $2 RETURNING entry_id",
                venue_id, request_id,
            ))
            for entry_id in removed:
                await self._emit(conn, venue_id, {"type": "entry_removed", "entryId": entry_id}, now_ms)
            return Refusal(request_of(refused), changed=True, removed_entry_ids=removed)

        refusal = await self._tx(tx)
        if refusal.removed_entry_ids:
            self._announce_change(venue_id)
        return refusal

    # --- playlists and catalog -------------------------------------------------------------------

    async def create_playlist(self, venue_id: str, name: str, now_ms: int) -> Playlist:
        async def tx(conn: Conn) -> Playlist:
            await _require_venue(conn, venue_id)
            playlist_id = "pl-" + secrets.token_hex(8)
            await conn.execute(
                "INSERT INTO playlists (playlist_id, venue_id, name, created_at_ms) VALUES ($1, $2, $3, $4)",
                playlist_id, venue_id, name, now_ms,
            )
            return Playlist(playlist_id, venue_id, name)

        return await self._tx(tx)

    async def get_playlist(self, playlist_id: str) -> Playlist | None:
        return await self._read(lambda conn: _playlist(conn, playlist_id))

    async def list_playlists(self, venue_id: str) -> list[Playlist]:
        async def read(conn: Conn) -> list[Playlist]:
            ids = await conn.fetch(
                "SELECT playlist_id FROM playlists WHERE venue_id = $1 ORDER BY created_at_ms, playlist_id", venue_id
            )
            found = [await _playlist(conn, r["playlist_id"]) for r in ids]
            return [p for p in found if p is not None]

        return await self._read(read)

    async def add_track(self, playlist_id: str, song: Song, now_ms: int) -> Playlist:
        async def tx(conn: Conn) -> tuple[Playlist, bool]:
            venue_id = await conn.fetchval("SELECT venue_id FROM playlists WHERE playlist_id = $1", playlist_id)
            if venue_id is None:
                raise UnknownPlaylist(f"unknown playlist {playlist_id!r}")
            # Venue first (the one lock order), then the playlist's next position is ours alone.
            await _lock_venue(conn, venue_id)
            playlist = await _playlist(conn, playlist_id)
            assert playlist is not None
            await conn.execute(
                "INSERT INTO playlist_tracks (playlist_id, position, video_id, title, artist, duration, details_by)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                playlist_id, len(playlist.tracks) + 1, song.video_id, song.title, song.artist, song.duration,
                song.details_by,
            )
            if playlist.active:  # the venue plays this list: the new song joins the rotation at once
                await self._append_entry(conn, playlist.venue_id, QueueEntry("", "main", song), now_ms)
            updated = await _playlist(conn, playlist_id)
            assert updated is not None
            return updated, playlist.active

        playlist, changed_queue = await self._tx(tx)
        if changed_queue:
            self._announce_change(playlist.venue_id)
        return playlist

    async def activate_playlist(self, venue_id: str, playlist_id: str, now_ms: int) -> int:
        async def tx(conn: Conn) -> int:
            if await _lock_venue(conn, venue_id, required=False) is None:
                raise UnknownPlaylist(f"unknown playlist {playlist_id!r} at venue {venue_id!r}")
            return await self._activate(conn, venue_id, playlist_id, now_ms)

        return await self._venue_tx(venue_id, tx)

    async def report_analysis(self, analysis: Analysis, now_ms: int) -> CatalogTrack:
        async def tx(conn: Conn) -> CatalogTrack:
            if analysis.venue_id is not None:
                # One report of a video at a time (the catalog row locked first): two venues reporting at once
                # would each miss the other's uncommitted analysis and neither share it (read committed).
                await conn.execute("INSERT INTO catalog (video_id) VALUES ($1) ON CONFLICT DO NOTHING",
                                   analysis.video_id)
                await conn.execute("SELECT 1 FROM catalog WHERE video_id = $1 FOR UPDATE", analysis.video_id)
                await conn.execute(
                    "INSERT INTO venue_analyses (venue_id, video_id, duration, analysis_start, analysis_end, loudness,"
                    " analysed_by, analysed_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    " ON CONFLICT (venue_id, video_id) DO UPDATE SET duration = excluded.duration,"
                    " analysis_start = excluded.analysis_start, analysis_end = excluded.analysis_end,"
                    " loudness = excluded.loudness, analysed_by = excluded.analysed_by,"
                    " analysed_at_ms = excluded.analysed_at_ms",
                    analysis.venue_id, analysis.video_id, analysis.duration, analysis.real_start_offset,
                    analysis.real_end_offset, analysis.loudness, analysis.device_id, now_ms,
                )
                others = await conn.fetch("SELECT * FROM venue_analyses WHERE video_id = $1 AND venue_id <> $2",
                                          analysis.video_id, analysis.venue_id)
                if not shared_by_agreement(analysis, [venue_analysis_of(row) for row in others],
                                           await _known_durations(conn, analysis.video_id)):
                    return (await _catalog(conn, [analysis.video_id], analysis.venue_id))[analysis.video_id]
            await conn.execute(
                "INSERT INTO catalog AS c (video_id, duration, analysis_start, analysis_end, loudness, analysed_by,"
                " analysed_at_ms, trusted_duration) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (video_id) DO UPDATE SET duration = COALESCE(excluded.duration, c.duration),"
                " analysis_start = COALESCE(excluded.analysis_start, c.analysis_start),"
                " analysis_end = COALESCE(excluded.analysis_end, c.analysis_end),"
                " loudness = COALESCE(excluded.loudness, c.loudness),"
                " analysed_by = excluded.analysed_by, analysed_at_ms = excluded.analysed_at_ms,"
                " trusted_duration = COALESCE(excluded.trusted_duration, c.trusted_duration)",
                analysis.video_id, analysis.duration, analysis.real_start_offset, analysis.real_end_offset,
                analysis.loudness, analysis.device_id, now_ms, admins_duration(analysis),
            )
            return (await _catalog(conn, [analysis.video_id], analysis.venue_id))[analysis.video_id]

        return await self._tx(tx)

    async def known_durations(self, video_id: str) -> list[KnownDuration]:
        return await self._one(lambda conn: _known_durations(conn, video_id))

    async def set_override(self, video_id: str, override: Offsets | None, by: str, now_ms: int) -> CatalogTrack:
        async def tx(conn: Conn) -> CatalogTrack:
            start, end = (override.start, override.end) if override else (None, None)
            row = await conn.fetchrow(
                "INSERT INTO catalog (video_id, override_set, override_start, override_end, override_by,"
                " override_at_ms) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (video_id) DO UPDATE SET override_set = excluded.override_set,"
                " override_start = excluded.override_start, override_end = excluded.override_end,"
                " override_by = excluded.override_by, override_at_ms = excluded.override_at_ms"
                " RETURNING *",
                video_id, override is not None, start, end, by, now_ms,
            )
            return catalog_track_of(row)

        return await self._one(tx)

    async def set_venue_override(self, venue_id: str, video_id: str, override: Offsets | None, by: str,
                                 now_ms: int) -> CatalogTrack:
        async def tx(conn: Conn) -> CatalogTrack:
            await _require_venue(conn, venue_id)
            await conn.execute("INSERT INTO catalog (video_id) VALUES ($1) ON CONFLICT DO NOTHING", video_id)
            if override is None:
                await conn.execute("DELETE FROM venue_overrides WHERE venue_id = $1 AND video_id = $2",
                                   venue_id, video_id)
            else:
                await conn.execute(
                    "INSERT INTO venue_overrides (venue_id, video_id, override_start, override_end, override_by,"
                    " override_at_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (venue_id, video_id) DO UPDATE SET"
                    " override_start = excluded.override_start, override_end = excluded.override_end,"
                    " override_by = excluded.override_by, override_at_ms = excluded.override_at_ms",
                    venue_id, video_id, override.start, override.end, by, now_ms,
                )
            return (await _catalog(conn, [video_id], venue_id))[video_id]

        return await self._tx(tx)

    async def get_catalog(self, video_ids: list[str], venue_id: str | None = None) -> dict[str, CatalogTrack]:
        return await self._one(lambda conn: _catalog(conn, video_ids, venue_id))

    # --- queue and feed --------------------------------------------------------------------------

    async def queue_snapshot(self, venue_id: str) -> QueueSnapshot:
        return await self._read(lambda conn: _snapshot(conn, venue_id))

    async def changes_since(self, venue_id: str, version: int, limit: int) -> ChangeBatch:
        async def statement(conn: Conn) -> list[Any]:
            # The venue's version and the changes after ``version`` in one statement (one snapshot, one
            # round trip): every feed wake-up and every poll of every edge comes through here.
            return list(await conn.fetch(
                "SELECT v.version AS current, c.version, c.change FROM venues v LEFT JOIN LATERAL"
                " (SELECT version, change FROM venue_changes WHERE venue_id = v.venue_id AND version > $2"
                "  ORDER BY version LIMIT $3) c ON true"
                " WHERE v.venue_id = $1 ORDER BY c.version",
                venue_id, version, limit,
            ))

        rows = await self._one(statement)
        if not rows:
            raise UnknownVenue(f"unknown venue {venue_id!r}")
        current = rows[0]["current"]
        if version == current:
            return ChangeBatch(current)
        if version < current and rows[0]["version"] == version + 1:
            changes = tuple(Change(r["version"], json.loads(r["change"])) for r in rows)
            return ChangeBatch(current, changes, more=changes[-1].version < current)
        # Too old for the log (or from a future this hub never had): start over from a snapshot.
        snapshot = await self.queue_snapshot(venue_id)
        return ChangeBatch(snapshot.version, snapshot=snapshot)

    async def advance_queue(self, write: MasterWrite, finished_entry_id: str | None, now_ms: int) -> WriteResult:
        async def change(conn: Conn) -> Json:
            current = await _now_playing(conn, write.venue_id)
            if finished_entry_id is not None and (current is None or current.entry.entry_id != finished_entry_id):
                # A resent advance for a track already left behind: never pop a second entry.
                return {"advanced": False, "nowPlaying": None if current is None else current.to_json()}
            head = await conn.fetchrow(
                "SELECT * FROM queue_entries WHERE venue_id = $1"
                " ORDER BY CASE queue WHEN 'priority' THEN 0 ELSE 1 END, seq LIMIT 1",
                write.venue_id,
            )
            playing = None if head is None else await self._take_entry(conn, write, entry_of(head), now_ms)
            if playing is None and current is not None:
                if current.entry.request_id is not None:
                    await _mark_request_played(conn, current.entry.request_id)
                await conn.execute("DELETE FROM now_playing WHERE venue_id = $1", write.venue_id)
                await self._emit(conn, write.venue_id, {"type": "now_playing", "nowPlaying": None}, now_ms)
            return {"advanced": True, "nowPlaying": None if playing is None else playing.to_json()}

        return await self._master_write(write, change, now_ms)

    async def set_now_playing(
        self, write: MasterWrite, entry_id: str | None, song: Song | None, now_ms: int
    ) -> WriteResult:
        async def change(conn: Conn) -> Json:
            current = await _now_playing(conn, write.venue_id)
            if current is not None and entry_id is not None and current.entry.entry_id == entry_id:
                if (current.device_id, current.epoch) == (write.device_id, write.epoch):
                    return {"nowPlaying": current.to_json()}  # a resend
                # A take-over resumed the entry its last box was cut off in: the same play, on this box now.
                await conn.execute(
                    "UPDATE now_playing SET device_id = $1, epoch = $2, ended_at_ms = NULL WHERE venue_id = $3",
                    write.device_id, write.epoch, write.venue_id,
                )
                moved = await _now_playing(conn, write.venue_id)
                assert moved is not None
                await self._emit(conn, write.venue_id, {"type": "now_playing", "nowPlaying": moved.to_json()}, now_ms)
                return {"nowPlaying": moved.to_json()}
            row = None
            if entry_id is not None:
                row = await conn.fetchrow(
                    "SELECT * FROM queue_entries WHERE venue_id = $1 AND entry_id = $2", write.venue_id, entry_id
                )
            if row is not None:
                playing = await self._take_entry(conn, write, entry_of(row), now_ms)
            elif song is not None:
                # Played from the edge's own replica (offline, or a playlist track the hub no longer queues).
                adhoc = QueueEntry(entry_id or "e-" + secrets.token_hex(8), "main", song)
                playing = await self._set_playing(conn, write, adhoc, now_ms)
            else:
                raise UnknownEntry(f"entry {entry_id!r} is not queued at venue {write.venue_id!r}; send the song")
            return {"nowPlaying": playing.to_json()}

        return await self._master_write(write, change, now_ms)

    async def report_played(self, write: MasterWrite, report: PlayReport, now_ms: int) -> WriteResult:
        async def tx(conn: Conn) -> WriteResult:
            # The venue lock orders this against a concurrent resend carrying the same idempotency key.
            await _lock_venue(conn, write.venue_id, required=False)
            replay = await _replay(conn, write)
            if replay is not None:
                return replay
            # History is a fact, not a queue change: any epoch this device really held is accepted, so a
            # master that played through an outage and lost its lease meanwhile still reports what it played.
            held = await conn.fetchval(
                "SELECT 1 FROM players WHERE venue_id = $1 AND device_id = $2 AND epoch = $3",
                write.venue_id, write.device_id, write.epoch,
            )
            if held is None:
                master = await _active_master(conn, write.venue_id)
                raise StaleEpoch(await _venue_epoch(conn, write.venue_id), master.device_id if master else None)
            video_id = report.song.video_id if report.song else None
            request_id = report.request_id
            if report.entry_id is not None and (video_id is None or request_id is None):
                for table in ("now_playing", "queue_entries"):
                    row = await conn.fetchrow(
                        f"SELECT video_id, request_id FROM {table} WHERE venue_id = $1 AND entry_id = $2",
                        write.venue_id, report.entry_id,
                    )
                    if row is not None:
                        video_id, request_id = video_id or row["video_id"], request_id or row["request_id"]
                        break
            if video_id is None:
                raise UnknownEntry(f"entry {report.entry_id!r} is unknown at venue {write.venue_id!r}; send the song")
            history_id = await conn.fetchval(
                "INSERT INTO play_history (venue_id, entry_id, video_id, request_id, device_id, epoch, played_at_ms)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                write.venue_id, report.entry_id, video_id, request_id, write.device_id, write.epoch,
                report.played_at_ms,
            )
            if request_id is not None:
                await _mark_request_played(conn, request_id)
            if report.entry_id is not None:  # its play is over: a box taking over does not resume it
                await conn.execute("UPDATE now_playing SET ended_at_ms = $1 WHERE venue_id = $2 AND entry_id = $3",
                                   report.played_at_ms, write.venue_id, report.entry_id)
            body = {"recorded": True, "historyId": history_id}
            await _remember(conn, write, body, now_ms)
            return WriteResult(body)

        return await self._tx(tx)

    async def play_history(self, venue_id: str, limit: int = 100) -> list[Json]:
        async def read(conn: Conn) -> list[Json]:
            rows = await conn.fetch(
                "SELECT entry_id, video_id, request_id, device_id, epoch, played_at_ms FROM play_history"
                " WHERE venue_id = $1 ORDER BY played_at_ms DESC, id DESC LIMIT $2",
                venue_id, limit,
            )
            return [history_json(r) for r in rows]

        return await self._one(read)

    async def report_device_error(self, report: DeviceError, now_ms: int) -> WriteResult:
        async def tx(conn: Conn) -> WriteResult:
            await _require_venue(conn, report.venue_id)
            error_id = await conn.fetchval(
                "INSERT INTO device_errors (venue_id, device_id, idempotency_key, video_id, message, at_ms,"
                " received_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
                report.venue_id, report.device_id, report.idempotency_key, report.video_id, report.message,
                report.at_ms, now_ms,
            )
            if error_id is not None:
                return WriteResult({"recorded": True, "errorId": error_id})
            # A resend: ON CONFLICT waited for the first insert to commit, so this statement sees it.
            error_id = await conn.fetchval(
                "SELECT id FROM device_errors WHERE venue_id = $1 AND device_id = $2 AND idempotency_key = $3",
                report.venue_id, report.device_id, report.idempotency_key,
            )
            return WriteResult({"recorded": True, "errorId": error_id}, replayed=True)

        return await self._tx(tx)

    async def device_errors(self, venue_id: str, limit: int) -> list[Json]:
        async def read(conn: Conn) -> list[Json]:
            rows = await conn.fetch(
                "SELECT * FROM device_errors WHERE venue_id = $1 ORDER BY received_at_ms DESC, id DESC LIMIT $2",
                venue_id, limit,
            )
            return [device_error_json(r) for r in rows]

        return await self._one(read)

    async def housekeeping(self, now_ms: int) -> int:
        async def tx(conn: Conn) -> int:
            removed = 0
            for statement, cutoff in (
                ("DELETE FROM rate_buckets WHERE refilled_at_ms < $1", now_ms),
                ("DELETE FROM magic_links WHERE expires_at_ms < $1", now_ms - DAY_MS),
                ("DELETE FROM master_writes WHERE created_at_ms < $1", now_ms - KEEP_WRITES_MS),
                ("DELETE FROM players WHERE status = 'offline' AND expires_at_ms < $1", now_ms - KEEP_WRITES_MS),
                ("DELETE FROM device_errors WHERE received_at_ms < $1", now_ms - KEEP_DEVICE_ERRORS_MS),
                ("DELETE FROM pairings WHERE expires_at_ms < $1", now_ms - DAY_MS),
                (numbered(executions_sql.EXPIRE), now_ms),
            ):
                removed += _affected(await conn.execute(statement, cutoff))
            return removed

        return await self._tx(tx)

    # --- the staff console -----------------------------------------------------------------------

    async def remove_entry(self, venue_id: str, entry_id: str, now_ms: int) -> QueueEntry:
        async def tx(conn: Conn) -> QueueEntry:
            await _lock_venue(conn, venue_id)
            row = await conn.fetchrow(
                "SELECT * FROM queue_entries WHERE venue_id = $1 AND entry_id = $2", venue_id, entry_id
            )
            if row is None:
                raise UnknownEntry(f"entry {entry_id!r} is not queued at venue {venue_id!r}")
            entry = entry_of(row)
            if entry.request_id is not None:
                raise Conflict("a paid entry is removed by refusing its request (it is refunded)")
            await conn.execute("DELETE FROM queue_entries WHERE entry_id = $1", entry_id)
            await self._emit(conn, venue_id, {"type": "entry_removed", "entryId": entry_id}, now_ms)
            return entry

        return await self._venue_tx(venue_id, tx)

    async def move_entry(self, venue_id: str, entry_id: str, position: int, now_ms: int) -> QueueSnapshot:
        async def tx(conn: Conn) -> QueueSnapshot:
            await _lock_venue(conn, venue_id)
            main = list((await _snapshot(conn, venue_id)).main)
            index = next((i for i, e in enumerate(main) if e.entry_id == entry_id), None)
            if index is None:
                raise UnknownEntry(f"entry {entry_id!r} is not in the main queue of venue {venue_id!r}")
            order = moved(main, index, position - 1)
            # New numbers above the old ones: (venue, queue, seq) is unique at every row of the UPDATE.
            await conn.execute(
                "UPDATE queue_entries q SET seq = o.seq + (SELECT MAX(seq) FROM queue_entries WHERE venue_id = $2"
                " AND queue = 'main') FROM unnest($1::text[]) WITH ORDINALITY AS o(entry_id, seq)"
                " WHERE q.entry_id = o.entry_id", [e.entry_id for e in order], venue_id,
            )
            await self._emit(conn, venue_id, {"type": "main_replaced", "entries": [e.to_json() for e in order]},
                             now_ms)
            return await _snapshot(conn, venue_id)

        return await self._venue_tx(venue_id, tx)

    async def skip_now(self, venue_id: str, now_ms: int) -> Json:
        async def tx(conn: Conn) -> Json:
            await _lock_venue(conn, venue_id)
            playing = await _now_playing(conn, venue_id)
            if playing is None:
                raise UnknownEntry(f"nothing is playing at venue {venue_id!r}")
            change: Json = {"type": "skip", "entryId": playing.entry.entry_id, "at": now_ms}
            change["version"] = await self._emit(conn, venue_id, change, now_ms)
            return change

        return await self._venue_tx(venue_id, tx)

    async def queue_next(self, venue_id: str, song: Song, by: str, now_ms: int) -> QueueEntry:
        async def tx(conn: Conn) -> QueueEntry:
            await _lock_venue(conn, venue_id)
            entry = _with_new_id(QueueEntry("", "priority", song, None, by))
            await _insert_entries(conn, venue_id, "priority", [entry], now_ms)
            await conn.execute(
                "UPDATE queue_entries SET seq = (SELECT MIN(seq) - 1 FROM queue_entries"
                " WHERE venue_id = $1 AND queue = 'priority') WHERE entry_id = $2", venue_id, entry.entry_id,
            )
            await self._emit(conn, venue_id, {"type": "entry_added", "entry": entry.to_json(), "at": "head"}, now_ms)
            return entry

        return await self._venue_tx(venue_id, tx)

    async def update_playlist(self, venue_id: str, playlist_id: str, name: str | None,
                              requestable: bool | None) -> Playlist:
        async def tx(conn: Conn) -> Playlist:
            await _lock_venue(conn, venue_id)
            await _venue_playlist(conn, venue_id, playlist_id)
            await conn.execute(
                "UPDATE playlists SET name = COALESCE($1, name), requestable = COALESCE($2, requestable)"
                " WHERE playlist_id = $3", name, requestable, playlist_id,
            )
            return await _venue_playlist(conn, venue_id, playlist_id)

        return await self._tx(tx)

    async def delete_playlist(self, venue_id: str, playlist_id: str) -> None:
        async def tx(conn: Conn) -> None:
            await _lock_venue(conn, venue_id)
            if (await _venue_playlist(conn, venue_id, playlist_id)).active:
                raise Conflict("this playlist is playing; activate another one before deleting it")
            for table in ("schedule_slots", "playlist_tracks", "playlists"):
                await conn.execute(f"DELETE FROM {table} WHERE playlist_id = $1", playlist_id)

        await self._tx(tx)

    async def remove_track(self, venue_id: str, playlist_id: str, position: int, video_id: str,
                           now_ms: int) -> Playlist:
        async def tx(conn: Conn) -> Playlist:
            await _lock_venue(conn, venue_id)
            playlist = await _venue_playlist(conn, venue_id, playlist_id)
            track_at(playlist, position, video_id)
            await _write_tracks(conn, playlist_id, [t for i, t in enumerate(playlist.tracks, start=1) if i != position])
            if playlist.active:
                entry_id = await conn.fetchval(
                    "DELETE FROM queue_entries WHERE entry_id = (SELECT entry_id FROM queue_entries WHERE venue_id = $1"
                    " AND queue = 'main' AND video_id = $2 ORDER BY seq LIMIT 1) RETURNING entry_id",
                    venue_id, video_id,
                )
                if entry_id is not None:
                    await self._emit(conn, venue_id, {"type": "entry_removed", "entryId": entry_id}, now_ms)
            return await _venue_playlist(conn, venue_id, playlist_id)

        return await self._venue_tx(venue_id, tx)

    async def move_track(self, venue_id: str, playlist_id: str, position: int, video_id: str,
                         to_position: int) -> Playlist:
        async def tx(conn: Conn) -> Playlist:
            await _lock_venue(conn, venue_id)
            playlist = await _venue_playlist(conn, venue_id, playlist_id)
            track_at(playlist, position, video_id)
            await _write_tracks(conn, playlist_id, moved(playlist.tracks, position - 1, to_position - 1))
            return await _venue_playlist(conn, venue_id, playlist_id)

        return await self._tx(tx)

    async def known_songs(self, video_ids: list[str], venue_id: str | None = None) -> dict[str, Song]:
        async def read(conn: Conn) -> dict[str, Song]:
            found: dict[str, Song] = {}
            for video_id in dict.fromkeys(video_ids):
                row = await conn.fetchrow(KNOWN_SONG.format(p="$1", v="$2::text"), video_id, venue_id)
                if row is not None:
                    found[video_id] = track_of(row)
            return found

        return await self._read(read)

    async def set_track_details(self, venue_id: str, playlist_id: str, position: int, video_id: str, song: Song,
                                now_ms: int) -> Playlist:
        async def tx(conn: Conn) -> Playlist:
            await _lock_venue(conn, venue_id)
            playlist = await _venue_playlist(conn, venue_id, playlist_id)
            old = track_at(playlist, position, video_id)
            details = (song.title, song.artist, song.duration)
            await conn.execute(
                "UPDATE playlist_tracks SET title = $1, artist = $2, duration = $3, details_by = NULL"
                " WHERE playlist_id = $4 AND position = $5", *details, playlist_id, position)
            entries = 0
            if playlist.active:
                entries = _affected(await conn.execute(
                    "UPDATE queue_entries SET title = $1, artist = $2, duration = $3 WHERE venue_id = $4"
                    " AND queue = 'main' AND video_id = $5 AND request_id IS NULL AND title = $6 AND artist = $7",
                    *details, venue_id, video_id, old.title, old.artist))
            if entries:
                main = (await _snapshot(conn, venue_id)).main
                await self._emit(conn, venue_id, {"type": "main_replaced", "entries": [e.to_json() for e in main]},
                                 now_ms)
            return await _venue_playlist(conn, venue_id, playlist_id)

        return await self._venue_tx(venue_id, tx)

    async def pending_songs(self, venue_id: str, limit: int) -> list[str]:
        async def read(conn: Conn) -> list[str]:
            rows = await conn.fetch(PENDING_SONGS.format(venue="$1", limit="$2"), venue_id, limit)
            return [str(row[0]) for row in rows]

        return await self._read(read)

    async def describe_song(self, venue_id: str, song: Song, now_ms: int) -> int:
        async def tx(conn: Conn) -> int:
            await _lock_venue(conn, venue_id)
            details = (song.title, song.artist, song.duration)
            tracks = _affected(await conn.execute(
                "UPDATE playlist_tracks SET title = $1, artist = $2, duration = $3, details_by = $4"
                " WHERE video_id = $5 AND title = '' AND artist = ''"
                " AND playlist_id IN (SELECT playlist_id FROM playlists WHERE venue_id = $6)",
                *details, song.details_by, song.video_id, venue_id,
            ))
            entries = _affected(await conn.execute(
                "UPDATE queue_entries SET title = $1, artist = $2, duration = $3"
                " WHERE venue_id = $4 AND video_id = $5 AND title = '' AND artist = ''",
                *details, venue_id, song.video_id,
            ))
            await conn.execute(
                "UPDATE now_playing SET title = $1, artist = $2, duration = $3"
                " WHERE venue_id = $4 AND video_id = $5 AND title = '' AND artist = ''",
                *details, venue_id, song.video_id,
            )
            if entries:  # the boxes and patron pages show the queue from the feed
                main = (await _snapshot(conn, venue_id)).main
                await self._emit(conn, venue_id, {"type": "main_replaced", "entries": [e.to_json() for e in main]},
                                 now_ms)
            return tracks + entries

        return await self._venue_tx(venue_id, tx)

    async def venue_rules(self, venue_id: str) -> VenueRules:
        return await self._read(lambda conn: _venue_rules(conn, venue_id))

    async def set_venue_settings(self, venue_id: str, settings: VenueSettings, now_ms: int) -> VenueRules:
        async def tx(conn: Conn) -> VenueRules:
            await _lock_venue(conn, venue_id)
            await conn.execute(
                "UPDATE venues SET allow_explicit = $1, max_duration_s = $2, artist_limit = $3, timezone = $4"
                " WHERE venue_id = $5",
                settings.allow_explicit, settings.max_duration_s, settings.artist_limit, settings.timezone, venue_id,
            )
            return await self._emit_rules(conn, venue_id, now_ms)

        return await self._rules_tx(venue_id, tx)

    async def add_mark(self, venue_id: str, kind: MarkKind, value: str, now_ms: int) -> VenueRules:
        async def tx(conn: Conn) -> VenueRules:
            await _lock_venue(conn, venue_id)
            await conn.execute(
                "INSERT INTO venue_marks (mark_id, venue_id, kind, value, value_key, created_at_ms)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                "mk-" + secrets.token_hex(8), venue_id, kind, value, mark_key(kind, value), now_ms,
            )
            return await self._emit_rules(conn, venue_id, now_ms)

        return await self._rules_tx(venue_id, tx)

    async def remove_mark(self, venue_id: str, mark_id: str, now_ms: int) -> VenueRules:
        async def tx(conn: Conn) -> VenueRules:
            await _lock_venue(conn, venue_id)
            status = await conn.execute("DELETE FROM venue_marks WHERE venue_id = $1 AND mark_id = $2",
                                        venue_id, mark_id)
            if _affected(status) == 0:
                raise UnknownEntry(f"no mark {mark_id!r} at venue {venue_id!r}")
            return await self._emit_rules(conn, venue_id, now_ms)

        return await self._rules_tx(venue_id, tx)

    async def add_schedule_slot(self, venue_id: str, slot: ScheduleSlot, now_ms: int) -> ScheduleSlot:
        async def tx(conn: Conn) -> ScheduleSlot:
            await _lock_venue(conn, venue_id)
            await _venue_playlist(conn, venue_id, slot.playlist_id)
            await conn.execute(
                "INSERT INTO schedule_slots (slot_id, venue_id, playlist_id, weekday, start_minute, end_minute,"
                " created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                slot.slot_id, venue_id, slot.playlist_id, slot.weekday, slot.start_minute, slot.end_minute, now_ms,
            )
            return slot

        return await self._tx(tx)

    async def delete_schedule_slot(self, venue_id: str, slot_id: str) -> None:
        async def tx(conn: Conn) -> None:
            await _lock_venue(conn, venue_id)
            status = await conn.execute("DELETE FROM schedule_slots WHERE venue_id = $1 AND slot_id = $2",
                                        venue_id, slot_id)
            if _affected(status) == 0:
                raise UnknownEntry(f"no schedule slot {slot_id!r} at venue {venue_id!r}")

        await self._tx(tx)

    async def schedules(self, venue_id: str | None = None) -> list[VenueSchedule]:
        async def read(conn: Conn) -> list[VenueSchedule]:
            if venue_id is not None:
                venues = [await _require_venue(conn, venue_id)]
            else:
                venues = await conn.fetch(
                    "SELECT * FROM venues WHERE venue_id IN (SELECT venue_id FROM schedule_slots)"
                    " OR schedule_slot_id IS NOT NULL ORDER BY venue_id"
                )
            found = []
            for v in venues:
                rows = await conn.fetch(
                    "SELECT * FROM schedule_slots WHERE venue_id = $1 ORDER BY weekday, start_minute, slot_id",
                    v["venue_id"],
                )
                found.append(VenueSchedule(v["venue_id"], v["timezone"], v["schedule_slot_id"],
                                           tuple(slot_of(r) for r in rows)))
            return found

        return await self._read(read)

    async def apply_schedule(self, venue_id: str, expected_slot_id: str | None, slot: ScheduleSlot | None,
                             now_ms: int) -> bool:
        async def tx(conn: Conn) -> bool:
            venue = await _lock_venue(conn, venue_id)
            if venue["schedule_slot_id"] != expected_slot_id:
                return False
            await conn.execute("UPDATE venues SET schedule_slot_id = $1 WHERE venue_id = $2",
                               None if slot is None else slot.slot_id, venue_id)
            if slot is not None and venue["active_playlist_id"] != slot.playlist_id:
                await self._activate(conn, venue_id, slot.playlist_id, now_ms)
            return True

        applied = await self._tx(tx)
        if applied:
            self._announce_change(venue_id)
        return applied

    async def _venue_tx(self, venue_id: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """A transaction that emits changes of ``venue_id``: its feed wakes up after the commit."""
        result = await self._tx(fn)
        self._announce_change(venue_id)
        return result

    async def _emit_rules(self, conn: Conn, venue_id: str, now_ms: int) -> VenueRules:
        rules = await _venue_rules(conn, venue_id)
        await self._emit(conn, venue_id, {"type": "rules", "rules": rules.to_json()}, now_ms)
        await self._announce_rules(conn, venue_id)
        return rules

    async def _rules_tx(self, venue_id: str, fn: Callable[[Conn], Awaitable[VenueRules]]) -> VenueRules:
        rules = await self._venue_tx(venue_id, fn)
        self._rules_changed(venue_id)  # here at once; other instances at the notification
        return rules

    # --- transaction helpers ---------------------------------------------------------------------

    async def _master_write(self, write: MasterWrite, change: Callable[[Conn], Awaitable[Json]],
                            now_ms: int) -> WriteResult:
        """Lock the venue, replay by idempotency key, else fence by epoch, apply ``change``, remember its answer."""

        async def tx(conn: Conn) -> WriteResult:
            await _lock_venue(conn, write.venue_id, required=False)  # unknown venue: no master, StaleEpoch below
            replay = await _replay(conn, write)
            if replay is not None:
                return replay
            await _require_master(conn, write)
            body = await change(conn)
            body["version"] = (await _require_venue(conn, write.venue_id))["version"]
            await _remember(conn, write, body, now_ms)
            return WriteResult(body)

        result = await self._tx(tx)
        if not result.replayed:
            self._announce_change(write.venue_id)
        return result

    async def _activate(self, conn: Conn, venue_id: str, playlist_id: str, now_ms: int) -> int:
        """Make ``playlist_id`` the venue's playlist (the caller holds the venue lock): the main queue
        becomes its tracks, in order."""
        playlist = await _venue_playlist(conn, venue_id, playlist_id)
        await conn.execute("UPDATE venues SET active_playlist_id = $1 WHERE venue_id = $2", playlist_id, venue_id)
        await conn.execute("DELETE FROM queue_entries WHERE venue_id = $1 AND queue = 'main'", venue_id)
        entries = [_with_new_id(QueueEntry("", "main", song)) for song in playlist.tracks]
        await _insert_entries(conn, venue_id, "main", entries, now_ms)
        return await self._emit(
            conn, venue_id, {"type": "main_replaced", "entries": [e.to_json() for e in entries]}, now_ms
        )

    async def _emit(self, conn: Conn, venue_id: str, data: Json, now_ms: int) -> int:
        """Bump the venue's version, log the change and NOTIFY every instance (at commit): one round trip."""
        return int(await conn.fetchval(
            "SELECT djamms_emit($1, $2::json, $3, $4, $5, $6)",
            venue_id, json.dumps(data), now_ms, self._retain, PRUNE_EVERY, CHANNEL,
        ))

    async def _append_entry(self, conn: Conn, venue_id: str, entry: QueueEntry, now_ms: int) -> QueueEntry:
        added = _with_new_id(entry)
        await _insert_entries(conn, venue_id, added.queue, [added], now_ms)
        await self._emit(conn, venue_id, {"type": "entry_added", "entry": added.to_json()}, now_ms)
        return added

    async def _take_entry(self, conn: Conn, write: MasterWrite, entry: QueueEntry, now_ms: int) -> NowPlaying:
        """Move a queued entry to now playing; a playlist entry goes round to the back of the main queue."""
        await conn.execute("DELETE FROM queue_entries WHERE entry_id = $1", entry.entry_id)
        await self._emit(conn, write.venue_id, {"type": "entry_removed", "entryId": entry.entry_id}, now_ms)
        if entry.queue == "main":
            await self._append_entry(conn, write.venue_id, QueueEntry("", "main", entry.song), now_ms)
        return await self._set_playing(conn, write, entry, now_ms)

    async def _set_playing(self, conn: Conn, write: MasterWrite, entry: QueueEntry, now_ms: int) -> NowPlaying:
        previous = await _now_playing(conn, write.venue_id)
        if previous is not None and previous.entry.request_id is not None:
            await _mark_request_played(conn, previous.entry.request_id)  # a paid request that was playing has played
        song = entry.song
        await conn.execute(
            "INSERT INTO now_playing (venue_id, entry_id, queue, video_id, title, artist, duration,"
            " request_id, requester_id, paid_credit, started_at_ms, device_id, epoch)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            " ON CONFLICT (venue_id) DO UPDATE SET entry_id = excluded.entry_id, queue = excluded.queue,"
            " video_id = excluded.video_id, title = excluded.title, artist = excluded.artist,"
            " duration = excluded.duration, request_id = excluded.request_id, requester_id = excluded.requester_id,"
            " paid_credit = excluded.paid_credit, started_at_ms = excluded.started_at_ms,"
            " device_id = excluded.device_id, epoch = excluded.epoch, ended_at_ms = NULL",
            write.venue_id, entry.entry_id, entry.queue, song.video_id, song.title, song.artist, song.duration,
            entry.request_id, entry.requester_id, entry.paid_credit, now_ms, write.device_id, write.epoch,
        )
        playing = NowPlaying(entry, now_ms, write.device_id, write.epoch)
        await self._emit(conn, write.venue_id, {"type": "now_playing", "nowPlaying": playing.to_json()}, now_ms)
        return playing


class SharedRateLimiter:
    """A token bucket per key in PostgreSQL: every hub instance spends from the same budget.

    One call per take (``djamms_take_token``, migration 3): it locks the key's row, so concurrent
    takes from any instance are applied one after the other and never overspend. Same arithmetic
    as ``TokenBuckets`` (a full bucket of ``capacity``, refilled linearly over ``per_seconds``)."""

    def __init__(self, store: PostgresStore, scope: str, capacity: int, per_seconds: float) -> None:
        self._store = store
        self._scope = scope
        self._capacity = float(capacity)
        self._rate_per_ms = capacity / (per_seconds * 1000)

    async def take(self, key: str, now: float) -> bool:
        if self._capacity < 1:
            return False  # a budget of nothing (and no division by a zero rate)
        now_ms = int(now * 1000)

        async def statement(conn: Conn) -> bool:
            return bool(await conn.fetchval(
                "SELECT djamms_take_token($1, $2, $3, $4, $5)",
                self._scope, key, self._capacity, now_ms, self._rate_per_ms,
            ))

        return await self._store._one(statement)


# --- statement helpers (each runs inside the caller's transaction) ---------------------------------


async def _catalog(conn: Conn, video_ids: list[str], venue_id: str | None) -> dict[str, CatalogTrack]:
    rows = await conn.fetch(CATALOG_FOR_VENUE.format(venue="$2") + " WHERE c.video_id = ANY($1::text[])",
                            list(set(video_ids)), venue_id)
    by_id = {r["video_id"]: catalog_track_of(r, for_venue=True) for r in rows}
    return {v: by_id[v] for v in dict.fromkeys(video_ids) if v in by_id}


async def _require_venue(conn: Conn, venue_id: str) -> Any:
    row = await conn.fetchrow("SELECT * FROM venues WHERE venue_id = $1", venue_id)
    if row is None:
        raise UnknownVenue(f"unknown venue {venue_id!r}")
    return row


async def _lock_venue(conn: Conn, venue_id: str, *, required: bool = True) -> Any:
    """Take the venue's row lock: every writer of this venue's state waits here for the one before it.

    NO KEY UPDATE rather than UPDATE: it still excludes other venue writers, but not the key-share locks
    foreign-key checks take, so an unrelated insert referencing the venue never waits on it."""
    row = await conn.fetchrow("SELECT * FROM venues WHERE venue_id = $1 FOR NO KEY UPDATE", venue_id)
    if row is None and required:
        raise UnknownVenue(f"unknown venue {venue_id!r}")
    return row


async def _venue_epoch(conn: Conn, venue_id: str) -> int:
    epoch = await conn.fetchval("SELECT epoch FROM venues WHERE venue_id = $1", venue_id)
    return 0 if epoch is None else int(epoch)


async def _known_durations(conn: Conn, video_id: str) -> list[KnownDuration]:
    return [known_duration_of(row) for row in await conn.fetch(KNOWN_DURATIONS.format(p="$1"), video_id)]


async def _active_master(conn: Conn, venue_id: str) -> MasterInfo | None:
    row = await conn.fetchrow(
        "SELECT player_id, device_id, epoch, last_heartbeat_ms, instance_id FROM players"
        " WHERE venue_id = $1 AND status = 'active'",
        venue_id,
    )
    return None if row is None else master_of(row)


async def _require_master(conn: Conn, write: MasterWrite) -> None:
    """Fencing: StaleEpoch unless ``write``'s device holds the venue's lease at ``write``'s epoch."""
    master = await _active_master(conn, write.venue_id)
    if master is None or master.epoch != write.epoch or master.device_id != write.device_id:
        raise StaleEpoch(await _venue_epoch(conn, write.venue_id), master.device_id if master else None)


async def _reissue_device(conn: Conn, venue_id: str, device_id: str, now_ms: int) -> int:
    version = await conn.fetchval(
        "INSERT INTO devices AS d (venue_id, device_id, token_version, revoked, created_at_ms)"
        " VALUES ($1, $2, 1, false, $3)"
        " ON CONFLICT (venue_id, device_id) DO UPDATE SET token_version = d.token_version + 1, revoked = false"
        " RETURNING token_version",
        venue_id, device_id, now_ms,
    )
    return int(version)


async def _user_by_email(conn: Conn, email: str) -> User | None:
    # Exactly: emails are stored in their one normal form (identity.normalize_email); lower() in the
    # database folded 'İ' and the Kelvin sign onto ASCII and signed strangers in as someone else.
    row = await conn.fetchrow("SELECT * FROM users WHERE email = $1", email)
    return None if row is None else user_of(row)


async def _now_playing(conn: Conn, venue_id: str) -> NowPlaying | None:
    row = await conn.fetchrow(NOW_PLAYING.format(venue="$1"), venue_id)
    return None if row is None else now_playing_of(row)


async def _snapshot(conn: Conn, venue_id: str) -> QueueSnapshot:
    venue = await _require_venue(conn, venue_id)
    rows = await conn.fetch(
        "SELECT * FROM queue_entries WHERE venue_id = $1 ORDER BY CASE queue WHEN 'priority' THEN 0 ELSE 1 END, seq",
        venue_id,
    )
    entries = [entry_of(r) for r in rows]
    return QueueSnapshot(
        venue_id,
        venue["version"],
        venue["epoch"],
        await _now_playing(conn, venue_id),
        tuple(e for e in entries if e.queue == "priority"),
        tuple(e for e in entries if e.queue == "main"),
        await _active_master(conn, venue_id),
        await _venue_rules(conn, venue_id),
    )


async def _venue_playlist(conn: Conn, venue_id: str, playlist_id: str) -> Playlist:
    playlist = await _playlist(conn, playlist_id)
    if playlist is None or playlist.venue_id != venue_id:
        raise UnknownPlaylist(f"unknown playlist {playlist_id!r} at venue {venue_id!r}")
    return playlist


async def _write_tracks(conn: Conn, playlist_id: str, tracks: Sequence[Song]) -> None:
    await conn.execute("DELETE FROM playlist_tracks WHERE playlist_id = $1", playlist_id)
    await conn.executemany(
        "INSERT INTO playlist_tracks (playlist_id, position, video_id, title, artist, duration, details_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [(playlist_id, i, t.video_id, t.title, t.artist, t.duration, t.details_by)
         for i, t in enumerate(tracks, start=1)],
    )


async def _venue_rules(conn: Conn, venue_id: str) -> VenueRules:
    venue = await _require_venue(conn, venue_id)
    marks = await conn.fetch("SELECT * FROM venue_marks WHERE venue_id = $1 ORDER BY kind, value_key", venue_id)
    return VenueRules(settings_of(venue), tuple(mark_of(r) for r in marks))


async def _playlist(conn: Conn, playlist_id: str) -> Playlist | None:
    row = await conn.fetchrow(
        "SELECT p.*, v.active_playlist_id FROM playlists p JOIN venues v USING (venue_id) WHERE p.playlist_id = $1",
        playlist_id,
    )
    if row is None:
        return None
    tracks = await conn.fetch("SELECT * FROM playlist_tracks WHERE playlist_id = $1 ORDER BY position", playlist_id)
    return playlist_of(row, tracks)


async def _mark_request_played(conn: Conn, request_id: str) -> None:
    await conn.execute(
        "UPDATE requests SET status = 'played' WHERE request_id = $1 AND status = 'pending'", request_id
    )


async def _replay(conn: Conn, write: MasterWrite) -> WriteResult | None:
    if write.idempotency_key is None:
        return None
    result = await conn.fetchval(
        "SELECT result FROM master_writes WHERE venue_id = $1 AND idempotency_key = $2",
        write.venue_id, write.idempotency_key,
    )
    return None if result is None else WriteResult(json.loads(result), replayed=True)


async def _remember(conn: Conn, write: MasterWrite, body: Json, now_ms: int) -> None:
    if write.idempotency_key is not None:
        await conn.execute(
            "INSERT INTO master_writes (venue_id, idempotency_key, result, created_at_ms)"
            " VALUES ($1, $2, $3::json, $4)",
            write.venue_id, write.idempotency_key, json.dumps(body), now_ms,
        )


def _with_new_id(entry: QueueEntry) -> QueueEntry:
    return QueueEntry("e-" + secrets.token_hex(8), entry.queue, entry.song, entry.request_id, entry.requester_id,
                      entry.paid_credit)


async def _insert_entries(conn: Conn, venue_id: str, queue: str, entries: list[QueueEntry], now_ms: int) -> None:
    """Append ``entries`` in order to the venue's ``queue`` (the caller holds the venue lock)."""
    await conn.execute(
        "SELECT djamms_insert_entries($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        venue_id, queue, now_ms, [e.entry_id for e in entries], [e.song.video_id for e in entries],
        [e.song.title for e in entries], [e.song.artist for e in entries], [e.song.duration for e in entries],
        [e.request_id for e in entries], [e.requester_id for e in entries], [e.paid_credit for e in entries],
    )


# remove_user / bump_user_tokens with only_staff_of ($2): the user is staff, not an owner, of that venue.
_ONLY_STAFF_OF = "($2::text IS NULL OR (role = 'staff' AND venue_id = $2))"


def _affected(status: str) -> int:
    """Row count from a command tag such as 'DELETE 3'."""
    return int(status.rsplit(" ", 1)[-1])
