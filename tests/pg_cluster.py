"""pytest plugin: a real PostgreSQL server for the tests of the PostgreSQL store.

The server comes from ``DJAMMS_TEST_PG_URL`` (``scripts/run-tests.sh`` starts a private
cluster and exports it); when that is unset and the PostgreSQL binaries are installed,
the session starts its own cluster with ``scripts/pg-test-cluster.sh``. Without either,
PostgreSQL tests skip locally and FAIL under CI (``CI=true``), so a CI machine that
lost its PostgreSQL can never pass by skipping.

Each test gets its own database, copied from a template (``CREATE DATABASE … TEMPLATE``),
so tests are isolated and can run in any order. A copy costs 0.2-1 s (a checkpoint and the
files), so a thread makes the next test's copy while the current test runs (``DatabasePool``).
"""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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


@pytest.fixture(scope="session")
def pg_template_name(pg_server_url: str) -> Iterator[str]:
    """A database with the store's schema migrated, copied by every test's database.

    Named for this session, so test sessions sharing one server never drop each other's template."""
    from djamms_edge.hub.store.postgres import migrate_database

    name = f"djamms_template_{uuid.uuid4().hex[:12]}"
    run_async(lambda: _admin(pg_server_url, f"CREATE DATABASE {name}"))
    try:
        run_async(lambda: migrate_database(with_database(pg_server_url, name)))
        yield name
    finally:
        run_async(lambda: _admin(pg_server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


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


class DatabasePool:
    """Copies of the template made ahead, one at a time, in a thread: each test takes a copy nobody has
    used (the same isolation as copying it on demand) without waiting for the copy to be made."""

    def __init__(self, server_url: str, template: str, ahead: int = 1) -> None:
        self.server_url, self.template = server_url, template
        self.ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=ahead)
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._fill, name="pg-database-pool", daemon=True)
        self.thread.start()

    def _fill(self) -> None:
        while not self.closing.is_set():
            try:
                made: str | BaseException = _create_database(self.server_url, self.template)
            except Exception as exc:  # handed to the test that takes it: its failure shows why
                made = exc
            while True:
                try:
                    self.ready.put(made, timeout=0.2)
                    break
                except queue.Full:
                    if self.closing.is_set():
                        if isinstance(made, str):
                            _drop_database(self.server_url, made)
                        return

    def take(self) -> str:
        """The name of a fresh copy; the taker drops it."""
        made = self.ready.get(timeout=120)
        if isinstance(made, BaseException):
            raise made
        return made

    def close(self) -> None:
        self.closing.set()
        self.thread.join(timeout=120)
        while not self.ready.empty():
            left = self.ready.get_nowait()
            if isinstance(left, str):
                _drop_database(self.server_url, left)


@pytest.fixture(scope="session")
def pg_database_pool(pg_server_url: str, pg_template_name: str) -> Iterator[DatabasePool]:
    pool = DatabasePool(pg_server_url, pg_template_name)
    try:
        yield pool
    finally:
        pool.close()  # before the template is dropped: no copy may be under way then


@pytest.fixture
def pg_url(pg_server_url: str, pg_database_pool: DatabasePool) -> Iterator[str]:
    """URL of a fresh, migrated database of this test's own, dropped afterwards."""
    name = pg_database_pool.take()
    try:
        yield with_database(pg_server_url, name)
    finally:
        _drop_database(pg_server_url, name)


@pytest.fixture
def pg_empty_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh database without the hub's schema (for migration tests)."""
    yield from _fresh_database(pg_server_url, "template0")
