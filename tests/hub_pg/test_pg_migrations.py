"""PostgreSQL schema migrations: numbered, recorded, applied once even by instances starting together."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from djamms_edge.hub.store.pg_migrations import Migration, apply_migrations
from djamms_edge.hub.store.pg_schema import MIGRATIONS
from djamms_edge.hub.store.postgres import migrate_database


async def test_instances_starting_together_apply_each_migration_once(pg_empty_url: str) -> None:
    applied = await asyncio.gather(*(migrate_database(pg_empty_url) for _ in range(5)))

    assert sorted(applied) == [[]] * 4 + [[m.version for m in MIGRATIONS]]
    conn = await asyncpg.connect(pg_empty_url)
    try:
        recorded = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {r["tablename"] for r in rows}
    finally:
        await conn.close()
    assert recorded == [m.version for m in MIGRATIONS]
    assert {"venues", "players", "requests", "queue_entries", "venue_changes"} <= tables


async def test_a_failing_migration_leaves_nothing_half_applied(pg_empty_url: str) -> None:
    good = Migration(1, "a table", "CREATE TABLE a (x int)")
    bad = Migration(2, "broken", "CREATE TABLE b (x int); SELECT no_such_function()")
    conn = await asyncpg.connect(pg_empty_url)
    try:
        await apply_migrations(conn, (good,))
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await apply_migrations(conn, (good, bad))
        assert [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")] == [1]
        assert await conn.fetchval("SELECT to_regclass('b')") is None
        # Fixed, it applies on the next start.
        assert await apply_migrations(conn, (good, Migration(2, "fixed", "CREATE TABLE b (x int)"))) == [2]
    finally:
        await conn.close()


async def test_out_of_order_migrations_are_refused(pg_empty_url: str) -> None:
    conn = await asyncpg.connect(pg_empty_url)
    try:
        with pytest.raises(ValueError, match="unique and increasing"):
            await apply_migrations(conn, (Migration(2, "b", "SELECT 1"), Migration(1, "a", "SELECT 1")))
    finally:
        await conn.close()
