"""The hub's PostgreSQL schema, as numbered migrations (see ``pg_migrations``).

The tables mirror the SQLite schema (``sqlite_schema``) column for column so both
stores speak the same records; times are epoch milliseconds in ``bigint``.
"""

from __future__ import annotations

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

MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial schema", _INITIAL),)
