"""Numbered schema migrations for the hub's PostgreSQL store, tracked in a table.

Each migration runs once, in order, and is recorded in ``schema_migrations``. All
pending migrations run in one transaction under an advisory lock, so several hub
instances starting at once against a fresh database neither race nor half-apply:
the first applies them, the others wait and then find nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# An arbitrary constant naming "the hub's schema" among PostgreSQL advisory locks.
MIGRATION_LOCK_KEY = 0x646A616D6D73  # "djamms"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    # Work SQL cannot do (Unicode normal forms), run after ``sql`` in the same transaction.
    then: Callable[[Any], Awaitable[None]] | None = None


async def apply_migrations(conn: Any, migrations: tuple[Migration, ...]) -> list[int]:
    """Apply the migrations ``conn``'s database lacks; returns the versions applied now."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"migration versions must be unique and increasing: {versions}")
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            if migration.then is not None:
                await migration.then(conn)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
            )
            applied_now.append(migration.version)
    for version in applied_now:
        log.info("applied PostgreSQL migration %d", version)
    return applied_now
