"""The hub's PostgreSQL schema, as numbered migrations (see ``pg_migrations``).

The tables mirror the SQLite schema (``sqlite_schema``) column for column so both
stores speak the same records; times are epoch milliseconds in ``bigint``.
"""

from __future__ import annotations

from typing import Any

from djamms_edge.hub.store import renormalise
from djamms_edge.hub.store.executions_sql import TABLE as EXECUTIONS_TABLE
from djamms_edge.hub.store.payments_schema import TABLES as PAYMENT_TABLES
from djamms_edge.hub.store.pg_migrations import Migration

_INITIAL = """
CREATE TABLE venues (
    venue_id text PRIMARY KEY,
    name text NOT NULL,
    active_playlist_id text,
    epoch bigint NOT NULL DEFAULT 0,      -- fencing token: +1 for every new master
    version bigint NOT NULL DEFAULT 0,    -- change-feed version: +1 for every change
    created_at_ms bigint NOT NULL
);
CREATE TABLE users (
    user_id text PRIMARY KEY,
    email text NOT NULL,
    venue_id text REFERENCES venues(venue_id),
    role text NOT NULL CHECK (role IN ('admin', 'staff')),
    autoplay boolean NOT NULL DEFAULT true,
    created_at_ms bigint NOT NULL
);
-- Emails compare case-insensitively (SQLite: COLLATE NOCASE).
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE TABLE magic_links (
    token_hash text PRIMARY KEY,          -- sha256 of the secret; the secret itself is never stored
    email text NOT NULL,
    redirect_url text NOT NULL,
    expires_at_ms bigint NOT NULL,
    used_at_ms bigint,
    created_at_ms bigint NOT NULL
);
CREATE INDEX magic_links_expiry ON magic_links (expires_at_ms);
CREATE TABLE players (
    player_id text PRIMARY KEY,
    venue_id text NOT NULL REFERENCES venues(venue_id),
    device_id text NOT NULL,
    user_agent text NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'offline')),
    epoch bigint NOT NULL,
    last_heartbeat_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    created_at_ms bigint NOT NULL
);
-- The database itself refuses a second active master for a venue.
CREATE UNIQUE INDEX players_one_master ON players (venue_id) WHERE status = 'active';
CREATE INDEX players_by_device ON players (venue_id, device_id, epoch);
CREATE TABLE requests (
    request_id text PRIMARY KEY,
    venue_id text NOT NULL REFERENCES venues(venue_id),
    payment_id text NOT NULL UNIQUE,      -- a retried payment can never queue twice
    requester_id text,
    client_address text NOT NULL,
    video_id text NOT NULL,
    title text NOT NULL,
    artist text NOT NULL,
    artist_key text NOT NULL,
    duration double precision NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'played', 'refund_due')),
    reason text,
    created_at_ms bigint NOT NULL
);
CREATE INDEX requests_by_artist ON requests (venue_id, artist_key, created_at_ms);
CREATE INDEX requests_by_status ON requests (venue_id, status, created_at_ms);
CREATE TABLE queue_entries (
    entry_id text PRIMARY KEY,
    venue_id text NOT NULL REFERENCES venues(venue_id),
    queue text NOT NULL CHECK (queue IN ('priority', 'main')),
    seq bigint NOT NULL,
    video_id text NOT NULL,
    title text NOT NULL,
    artist text NOT NULL,
    duration double precision NOT NULL,
    request_id text,
    requester_id text,
    paid_credit double precision NOT NULL DEFAULT 0,
    created_at_ms bigint NOT NULL,
    UNIQUE (venue_id, queue, seq)
);
CREATE TABLE now_playing (
    venue_id text PRIMARY KEY REFERENCES venues(venue_id),
    entry_id text NOT NULL,
    queue text NOT NULL,
    video_id text NOT NULL,
    title text NOT NULL,
    artist text NOT NULL,
    duration double precision NOT NULL,
    request_id text,
    requester_id text,
    paid_credit double precision NOT NULL DEFAULT 0,
    started_at_ms bigint NOT NULL,
    device_id text NOT NULL,
    epoch bigint NOT NULL
);
CREATE TABLE venue_changes (
    venue_id text NOT NULL,
    version bigint NOT NULL,
    change json NOT NULL,                 -- json, not jsonb: replayed verbatim, key order kept
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (venue_id, version)
);
CREATE TABLE master_writes (
    venue_id text NOT NULL,
    idempotency_key text NOT NULL,
    result json NOT NULL,
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (venue_id, idempotency_key)
);
CREATE TABLE play_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    venue_id text NOT NULL REFERENCES venues(venue_id),
    entry_id text,
    video_id text NOT NULL,
    request_id text,
    device_id text NOT NULL,
    epoch bigint NOT NULL,
    played_at_ms bigint NOT NULL
);
CREATE INDEX play_history_by_venue ON play_history (venue_id, played_at_ms);
CREATE TABLE playlists (
    playlist_id text PRIMARY KEY,
    venue_id text NOT NULL REFERENCES venues(venue_id),
    name text NOT NULL,
    created_at_ms bigint NOT NULL
);
CREATE TABLE playlist_tracks (
    playlist_id text NOT NULL REFERENCES playlists(playlist_id),
    position integer NOT NULL,
    video_id text NOT NULL,
    title text NOT NULL,
    artist text NOT NULL,
    duration double precision NOT NULL,
    PRIMARY KEY (playlist_id, position)
);
CREATE TABLE catalog (
    video_id text PRIMARY KEY,
    duration double precision,
    analysis_start double precision,
    analysis_end double precision,
    loudness double precision,
    analysed_by text,
    analysed_at_ms bigint,
    override_set boolean NOT NULL DEFAULT false,
    override_start double precision,
    override_end double precision,
    override_by text,
    override_at_ms bigint
);
"""

# Server-side steps, so that a venue's row lock is held for microseconds inside PostgreSQL instead
# of across client round trips (on a busy venue that lock hold time IS the paid-request throughput).
# They hold no business rule: refusals and records are decided and built in Python (rules.py,
# base.py) and passed in. In PL/pgSQL each statement takes a fresh snapshot, so whatever runs after
# the lock is granted sees every row committed by the transactions it waited for.
_SERVER_STEPS = """
-- Bump the venue's version, log the change, tell every hub instance (delivered at commit).
CREATE FUNCTION djamms_emit(p_venue text, p_change json, p_now bigint, p_retain bigint, p_prune_every bigint,
                            p_channel text) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE venues SET version = version + 1 WHERE venue_id = p_venue RETURNING version INTO v;
    INSERT INTO venue_changes (venue_id, version, change, created_at_ms) VALUES (p_venue, v, p_change, p_now);
    PERFORM pg_notify(p_channel, p_venue);
    IF v % p_prune_every = 0 THEN
        DELETE FROM venue_changes WHERE venue_id = p_venue AND version <= v - p_retain;
    END IF;
    RETURN v;
END
$$;

-- Append entries, in order, to the end of one of the venue's queues. The caller holds the venue lock.
-- PL/pgSQL, not SQL: its statement's plan is cached per connection, while a SQL function that cannot be
-- inlined is planned again on every call (measured: 1.1 ms -> 0.6 ms per paid request).
CREATE FUNCTION djamms_insert_entries(p_venue text, p_queue text, p_now bigint, p_ids text[], p_video_ids text[],
                                      p_titles text[], p_artists text[], p_durations float8[], p_request_ids text[],
                                      p_requester_ids text[], p_credits float8[]) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO queue_entries (entry_id, venue_id, queue, seq, video_id, title, artist, duration, request_id,
                               requester_id, paid_credit, created_at_ms)
    SELECT e.entry_id, p_venue, p_queue, base.seq + e.n, e.video_id, e.title, e.artist, e.duration, e.request_id,
           e.requester_id, e.paid_credit, p_now
    FROM unnest(p_ids, p_video_ids, p_titles, p_artists, p_durations, p_request_ids, p_requester_ids, p_credits)
         WITH ORDINALITY AS e(entry_id, video_id, title, artist, duration, request_id, requester_id, paid_credit, n),
         (SELECT COALESCE(MAX(seq), 0) AS seq FROM queue_entries WHERE venue_id = p_venue AND queue = p_queue) AS base;
END
$$;

-- A paid request in one call. p_refusals[n + 1] is the refusal (NULL: accept) when the venue already has
-- n recent requests for the artist, for n = 0 .. limit; counts beyond the array use its last element.
-- Returns the request's id, status and reason, and whether the paymentId had been seen before;
-- no row when the venue does not exist.
CREATE FUNCTION djamms_submit_paid_request(
    p_venue text, p_payment_id text, p_request_id text, p_requester_id text, p_client text, p_video_id text,
    p_title text, p_artist text, p_artist_key text, p_duration float8, p_since bigint, p_refusals text[],
    p_entry_id text, p_credit float8, p_change json, p_now bigint, p_retain bigint, p_prune_every bigint,
    p_channel text,
    OUT r_request_id text, OUT r_status text, OUT r_reason text, OUT r_replayed boolean
) RETURNS SETOF record LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    recent bigint;
BEGIN
    SELECT request_id, status, reason, true INTO r_request_id, r_status, r_reason, r_replayed
        FROM requests WHERE payment_id = p_payment_id;
    IF FOUND THEN
        RETURN NEXT;
        RETURN;
    END IF;
    PERFORM 1 FROM venues WHERE venue_id = p_venue FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT count(*) INTO recent FROM requests
        WHERE venue_id = p_venue AND artist_key = p_artist_key AND status <> 'refund_due' AND created_at_ms > p_since;
    r_reason := p_refusals[LEAST(recent, cardinality(p_refusals) - 1) + 1];
    r_status := CASE WHEN r_reason IS NULL THEN 'pending' ELSE 'refund_due' END;
    r_request_id := p_request_id;
    r_replayed := false;
    INSERT INTO requests (request_id, venue_id, payment_id, requester_id, client_address, video_id, title, artist,
                          artist_key, duration, status, reason, created_at_ms)
        VALUES (p_request_id, p_venue, p_payment_id, p_requester_id, p_client, p_video_id, p_title, p_artist,
                p_artist_key, p_duration, r_status, r_reason, p_now)
        ON CONFLICT (payment_id) DO NOTHING;
    IF NOT FOUND THEN
        -- The same paymentId committed meanwhile for another venue (whose lock we do not hold): a replay.
        SELECT request_id, status, reason, true INTO r_request_id, r_status, r_reason, r_replayed
            FROM requests WHERE payment_id = p_payment_id;
        RETURN NEXT;
        RETURN;
    END IF;
    IF r_reason IS NULL THEN
        PERFORM djamms_insert_entries(p_venue, 'priority', p_now, ARRAY[p_entry_id], ARRAY[p_video_id],
                                      ARRAY[p_title], ARRAY[p_artist], ARRAY[p_duration], ARRAY[p_request_id],
                                      ARRAY[p_requester_id], ARRAY[p_credit]);
        PERFORM djamms_emit(p_venue, p_change, p_now, p_retain, p_prune_every, p_channel);
    END IF;
    RETURN NEXT;
END
$$;
"""

# Token buckets shared by every hub instance (per-email, per-address, per-client limits).
# refilled_at_ms: when the bucket is full again, so the row means nothing (housekeeping drops it).
_RATE_BUCKETS = """
CREATE TABLE rate_buckets (
    scope text NOT NULL,
    key text NOT NULL,
    tokens double precision NOT NULL,
    updated_ms bigint NOT NULL,
    refilled_at_ms bigint NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX rate_buckets_refilled ON rate_buckets (refilled_at_ms);

-- Spend one token of (scope, key): the arithmetic of ratelimit.TokenBuckets (a full bucket holds
-- p_capacity, refilled linearly at p_rate per ms), under the row lock so concurrent takes from any
-- instance never overspend. Instances' clocks may differ a little: a bucket's time never runs back.
CREATE FUNCTION djamms_take_token(p_scope text, p_key text, p_capacity float8, p_now bigint, p_rate float8)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    b rate_buckets%ROWTYPE;
    available float8;
    at bigint;
BEGIN
    INSERT INTO rate_buckets VALUES (p_scope, p_key, p_capacity, p_now, p_now) ON CONFLICT DO NOTHING;
    SELECT * INTO b FROM rate_buckets WHERE scope = p_scope AND key = p_key FOR UPDATE;
    at := GREATEST(b.updated_ms, p_now);
    available := LEAST(p_capacity, b.tokens + (at - b.updated_ms) * p_rate);
    IF available < 1 THEN
        RETURN false;
    END IF;
    UPDATE rate_buckets SET tokens = available - 1, updated_ms = at,
                            refilled_at_ms = at + ceil((p_capacity - available + 1) / p_rate)::bigint
        WHERE scope = p_scope AND key = p_key;
    RETURN true;
END
$$;
"""

# Edges' error reports, per venue; a resent report (same device and key) is stored once.
_DEVICE_ERRORS = """
CREATE TABLE device_errors (
    id bigserial PRIMARY KEY,
    venue_id text NOT NULL REFERENCES venues(venue_id),
    device_id text NOT NULL,
    idempotency_key text NOT NULL,
    video_id text,
    message text NOT NULL,
    at_ms bigint NOT NULL,                -- when it happened on the edge
    received_at_ms bigint NOT NULL,
    UNIQUE (venue_id, device_id, idempotency_key)
);
CREATE INDEX device_errors_by_venue ON device_errors (venue_id, received_at_ms);
"""

# A venue's own cue points for a video; they win over the global (admin) override and the analysis.
_VENUE_OVERRIDES = """
CREATE TABLE venue_overrides (
    venue_id text NOT NULL REFERENCES venues(venue_id),
    video_id text NOT NULL REFERENCES catalog(video_id),
    override_start double precision,
    override_end double precision,
    override_by text NOT NULL,
    override_at_ms bigint NOT NULL,
    PRIMARY KEY (venue_id, video_id)
);
"""

# The staff console: playlists patrons may request from, ban list and explicit flags, request limits
# per venue, and the weekly schedule (with the slot applied last, so a switch happens once).
_CONSOLE = """
ALTER TABLE playlists ADD COLUMN requestable boolean NOT NULL DEFAULT false;
ALTER TABLE venues ADD COLUMN allow_explicit boolean NOT NULL DEFAULT true;
ALTER TABLE venues ADD COLUMN max_duration_s double precision;
ALTER TABLE venues ADD COLUMN artist_limit integer;
ALTER TABLE venues ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
ALTER TABLE venues ADD COLUMN schedule_slot_id text;
CREATE TABLE venue_marks (
    mark_id text PRIMARY KEY,
    venue_id text NOT NULL REFERENCES venues(venue_id),
    kind text NOT NULL CHECK (kind IN ('ban_video', 'ban_artist', 'explicit')),
    value text NOT NULL,
    value_key text NOT NULL,              -- artists folded (rules.artist_key); video ids as they are
    created_at_ms bigint NOT NULL,
    UNIQUE (venue_id, kind, value_key)
);
CREATE TABLE schedule_slots (
    slot_id text PRIMARY KEY,
    venue_id text NOT NULL REFERENCES venues(venue_id),
    playlist_id text NOT NULL REFERENCES playlists(playlist_id),
    weekday integer NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_minute integer NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute integer NOT NULL CHECK (end_minute > start_minute AND end_minute <= 1440),
    created_at_ms bigint NOT NULL
);
CREATE INDEX schedule_by_venue ON schedule_slots (venue_id, weekday, start_minute);
"""

# The master's player position from its heartbeats, and whether now playing was reported played:
# a box taking over after a crash resumes the interrupted entry from there.
_PLAY_POSITION = """
ALTER TABLE players ADD COLUMN position_entry_id text;
ALTER TABLE players ADD COLUMN position_s double precision;
ALTER TABLE players ADD COLUMN position_at_ms bigint;
ALTER TABLE now_playing ADD COLUMN ended_at_ms bigint;
"""

_PLAYER_INSTANCE = """
-- Which process of a device holds its lease (register/heartbeat instanceId).
ALTER TABLE players ADD COLUMN instance_id text;
"""

_EXACT_EMAILS = """
-- Emails are normalised in Python (identity.normalize_email) and compared exactly: lower() under a UTF-8
-- locale folds 'İ' and the Kelvin sign onto ASCII letters. Existing rows are re-normalised at open.
DROP INDEX users_email;
CREATE UNIQUE INDEX users_email ON users (email);
"""

async def _renormalise_identities(conn: Any) -> None:
    todo = renormalise.plan(
        [(r["user_id"], r["email"]) for r in await conn.fetch("SELECT user_id, email FROM users")],
        [(r["token_hash"], r["email"]) for r in await conn.fetch("SELECT token_hash, email FROM magic_links")],
        [(r["request_id"], r["artist"], r["artist_key"])
         for r in await conn.fetch("SELECT request_id, artist, artist_key FROM requests")],
        [(r["mark_id"], r["venue_id"], r["value"], r["value_key"])
         for r in await conn.fetch("SELECT mark_id, venue_id, value, value_key FROM venue_marks"
                                   " WHERE kind = 'ban_artist'")],
    )
    await conn.executemany("UPDATE users SET email = $2 WHERE user_id = $1", todo.users)
    await conn.executemany("UPDATE magic_links SET email = $2 WHERE token_hash = $1", todo.links)
    await conn.executemany("UPDATE requests SET artist_key = $2 WHERE request_id = $1", todo.requests)
    await conn.executemany("DELETE FROM venue_marks WHERE mark_id = $1", [(m,) for m in todo.drop_marks])
    await conn.executemany("UPDATE venue_marks SET value_key = $2 WHERE mark_id = $1", todo.marks)


_VENUE_ANALYSES = """
-- Each venue's boxes' own analysis of a video; the shared catalog value only when two venues agree.
CREATE TABLE venue_analyses (
    venue_id text NOT NULL REFERENCES venues(venue_id),
    video_id text NOT NULL,
    duration float8,
    analysis_start float8,
    analysis_end float8,
    loudness float8,
    analysed_by text NOT NULL,
    analysed_at_ms bigint NOT NULL,
    PRIMARY KEY (venue_id, video_id)
);
CREATE INDEX venue_analyses_by_video ON venue_analyses (video_id);
"""

# Token versions (a role/venue change or sign-out everywhere ends old tokens), boxes with their
# credential state and last report, and short-lived pairing codes (hashed).
_CREDENTIALS = """
ALTER TABLE users ADD COLUMN token_version bigint NOT NULL DEFAULT 0;
CREATE TABLE devices (
    venue_id text NOT NULL REFERENCES venues(venue_id),
    device_id text NOT NULL,
    token_version bigint NOT NULL DEFAULT 0,
    revoked boolean NOT NULL DEFAULT false,
    software_version text,
    user_agent text,
    now_playing text,                     -- JSON, as reported
    problems text NOT NULL DEFAULT '[]',  -- JSON list of strings
    reported_at_ms bigint,
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (venue_id, device_id)
);
CREATE TABLE pairings (
    code_hash text PRIMARY KEY,           -- HMAC of the code shown on the box; the code is never stored
    secret_hash text NOT NULL UNIQUE,     -- sha256 of the box's polling secret
    device_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'claimed', 'delivered')),
    venue_id text REFERENCES venues(venue_id),
    token_version bigint,
    claimed_by text,
    expires_at_ms bigint NOT NULL,
    created_at_ms bigint NOT NULL
);
CREATE INDEX pairings_expiry ON pairings (expires_at_ms);
"""

# An admin's analysed duration, kept apart: with staff's declared durations, what a box's report must be near
# to be shared (rules.plausible_analysis); declared durations are looked up by video.
_TRUSTED_DURATIONS = """
ALTER TABLE catalog ADD COLUMN trusted_duration double precision;
CREATE INDEX playlist_tracks_by_video ON playlist_tracks (video_id);
"""

# A venue's owner: its staff who also add and remove its staff; an owner always has a venue.
_OWNER_ROLE = """
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'owner', 'staff'));
ALTER TABLE users ADD CONSTRAINT users_owner_has_venue CHECK (role <> 'owner' OR venue_id IS NOT NULL);
"""

# Who described a playlist track: NULL, staff (typed); a device id, the venue's box (from yt-dlp, for a song added
# by URL alone). A box's details count for its own venue only, never as a staff-declared length.
_SONG_DETAILS = """
ALTER TABLE playlist_tracks ADD COLUMN details_by text;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _INITIAL),
    Migration(2, "server-side steps: emit a change, append queue entries, submit a paid request", _SERVER_STEPS),
    Migration(3, "rate-limit buckets shared by every hub instance", _RATE_BUCKETS),
    Migration(4, "device error reports", _DEVICE_ERRORS),
    Migration(5, "per-venue catalog overrides", _VENUE_OVERRIDES),
    Migration(6, "staff console: requestable playlists, marks, venue settings, schedule", _CONSOLE),
    Migration(7, "player position in heartbeats; now playing ended", _PLAY_POSITION),
    Migration(8, "the process holding a device's lease", _PLAYER_INSTANCE),
    Migration(9, "prices, payments and refunds", ";\n".join(PAYMENT_TABLES) + ";\n"),
    Migration(10, "emails compared exactly (normalised before they are stored)", _EXACT_EMAILS,
              then=_renormalise_identities),
    Migration(11, "catalog analysis kept per venue", _VENUE_ANALYSES),
    Migration(12, "token versions, devices, pairing codes", _CREDENTIALS),
    Migration(13, "executions of the function endpoint, for their creator's GET",
              ";\n".join(EXECUTIONS_TABLE) + ";\n"),
    Migration(14, "trusted durations: an admin's analysis; playlist tracks by video", _TRUSTED_DURATIONS),
    Migration(15, "venue owners (role 'owner', always with a venue)", _OWNER_ROLE),
    Migration(16, "who described a playlist track (staff, or the venue's box)", _SONG_DETAILS),
)
