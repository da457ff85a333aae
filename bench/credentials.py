"""What revocable tokens and box reports cost a heartbeat, side by side in one process.

Two hubs on SQLite in this process, same config, heartbeats sent one after another by one client:

- ``baseline``: the token's version is not looked up and the box's report is not stored (both patched out);
- ``checked``: as shipped: every request's token checked against the store (versions cached for
  ``credentials.CACHE_S``), and each heartbeat's report (version, now playing, problems) written to the
  devices table.

Rounds alternate between the two so machine load hits both alike. Prints heartbeats/s, mean latency and the
ratio checked/baseline.

    .venv/bin/python bench/credentials.py [--beats 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from unittest import mock

import aiohttp
from aiohttp.test_utils import TestServer

from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_device_token
from djamms_edge.hub.config import HubConfig
from djamms_edge.hub.credentials import CredentialCheck
from djamms_edge.hub.store import store_from_url

SECRET = "bench-credentials-secret-0123456789abcdef"  # noqa: S105 -- a throwaway hub's key
VENUE, DEVICE = "bench-venue", "bench-box"
REPORT = {"version": "0.9.0", "problems": ["deno missing"],
          "nowPlaying": {"entryId": "e-1", "videoId": "dQw4w9WgXcQ", "title": "t", "artist": "a", "position": 12.0,
                         "duration": 200.0}}


async def _no_check(self: object, principal: object) -> None:
    return None


async def _no_report(*args: object) -> None:
    return None


@contextlib.contextmanager
def baseline() -> Iterator[None]:
    with mock.patch.object(CredentialCheck, "check", _no_check), \
            mock.patch("djamms_edge.hub.store.sqlite.SqliteStore.record_device_report", _no_report):
        yield


@contextlib.asynccontextmanager
async def hub(directory: Path) -> AsyncIterator[str]:
    store = store_from_url(f"sqlite:///{directory / 'hub.db'}", retain_changes=1000)
    server = TestServer(create_app(HubConfig(jwt_secret=SECRET), store), host="127.0.0.1", port=0)
    await server.start_server()
    await store.create_venue(VENUE, VENUE, int(time.time() * 1000))
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def beats(url: str, count: int) -> float:
    """Seconds for ``count`` heartbeats in a row (after registering)."""
    token = issue_device_token(SECRET, VENUE, DEVICE, time.time(), 3600)
    path = f"{url}/api/v1/venues/{VENUE}/players"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.post(f"{path}/register", json={"deviceId": DEVICE, **REPORT}) as resp:
            assert resp.status == 200, await resp.text()
        started = time.perf_counter()
        for _ in range(count):
            async with http.post(f"{path}/heartbeat", json={"deviceId": DEVICE, **REPORT}) as resp:
                assert resp.status == 200
        return time.perf_counter() - started


async def main(count: int, rounds: int) -> None:
    totals = {"baseline": 0.0, "checked": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            for name in ("baseline", "checked"):
                directory = Path(tmp) / f"{name}-{n}"
                directory.mkdir()
                with baseline() if name == "baseline" else contextlib.nullcontext():
                    async with hub(directory) as url:
                        totals[name] += await beats(url, count)
    for name, seconds in totals.items():
        beats_done = count * rounds
        print(f"{name:9s} {beats_done / seconds:8.0f} heartbeats/s  {1000 * seconds / beats_done:6.2f} ms each")
    print(f"checked / baseline throughput: {totals['baseline'] / totals['checked']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beats", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.beats, args.rounds))
