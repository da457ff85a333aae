"""What keeping executions costs a reference client (issue 13 leftover: executions are kept in the store for
their creator's ``GET``): player-registry heartbeats through ``POST /v1/functions/{id}/executions`` with a
device token, one after another, against a hub whose store keeps each execution and, side by side in the same
rounds, one whose store drops them. Per backend: median µs per heartbeat and the ratio.

    .venv/bin/python bench/executions.py [--rounds 5] [--beats 300] [--pg-url URL]   (or DJAMMS_TEST_PG_URL)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from djamms_edge.hub.app import create_app  # noqa: E402
from djamms_edge.hub.auth import issue_device_token  # noqa: E402
from djamms_edge.hub.config import HubConfig  # noqa: E402
from djamms_edge.hub.store import store_from_url  # noqa: E402
from djamms_edge.hub.store.base import HubStore, StoredExecution  # noqa: E402

SECRET = "bench-executions-secret-0123456789abcdef"  # noqa: S105 -- a throwaway hub's key


async def _drop(execution: StoredExecution, keep_per_reader: int) -> None:
    """A store that keeps no execution: the baseline."""


async def heartbeats(url: str, keep: bool, beats: int) -> float:
    """Mean µs of ``beats`` sequential compat heartbeats on a fresh hub over ``url``."""
    store: HubStore = store_from_url(url, retain_changes=1000)
    if not keep:
        store.keep_execution = _drop  # type: ignore[method-assign]
    runner = web.AppRunner(create_app(HubConfig(jwt_secret=SECRET), store))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        venue = "bench-" + uuid.uuid4().hex[:8]
        await store.create_venue(venue, venue, int(time.time() * 1000))
        headers = {"Authorization": f"Bearer {issue_device_token(SECRET, venue, 'box', time.time(), 3600)}"}
        endpoint = f"http://{host}:{port}/v1/functions/player-registry/executions"

        def call(action: str) -> dict[str, str]:
            return {"body": json.dumps({"action": action, "venueId": venue, "deviceId": "box", "instanceId": "p"})}

        async with aiohttp.ClientSession() as http:
            async with http.post(endpoint, json=call("register"), headers=headers) as resp:
                assert resp.status == 201, await resp.text()
            started = time.perf_counter()
            for _ in range(beats):
                async with http.post(endpoint, json=call("heartbeat"), headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
                    await resp.read()
            return (time.perf_counter() - started) / beats * 1e6
    finally:
        await runner.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--beats", type=int, default=300)
    parser.add_argument("--pg-url", default=os.environ.get("DJAMMS_TEST_PG_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("sqlite", f"sqlite:///{tmp}/hub.db")] + ([("postgresql", args.pg_url)] if args.pg_url else [])
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        for name, url in backends:
            dropped, kept = [], []
            for _ in range(args.rounds):  # side by side, round after round
                dropped.append(await heartbeats(url, False, args.beats))
                kept.append(await heartbeats(url, True, args.beats))
            base, cost = statistics.median(dropped), statistics.median(kept)
            print(f"{name}: compat heartbeat {base:.0f} µs without keeping executions, {cost:.0f} µs keeping them:"
                  f" {cost / base:.2f}x (median of {args.rounds} rounds of {args.beats})")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
