"""A real hub on a loopback port with a real store, for each store backend.

``BACKENDS`` names the stores the whole hub suite runs against; the PostgreSQL
backend (issue 7) adds itself here and to ``make_store``.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_device_token, issue_user_token
from djamms_edge.hub.config import HubConfig, LimitsConfig
from djamms_edge.hub.mailer import Mailer
from djamms_edge.hub.store import store_from_url
from djamms_edge.hub.store.base import HubStore, User
from tests.pg_cluster import run_async

SECRET = "test-secret-0123456789abcdef-0123456789"
BACKENDS = ["sqlite", "postgresql"]


class Clock:
    """Real time plus an offset tests can advance (tokens stay valid; rules see the future)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def make_store(backend: str, tmp_path: Path, retain_changes: int = 1000, pg_url: str | None = None) -> HubStore:
    if backend == "sqlite":
        return store_from_url(f"sqlite:///{tmp_path / 'hub.db'}", retain_changes=retain_changes)
    if backend == "postgresql" and pg_url:
        return store_from_url(pg_url, retain_changes=retain_changes)
    raise AssertionError(f"unknown backend {backend}")


def hub_config(**sections: Any) -> HubConfig:
    """Test defaults with sections replaced; rate limits are high unless a test is about them."""
    limits = LimitsConfig(magic_links_per_email=1000, magic_links_per_address=1000, requests_per_client=1000,
                          requests_per_patron=1000, pairings_per_address=1000, pairing_claims_per_venue=1000)
    base = HubConfig(jwt_secret=SECRET, limits=limits)
    return dataclasses.replace(base, **sections)


@dataclasses.dataclass
class Hub:
    url: str
    http: aiohttp.ClientSession
    store: HubStore
    config: HubConfig
    clock: Clock

    def device_token(self, venue_id: str, device_id: str) -> str:
        return issue_device_token(SECRET, venue_id, device_id, time.time(), 3600)

    def user_token(self, role: str, venue_id: str | None, user_id: str | None = None) -> str:
        """A token of the admin every hub starts with, or of the staff user ``venue()`` made for ``venue_id``
        (tokens are checked against their user's record: a user that does not exist is refused)."""
        user_id = user_id or (ADMIN_ID if role == "admin" else staff_id(venue_id))
        user = User(user_id, f"{user_id}@example.com", venue_id, role)  # type: ignore[arg-type]
        return issue_user_token(SECRET, user, time.time(), 3600)

    def device(self, venue_id: str, device_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.device_token(venue_id, device_id)}"}

    def staff(self, venue_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user_token('staff', venue_id)}"}

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user_token('admin', None)}"}

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                   **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, json=body, headers=headers, **kwargs) as resp:
            payload = await resp.json(content_type=None)
            return resp.status, payload

    async def venue(self, venue_id: str | None = None) -> str:
        """A new venue, and a staff user of it (``staff(venue_id)`` is that user's token)."""
        venue_id = venue_id or "v-" + uuid.uuid4().hex[:8]
        now_ms = int(self.clock() * 1000)
        await self.store.create_venue(venue_id, venue_id, now_ms)
        user_id = staff_id(venue_id)
        await self.store.upsert_user(User(user_id, f"{user_id}@example.com", venue_id, "staff"), now_ms)
        return venue_id


ADMIN_ID = "user-admin"


def staff_id(venue_id: str | None) -> str:
    return f"staff-{venue_id}"


HubFactory = Callable[..., Any]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hub database with every migration applied, which each test's SQLite hub starts from a copy of: the
    same file a new store makes, for ~1 ms instead of ~50 ms of migrations (PostgreSQL: tests/pg_cluster.py)."""
    directory = tmp_path_factory.mktemp("sqlite-template")

    async def migrate() -> None:
        store = make_store("sqlite", directory)
        await store.open()
        await store.close()

    run_async(migrate)
    return directory / "hub.db"


@pytest.fixture
def start_hub(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> HubFactory:
    """``async with start_hub(config=..., mailer=...) as hub`` runs a hub on 127.0.0.1:<ephemeral>."""
    # A fresh PostgreSQL database per test (tests/pg_cluster.py); skips, or fails under CI, without a server.
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    if backend == "sqlite" and not (tmp_path / "hub.db").exists():
        # Restarted in one test, a hub keeps its file: only a test's first hub starts from the template.
        with closing(sqlite3.connect(request.getfixturevalue("sqlite_template"))) as template, \
                closing(sqlite3.connect(tmp_path / "hub.db")) as copy:
            template.backup(copy)

    @asynccontextmanager
    async def start(config: HubConfig | None = None, mailer: Mailer | None = None,
                    retain_changes: int = 1000, port: int = 0, clock: Clock | None = None) -> AsyncIterator[Hub]:
        """Started twice on PostgreSQL: two hub instances on one database (pass one ``clock`` to both)."""
        config = config or hub_config()
        clock = clock or Clock()
        store = make_store(backend, tmp_path, retain_changes, pg_url)
        server = TestServer(create_app(config, store, mailer=mailer, clock=clock), host="127.0.0.1", port=port)
        await server.start_server()
        await store.upsert_user(User(ADMIN_ID, f"{ADMIN_ID}@example.com", None, "admin"), int(clock() * 1000))
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
                yield Hub(str(server.make_url("")).rstrip("/"), http, store, config, clock)
        finally:
            await server.close()

    return start


@pytest.fixture
async def hub(start_hub: HubFactory) -> AsyncIterator[Hub]:
    async with start_hub() as running:
        yield running
