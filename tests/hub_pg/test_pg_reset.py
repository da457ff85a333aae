"""The reset between PostgreSQL tests (tests/pg_cluster.py): each test starts from the migrated state, whatever
the test before it wrote or left connected."""

from __future__ import annotations

import asyncpg
import pytest

from tests.pg_cluster import SharedDatabase, _empty

ERROR_ROW = ("INSERT INTO device_errors (venue_id, device_id, idempotency_key, message, at_ms, received_at_ms)"
             " VALUES ('v', 'd', 'k', 'm', 0, 0) RETURNING id")


async def _write_a_little(conn: asyncpg.Connection) -> int:
    await conn.execute("INSERT INTO venues (venue_id, name, created_at_ms) VALUES ('v', 'V', 0)")
    return int(await conn.fetchval(ERROR_ROW))


async def test_a_reset_empties_all_but_the_migrations_restarts_identities_and_ends_connections(
    pg_url: str, pg_shared_database: SharedDatabase
) -> None:
    left_open = await asyncpg.connect(pg_url)  # a connection a test forgot
    try:
        migrations = await left_open.fetchval("SELECT count(*) FROM schema_migrations")
        assert migrations > 0
        first_id = await _write_a_little(left_open)
        await _empty(pg_shared_database.url, pg_shared_database.reset)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):  # ended
            await left_open.fetchval("SELECT 1")
    finally:
        await left_open.close()
    conn = await asyncpg.connect(pg_url)
    try:
        tables = [r[0] for r in await conn.fetch(
            "SELECT oid::regclass::text FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")]
        rows = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
        assert rows.pop("schema_migrations") == migrations
        assert rows and set(rows.values()) == {0}, rows
        assert await _write_a_little(conn) == first_id  # identities start again where the migrated state has them
    finally:
        await conn.close()
