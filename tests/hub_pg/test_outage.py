"""PostgreSQL going away under running hubs and coming back: 503 meanwhile, everything works after."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.hub_pg.conftest import VENUE, TwoHubs, hub_config, running_two_hubs, serving_in_process
from tests.pg_cluster import CLUSTER_SCRIPT, private_cluster

Control = Callable[[str], None]  # "pause" | "resume"


@pytest.fixture
def own_cluster() -> Iterator[tuple[str, Control]]:
    """A private PostgreSQL this test may stop and start again: its URL and the control."""
    with private_cluster("outage test") as (url, cluster_dir):

        def control(action: str) -> None:
            subprocess.run([str(CLUSTER_SCRIPT), action, cluster_dir], capture_output=True, timeout=120, check=True)

        yield url, control


def paid(i: int) -> dict[str, object]:
    return {"song": {"videoId": "dQw4w9WgXcQ", "title": "t", "artist": f"artist {i}", "duration": 200},
            "paymentId": f"pay-outage-{i}"}


async def call(hubs: TwoHubs, method: str, i: int, path: str, body: object = None) -> tuple[int, str | None, dict]:
    async with hubs.http.request(method, hubs.urls[i % 2] + path, json=body) as resp:
        return resp.status, resp.headers.get("Retry-After"), await resp.json()


async def test_a_database_outage_is_503_then_everything_works_again(
    own_cluster: tuple[str, Control], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, control = own_cluster
    caplog.set_level(logging.INFO, logger="djamms_edge.hub.store")
    async with running_two_hubs(serving_in_process, hub_config(url), tmp_path) as hubs:
        control("pause")
        during = [await call(hubs, "POST", i, f"/api/v1/venues/{VENUE}/requests", paid(i)) for i in range(4)]
        health = (await call(hubs, "GET", 0, "/healthz"))[0]
        control("resume")

        # As an edge does after losing its feed: subscribe again (to the first instance) ...
        token = hubs.device_token("box-outage")
        async with hubs.http.ws_connect(hubs.url(0, f"/venues/{VENUE}/feed?since=0"),
                                        headers={"Authorization": f"Bearer {token}"}) as ws:
            while (await ws.receive_json(timeout=15))["type"] != "ready":
                pass
            # ... and hear of a request made on the second: its listener is LISTENing again.
            after = await call(hubs, "POST", 1, f"/api/v1/venues/{VENUE}/requests", paid(99))
            message = await ws.receive_json(timeout=15)

    assert [(status, retry) for status, retry, _ in during] == [(503, "5")] * 4
    assert health == 503
    assert after[0] == 201
    assert message["type"] == "change" and message["change"]["entry"]["artist"] == "artist 99"
    store_lines = [r.getMessage().split(":")[0] for r in caplog.records if r.name.endswith("store.postgres")]
    # Each instance logs one line when the outage starts and one when it ends, none per failed request.
    assert sorted(store_lines) == ["PostgreSQL available again"] * 2 + ["PostgreSQL unavailable"] * 2
