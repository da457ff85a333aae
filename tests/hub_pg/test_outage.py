"""PostgreSQL going away under a running hub: clients get 503 and Retry-After, the log one line."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from djamms_edge.hub.auth import issue_user_token
from djamms_edge.hub.store.base import User
from tests.hub_pg.conftest import JWT_SECRET, hub_config, serving_in_process
from tests.pg_cluster import CLUSTER_SCRIPT, unavailable


@pytest.fixture
def own_cluster() -> Iterator[tuple[str, Callable[[], None]]]:
    """A private PostgreSQL this test may stop: its URL and the function that stops it."""
    cluster = tempfile.mkdtemp(prefix="djamms-pg-outage-", dir="/tmp")

    def stop() -> None:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", cluster], capture_output=True, timeout=60, check=False)

    started = subprocess.run([str(CLUSTER_SCRIPT), "start", cluster], capture_output=True, text=True, timeout=120,
                             check=False)
    try:
        if started.returncode != 0:
            unavailable(f"cannot start a private cluster: {started.stderr.strip()}")
        yield started.stdout.strip(), stop
    finally:
        stop()


async def test_a_database_outage_is_a_503_with_retry_after_and_one_log_line(
    own_cluster: tuple[str, Callable[[], None]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, stop_database = own_cluster
    admin = {"Authorization": "Bearer " + issue_user_token(JWT_SECRET, User("u", "a@example.com", None, "admin"),
                                                           time.time(), 3600)}
    song = {"videoId": "dQw4w9WgXcQ", "title": "t", "artist": "a", "duration": 200}
    async with serving_in_process(hub_config(url), tmp_path) as base, aiohttp.ClientSession() as http:
        async with http.post(base + "/api/v1/venues", json={"venueId": "v", "name": "V"}, headers=admin) as resp:
            assert resp.status == 201

        stop_database()
        caplog.set_level(logging.WARNING, logger="djamms_edge.hub.store.postgres")
        answers = []
        for i in range(5):
            async with http.post(base + "/api/v1/venues/v/requests", json={"song": song, "paymentId": f"p{i}"}) as resp:
                answers.append((resp.status, resp.headers.get("Retry-After"), (await resp.json())["error"]))
        async with http.get(base + "/healthz") as resp:
            health = resp.status

    assert answers == [(503, "5", "store unavailable, try again shortly")] * 5
    assert health == 503
    outage_lines = [r for r in caplog.records if r.name.endswith("store.postgres") and "unavailable" in r.getMessage()]
    assert len(outage_lines) == 1
