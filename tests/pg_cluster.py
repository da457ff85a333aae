"""pytest plugin: a real PostgreSQL server for the tests of the PostgreSQL store.

The server comes from ``DJAMMS_TEST_PG_URL`` (``scripts/run-tests.sh`` starts a private
cluster and exports it); when that is unset and the PostgreSQL binaries are installed,
the session starts its own cluster with ``scripts/pg-test-cluster.sh``. Without either,
PostgreSQL tests skip locally and FAIL under CI (``CI=true``), so a CI machine that
lost its PostgreSQL can never pass by skipping.

The session migrates one database; each test starts with it emptied back to the migrated state
(``pg_url``: every table but the migrations' own truncated, connections left behind ended), so tests
are isolated and can run in any order. Migration tests get an empty database of their own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = REPO / "scripts" / "pg-test-cluster.sh"
ENV_URL = "DJAMMS_TEST_PG_URL"


def running_under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync fixture code, whatever loop the caller is in."""

    async def call() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, call()).result()


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def unavailable(reason: str) -> None:
    """Skip, or fail under CI: PostgreSQL tests never pass by skipping on a CI machine."""
    if running_under_ci():
        pytest.fail(f"PostgreSQL is required under CI: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL for the postgres backend: {reason}")


@contextmanager
def private_cluster(purpose: str) -> Iterator[tuple[str, str]]:
    """Start a throwaway cluster with scripts/pg-test-cluster.sh: yields (URL, its directory), then stops it.

    Skips (or fails under CI) when it cannot start. The directory is under /tmp, not pytest's tmp_path:
    as root the cluster runs as `nobody`, which cannot traverse pytest's 0700 directories."""
    cluster_dir = tempfile.mkdtemp(prefix="djamms-pg-", dir="/tmp")
    started = subprocess.run(
        [str(CLUSTER_SCRIPT), "start", cluster_dir], capture_output=True, text=True, timeout=120, check=False
    )
    try:
        if started.returncode != 0:
            unavailable(f"{purpose}: starting a private cluster failed: {started.stderr.strip()}")
        yield started.stdout.strip(), cluster_dir
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", cluster_dir], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server (its maintenance database) the tests may create databases on."""
    url = os.environ.get(ENV_URL)
    if url:
        try:
            run_async(lambda: _admin(url, "SELECT 1"))
        except (OSError, asyncpg.PostgresError) as exc:
            unavailable(f"{ENV_URL}={url} does not answer: {exc!r}")
        yield url
        return
    with private_cluster(f"{ENV_URL} unset") as (cluster_url, _):
        yield cluster_url


def _create_database(server_url: str, template: str) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    # FILE_COPY: with fsync off in the test cluster it is several times faster than WAL_LOG.
    run_async(lambda: _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"))
    return name


def _drop_database(server_url: str, name: str) -> None:
    run_async(lambda: _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _fresh_database(server_url: str, template: str) -> Iterator[str]:
    name = _create_database(server_url, template)
    try:
        yield with_database(server_url, name)
    finally:
        _drop_database(server_url, name)


# Rows the migrations themselves write: a reset keeps them (and a migration that seeds another table must say how
# that table is reset, or every test after the first would run on whatever the one before left in it).
KEPT_BY_RESET = frozenset({"schema_migrations"})


async def _reset_statements(url: str) -> str:
    """SQL that empties the migrated database back to its state after the migrations: DELETE from every table but
    ``KEPT_BY_RESET`` (which must be the only ones with rows), tables referring to others first, then every
    sequence restarted. DELETE, not TRUNCATE: on tables of a test's few rows it is ~20 ms where TRUNCATE, which
    makes new files for each table and index, took ~0.7 s on a loaded box."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        tables = {r["name"]: r["relname"] for r in await conn.fetch(
            "SELECT oid::regclass::text AS name, relname FROM pg_class"
            " WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace")}
        refers = await conn.fetch("SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent"
                                  " FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace")
        sequences = [r[0] for r in await conn.fetch(
            "SELECT oid::regclass::text FROM pg_class WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace")]
        emptied = sorted(name for name, bare in tables.items() if bare not in KEPT_BY_RESET)
        seeded = [t for t in emptied if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {t})")]
    finally:
        await conn.close()
    assert not seeded, f"the migrations leave rows in {seeded}: teach tests/pg_cluster.py's reset to keep them"
    order: list[str] = []  # children before the tables they refer to
    waiting = {t: {r["child"] for r in refers if r["parent"] == t and r["child"] != t} for t in emptied}
    while waiting:
        ready = sorted(t for t, children in waiting.items() if not children - set(order))
        assert ready, f"foreign keys in a cycle among {sorted(waiting)}: the reset cannot order its DELETEs"
        order += ready
        for t in ready:
            del waiting[t]
    # A lock a backend kept past its termination would hold a DELETE until pytest's timeout: fail in 10 s, saying so.
    return "; ".join(["SET lock_timeout = '10s'"] + [f"DELETE FROM {t}" for t in order]
                     + [f"ALTER SEQUENCE {s} RESTART" for s in sequences])


async def _empty(url: str, reset: str) -> None:
    """Back to the migrated state: every connection left on the database ended (as DROP DATABASE … WITH (FORCE)
    would), then ``reset`` (one transaction)."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await conn.execute(reset)
    finally:
        await conn.close()


@dataclass(frozen=True)
class SharedDatabase:
    url: str
    reset: str  # the SQL that empties it


@pytest.fixture(scope="session")
def pg_shared_database(pg_server_url: str) -> Iterator[SharedDatabase]:
    """A database the store's migrations ran on, for the session's PostgreSQL tests, emptied before each (``pg_url``).

    Named for this session, so test sessions sharing one server never drop each other's."""
    from djamms_edge.hub.store.postgres import migrate_database

    name = f"djamms_tests_{uuid.uuid4().hex[:12]}"
    run_async(lambda: _admin(pg_server_url, f"CREATE DATABASE {name}"))
    url = with_database(pg_server_url, name)
    try:
        run_async(lambda: migrate_database(url))
        yield SharedDatabase(url, run_async(lambda: _reset_statements(url)))
    finally:
        _drop_database(pg_server_url, name)


@pytest.fixture
def pg_url(pg_shared_database: SharedDatabase) -> str:
    """URL of a migrated database holding nothing but what the migrations wrote, and no connection but the test's.

    Emptying one database (~70 ms with the connection) replaced a copy of a migrated template per test and its
    DROP (~0.45 s together on a loaded 2-core box: 187 s over 414 tests, against 29 s now). Isolation is the same:
    each test starts from the migrated state, whatever the one before it wrote or left connected."""
    run_async(lambda: _empty(pg_shared_database.url, pg_shared_database.reset))
    return pg_shared_database.url


@pytest.fixture
def pg_empty_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh database without the hub's schema (for migration tests)."""
    yield from _fresh_database(pg_server_url, "template0")
