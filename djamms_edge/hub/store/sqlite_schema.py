"""The hub's SQLite schema, as numbered sqlite-utils migrations."""

from __future__ import annotations

import sqlite_utils

from djamms_edge.hub.store import renormalise
from djamms_edge.hub.store.executions_sql import TABLE as EXECUTIONS_TABLE
from djamms_edge.hub.store.payments_schema import TABLES as PAYMENT_TABLES
from djamms_edge.shared.sqlite import Migrations

migrations = Migrations("djamms-hub")

_VENUE_ANALYSES = """
        CREATE TABLE venue_analyses (
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            video_id TEXT NOT NULL,
            duration REAL,
            analysis_start REAL,
            analysis_end REAL,
            loudness REAL,
            analysed_by TEXT NOT NULL,
            analysed_at_ms INTEGER NOT NULL,
            PRIMARY KEY (venue_id, video_id)
        )
"""


_INITIAL = """
        CREATE TABLE venues (
            venue_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            active_playlist_id TEXT,
            epoch INTEGER NOT NULL DEFAULT 0,      -- fencing token: +1 for every new master
            version INTEGER NOT NULL DEFAULT 0,    -- change-feed version: +1 for every change
            created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE users (
            user_id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            venue_id TEXT REFERENCES venues(venue_id),
            role TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
            autoplay INTEGER NOT NULL DEFAULT 1,
            created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE magic_links (
            token_hash TEXT PRIMARY KEY,            -- sha256 of the secret; the secret itself is never stored
            email TEXT NOT NULL,
            redirect_url TEXT NOT NULL,
            expires_at_ms INTEGER NOT NULL,
            used_at_ms INTEGER,
            created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE players (
            player_id TEXT PRIMARY KEY,
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            device_id TEXT NOT NULL,
            user_agent TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('active', 'offline')),
            epoch INTEGER NOT NULL,
            last_heartbeat_ms INTEGER NOT NULL,
            expires_at_ms INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL
        );
        -- The database itself refuses a second active master for a venue.
        CREATE UNIQUE INDEX players_one_master ON players(venue_id) WHERE status = 'active';
        CREATE INDEX players_by_device ON players(venue_id, device_id, epoch);
        CREATE TABLE requests (
            request_id TEXT PRIMARY KEY,
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            payment_id TEXT NOT NULL UNIQUE,
            requester_id TEXT,
            client_address TEXT NOT NULL,
            video_id TEXT NOT NULL,
            title TEXT NOT NULL,
            artist TEXT NOT NULL,
            artist_key TEXT NOT NULL,
            duration REAL NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'played', 'refund_due')),
            reason TEXT,
            created_at_ms INTEGER NOT NULL
        );
        CREATE INDEX requests_by_artist ON requests(venue_id, artist_key, created_at_ms);
        CREATE INDEX requests_by_status ON requests(venue_id, status, created_at_ms);
        CREATE TABLE queue_entries (
            entry_id TEXT PRIMARY KEY,
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            queue TEXT NOT NULL CHECK (queue IN ('priority', 'main')),
            seq INTEGER NOT NULL,
            video_id TEXT NOT NULL,
            title TEXT NOT NULL,
            artist TEXT NOT NULL,
            duration REAL NOT NULL,
            request_id TEXT,
            requester_id TEXT,
            paid_credit REAL NOT NULL DEFAULT 0,
            created_at_ms INTEGER NOT NULL
        );
        CREATE INDEX queue_order ON queue_entries(venue_id, queue, seq);
        CREATE TABLE now_playing (
            venue_id TEXT PRIMARY KEY REFERENCES venues(venue_id),
            entry_id TEXT NOT NULL,
            queue TEXT NOT NULL,
            video_id TEXT NOT NULL,
            title TEXT NOT NULL,
            artist TEXT NOT NULL,
            duration REAL NOT NULL,
            request_id TEXT,
            requester_id TEXT,
            paid_credit REAL NOT NULL DEFAULT 0,
            started_at_ms INTEGER NOT NULL,
            device_id TEXT NOT NULL,
            epoch INTEGER NOT NULL
        );
        CREATE TABLE venue_changes (
            venue_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            change TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            PRIMARY KEY (venue_id, version)
        ) WITHOUT ROWID;
        CREATE TABLE master_writes (
            venue_id TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            result TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            PRIMARY KEY (venue_id, idempotency_key)
        ) WITHOUT ROWID;
        CREATE TABLE play_history (
            id INTEGER PRIMARY KEY,
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            entry_id TEXT,
            video_id TEXT NOT NULL,
            request_id TEXT,
            device_id TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            played_at_ms INTEGER NOT NULL
        );
        CREATE TABLE playlists (
            playlist_id TEXT PRIMARY KEY,
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            name TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE playlist_tracks (
            playlist_id TEXT NOT NULL REFERENCES playlists(playlist_id),
            position INTEGER NOT NULL,
            video_id TEXT NOT NULL,
            title TEXT NOT NULL,
            artist TEXT NOT NULL,
            duration REAL NOT NULL,
            PRIMARY KEY (playlist_id, position)
        );
        CREATE TABLE catalog (
            video_id TEXT PRIMARY KEY,
            duration REAL,
            analysis_start REAL,
            analysis_end REAL,
            loudness REAL,
            analysed_by TEXT,
            analysed_at_ms INTEGER,
            override_set INTEGER NOT NULL DEFAULT 0,
            override_start REAL,
            override_end REAL,
            override_by TEXT,
            override_at_ms INTEGER
        );
"""


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    # Statement by statement: executescript() would commit the migration's transaction half-way.
    for statement in _INITIAL.split(";\n"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m002_device_errors(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE device_errors (
            id INTEGER PRIMARY KEY,
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            device_id TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            video_id TEXT,
            message TEXT NOT NULL,
            at_ms INTEGER NOT NULL,             -- when it happened on the edge
            received_at_ms INTEGER NOT NULL,
            UNIQUE (venue_id, device_id, idempotency_key)
        )
        """
    )
    db.execute("CREATE INDEX device_errors_by_venue ON device_errors(venue_id, received_at_ms)")


@migrations()
def m003_venue_overrides(db: sqlite_utils.Database) -> None:
    # A venue's own cue points for a video; they win over the global (admin) override and the analysis.
    db.execute(
        """
        CREATE TABLE venue_overrides (
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            video_id TEXT NOT NULL REFERENCES catalog(video_id),
            override_start REAL,
            override_end REAL,
            override_by TEXT NOT NULL,
            override_at_ms INTEGER NOT NULL,
            PRIMARY KEY (venue_id, video_id)
        )
        """
    )


_CONSOLE = """
        ALTER TABLE playlists ADD COLUMN requestable INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE venues ADD COLUMN allow_explicit INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE venues ADD COLUMN max_duration_s REAL;
        ALTER TABLE venues ADD COLUMN artist_limit INTEGER;
        ALTER TABLE venues ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
        ALTER TABLE venues ADD COLUMN schedule_slot_id TEXT;
        CREATE TABLE venue_marks (
            mark_id TEXT PRIMARY KEY,
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            kind TEXT NOT NULL CHECK (kind IN ('ban_video', 'ban_artist', 'explicit')),
            value TEXT NOT NULL,
            value_key TEXT NOT NULL,              -- artists folded (rules.artist_key); video ids as they are
            created_at_ms INTEGER NOT NULL,
            UNIQUE (venue_id, kind, value_key)
        );
        CREATE TABLE schedule_slots (
            slot_id TEXT PRIMARY KEY,
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            playlist_id TEXT NOT NULL REFERENCES playlists(playlist_id),
            weekday INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),
            start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
            end_minute INTEGER NOT NULL CHECK (end_minute > start_minute AND end_minute <= 1440),
            created_at_ms INTEGER NOT NULL
        );
        CREATE INDEX schedule_by_venue ON schedule_slots(venue_id, weekday, start_minute)
"""


@migrations()
def m004_console(db: sqlite_utils.Database) -> None:
    # The staff console: playlists patrons may request from, ban list and explicit flags, request limits
    # per venue, and the weekly schedule (with the slot applied last, so a switch happens once).
    for statement in _CONSOLE.split(";\n"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m005_play_position(db: sqlite_utils.Database) -> None:
    # The master's player position from its heartbeats, and whether now playing was reported played:
    # a box taking over after a crash resumes the interrupted entry from there.
    for statement in (
        "ALTER TABLE players ADD COLUMN position_entry_id TEXT",
        "ALTER TABLE players ADD COLUMN position_s REAL",
        "ALTER TABLE players ADD COLUMN position_at_ms INTEGER",
        "ALTER TABLE now_playing ADD COLUMN ended_at_ms INTEGER",
    ):
        db.execute(statement)


@migrations()
def m006_player_instance(db: sqlite_utils.Database) -> None:
    # Which process of a device holds its lease (register/heartbeat instanceId): a second process with the
    # same device token is refused while the holder still beats.
    db.execute("ALTER TABLE players ADD COLUMN instance_id TEXT")


@migrations()
def m007_payments(db: sqlite_utils.Database) -> None:
    # Prices, payments and their refunds (issue 11).
    for statement in PAYMENT_TABLES:
        db.execute(statement)


@migrations()
def m008_normal_identities(db: sqlite_utils.Database) -> None:
    # Emails in their one normal form (hub.identity), artist keys folded the new way (lookalikes count as one).
    todo = renormalise.plan(
        [tuple(r) for r in db.execute("SELECT user_id, email FROM users").fetchall()],
        [tuple(r) for r in db.execute("SELECT token_hash, email FROM magic_links").fetchall()],
        [tuple(r) for r in db.execute("SELECT request_id, artist, artist_key FROM requests").fetchall()],
        [tuple(r) for r in db.execute("SELECT mark_id, venue_id, value, value_key FROM venue_marks"
                                      " WHERE kind = 'ban_artist'").fetchall()],
    )
    conn = db.conn
    conn.executemany("UPDATE users SET email = ? WHERE user_id = ?", [(e, k) for k, e in todo.users])
    conn.executemany("UPDATE magic_links SET email = ? WHERE token_hash = ?", [(e, k) for k, e in todo.links])
    conn.executemany("UPDATE requests SET artist_key = ? WHERE request_id = ?", [(a, k) for k, a in todo.requests])
    conn.executemany("DELETE FROM venue_marks WHERE mark_id = ?", [(m,) for m in todo.drop_marks])
    conn.executemany("UPDATE venue_marks SET value_key = ? WHERE mark_id = ?", [(v, k) for k, v in todo.marks])


@migrations()
def m009_venue_analyses(db: sqlite_utils.Database) -> None:
    # Each venue's boxes' own analysis of a video; the shared catalog value only when two venues agree.
    db.execute(_VENUE_ANALYSES)
    db.execute("CREATE INDEX venue_analyses_by_video ON venue_analyses(video_id)")


@migrations()
def m010_credentials(db: sqlite_utils.Database) -> None:
    # Token versions (a role/venue change or sign-out everywhere ends old tokens), boxes with their
    # credential state and last report, and short-lived pairing codes (hashed).
    db.execute("ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """
        CREATE TABLE devices (
            venue_id TEXT NOT NULL REFERENCES venues(venue_id),
            device_id TEXT NOT NULL,
            token_version INTEGER NOT NULL DEFAULT 0,
            revoked INTEGER NOT NULL DEFAULT 0,
            software_version TEXT,
            user_agent TEXT,
            now_playing TEXT,                   -- JSON, as reported
            problems TEXT NOT NULL DEFAULT '[]', -- JSON list of strings
            reported_at_ms INTEGER,
            created_at_ms INTEGER NOT NULL,
            PRIMARY KEY (venue_id, device_id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE pairings (
            code_hash TEXT PRIMARY KEY,         -- HMAC of the code shown on the box; the code is never stored
            secret_hash TEXT NOT NULL UNIQUE,   -- sha256 of the box's polling secret
            device_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'claimed', 'delivered')),
            venue_id TEXT REFERENCES venues(venue_id),
            token_version INTEGER,
            claimed_by TEXT,
            expires_at_ms INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL
        )
        """
    )


@migrations()
def m011_executions(db: sqlite_utils.Database) -> None:
    # Executions of the function endpoint, for their creator's GET (from any hub instance; bounded, expiring).
    for statement in EXECUTIONS_TABLE:
        db.execute(statement)


@migrations()
def m012_trusted_durations(db: sqlite_utils.Database) -> None:
    # An admin's analysed duration, kept apart: with staff's declared durations, what a box's report must be
    # near to be shared (rules.plausible_analysis); declared durations are looked up by video.
    db.execute("ALTER TABLE catalog ADD COLUMN trusted_duration REAL")
    db.execute("CREATE INDEX playlist_tracks_by_video ON playlist_tracks(video_id)")


@migrations()
def m013_paid_request_steps(db: sqlite_utils.Database) -> None:
    # Paid requests in one statement per batch (hub/store/sqlite_paid.py): the SQLite twin of PostgreSQL's
    # djamms_submit_paid_request, run for many rows at once. `INSERT INTO paid_request_steps VALUES (...), ...`
    # takes each row in order, as the per-request transaction did: a paymentId already stored changes nothing
    # (a replay), an unknown venue nothing; otherwise the request row, with the refusal that
    # `refusals[min(recent requests for the artist, last index)]` names (NULL: accepted; the list is
    # rules.paid_request_refusal for each count, computed by the caller), and for an accepted one its entry
    # at the end of the priority queue and the change (version + 1, its log row; the log pruned to the last
    # `retain` every `prune_every` versions). No business rule here: the caller decides refusals and builds
    # entries and changes. Why: each statement costs the writer thread a wait for the GIL from the busy event
    # loop; a batch of dozens of requests now takes three.
    db.execute(
        """
        CREATE VIEW paid_request_steps AS SELECT
            NULL AS request_id, NULL AS venue_id, NULL AS payment_id, NULL AS requester_id, NULL AS client_address,
            NULL AS video_id, NULL AS title, NULL AS artist, NULL AS artist_key, NULL AS duration,
            NULL AS since_ms, NULL AS refusals, NULL AS created_at_ms, NULL AS entry_id, NULL AS paid_credit,
            NULL AS change, NULL AS retain, NULL AS prune_every
        WHERE 0
        """
    )
    db.execute(
        """
        CREATE TRIGGER paid_request_step INSTEAD OF INSERT ON paid_request_steps
        WHEN NOT EXISTS (SELECT 1 FROM requests WHERE payment_id = NEW.payment_id)
            AND EXISTS (SELECT 1 FROM venues WHERE venue_id = NEW.venue_id)
        BEGIN
            INSERT INTO requests (request_id, venue_id, payment_id, requester_id, client_address, video_id, title,
                                  artist, artist_key, duration, status, reason, created_at_ms)
                SELECT NEW.request_id, NEW.venue_id, NEW.payment_id, NEW.requester_id, NEW.client_address,
                       NEW.video_id, NEW.title, NEW.artist, NEW.artist_key, NEW.duration,
                       iif(reason IS NULL, 'pending', 'refund_due'), reason, NEW.created_at_ms
                FROM (SELECT json_extract(NEW.refusals, '$[' || min(count(*), json_array_length(NEW.refusals) - 1)
                                                        || ']') AS reason
                      FROM requests WHERE venue_id = NEW.venue_id AND artist_key = NEW.artist_key
                      AND status != 'refund_due' AND created_at_ms > NEW.since_ms);
            INSERT INTO queue_entries (entry_id, venue_id, queue, seq, video_id, title, artist, duration, request_id,
                                       requester_id, paid_credit, created_at_ms)
                SELECT NEW.entry_id, NEW.venue_id, 'priority',
                       (SELECT COALESCE(MAX(seq), 0) + 1 FROM queue_entries
                        WHERE venue_id = NEW.venue_id AND queue = 'priority'),
                       NEW.video_id, NEW.title, NEW.artist, NEW.duration, NEW.request_id, NEW.requester_id,
                       NEW.paid_credit, NEW.created_at_ms
                FROM requests WHERE request_id = NEW.request_id AND status = 'pending';
            UPDATE venues SET version = version + 1
                WHERE venue_id = NEW.venue_id
                AND EXISTS (SELECT 1 FROM requests WHERE request_id = NEW.request_id AND status = 'pending');
            INSERT INTO venue_changes (venue_id, version, change, created_at_ms)
                SELECT NEW.venue_id, version, NEW.change, NEW.created_at_ms FROM venues
                WHERE venue_id = NEW.venue_id
                AND EXISTS (SELECT 1 FROM requests WHERE request_id = NEW.request_id AND status = 'pending');
            DELETE FROM venue_changes WHERE venue_id = NEW.venue_id
                AND (SELECT version FROM venues WHERE venue_id = NEW.venue_id) % NEW.prune_every = 0
                AND version <= (SELECT version FROM venues WHERE venue_id = NEW.venue_id) - NEW.retain
                AND EXISTS (SELECT 1 FROM requests WHERE request_id = NEW.request_id AND status = 'pending');
        END
        """
    )


_OWNER_ROLE = """
        CREATE TABLE users_new (
            user_id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            venue_id TEXT REFERENCES venues(venue_id),
            role TEXT NOT NULL CHECK (role IN ('admin', 'owner', 'staff')),
            autoplay INTEGER NOT NULL DEFAULT 1,
            created_at_ms INTEGER NOT NULL,
            token_version INTEGER NOT NULL DEFAULT 0,
            CHECK (role != 'owner' OR venue_id IS NOT NULL)  -- an owner runs a venue
        );
        INSERT INTO users_new (user_id, email, venue_id, role, autoplay, created_at_ms, token_version)
            SELECT user_id, email, venue_id, role, autoplay, created_at_ms, token_version FROM users;
        DROP TABLE users;
        ALTER TABLE users_new RENAME TO users
"""


@migrations()
def m014_owner_role(db: sqlite_utils.Database) -> None:
    # A venue's owner: its staff who also add and remove its staff. SQLite changes a CHECK only by copying the
    # table (nothing references users; every user keeps its id, role and token version, so tokens keep working).
    for statement in _OWNER_ROLE.split(";\n"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m015_song_details(db: sqlite_utils.Database) -> None:
    # Who described a playlist track: NULL, staff (typed); a device id, the venue's box (from yt-dlp, for a song
    # added by URL alone). A box's details count for its own venue only, never as a staff-declared length.
    db.execute("ALTER TABLE playlist_tracks ADD COLUMN details_by TEXT")
