"""Edge ↔ hub sync: paid request → edge replica latency, and master failover times.

A real ``djamms-hub serve`` runs as a child process on a loopback port (its own SQLite file). In this
process run the edge side: EdgeSync boxes with the *default* [edge.sync] settings, over the real hub
client. Measured:

- latency: time from POSTing a paid request (as a patron's phone does) until the entry is committed
  in the edge's local replica, over N sequential requests (p50/p90/p99/max);
- crash failover: the master's tasks and sockets vanish without a release (what the hub sees of a
  ``kill -9``); time until the standby's player is told to play. Bounded by the hub's
  ``stale_after_s`` + one edge heartbeat interval; run for the hub default and for the 20 s we suggest;
- graceful failover: the master stops (releases); time until the standby plays.

    .venv/bin/python bench/sync.py [--requests 300] [--skip-default-stale]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from djamms_edge.edge.sync.config import SyncConfig  # noqa: E402
from djamms_edge.edge.sync.engine import EdgeSync  # noqa: E402
from djamms_edge.edge.sync.hub_client import HubClient  # noqa: E402
from djamms_edge.edge.sync.store import open_sync_db  # noqa: E402
from djamms_edge.hub.auth import issue_device_token  # noqa: E402
from djamms_edge.hub.config import HubConfig  # noqa: E402
from djamms_edge.hub.store.base import Song  # noqa: E402
from djamms_edge.hub.store.sqlite import SqliteStore  # noqa: E402

SECRET = "bench-secret-" + "x" * 32
VENUE = "bench-venue"


class Hub:
    """``djamms-hub serve`` in its own process group, terminated then killed on the way out."""

    def __init__(self, workdir: Path, stale_after_s: float) -> None:
        self.workdir = workdir
        self.stale = stale_after_s
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def seed(self, store: SqliteStore, now: int) -> None:
        await store.create_venue(VENUE, "Bench venue", now)
        playlist = await store.create_playlist(VENUE, "house", now)
        for n in range(20):
            await store.add_track(playlist.playlist_id, Song(f"house{n:06d}", f"House {n}", f"DJ {n}", 200.0), now)
        await store.activate_playlist(VENUE, playlist.playlist_id, now)

    def extra_config(self) -> str:
        return f"[hub.registry]\nstale_after_s = {self.stale}\n"

    async def start(self) -> None:
        db = self.workdir / "hub.db"
        store = SqliteStore(db)
        await store.open()
        await self.seed(store, int(time.time() * 1000))
        await store.close()
        config = self.workdir / "hub.toml"
        config.write_text(
            f'[hub]\njwt_secret = "{SECRET}"\nlog_level = "WARNING"\npublic_url = "{self.url}"\n'
            f'[hub.store]\nurl = "sqlite:///{db}"\n'
            "[hub.limits]\nrequests_per_client = 1000000\nrequests_per_patron = 1000000\n" + self.extra_config()
        )
        self.proc = await asyncio.create_subprocess_exec(
            str(REPO / ".venv/bin/djamms-hub"),
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            start_new_session=True,
        )
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("hub did not start")

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()


class Box:
    def __init__(self, hub: Hub, name: str, workdir: Path) -> None:
        token = issue_device_token(SECRET, VENUE, name, time.time(), 3600)
        self.client = HubClient(hub.url, token, VENUE, name)
        self.db = open_sync_db(workdir / name)
        self.played = asyncio.Event()
        self.changed = asyncio.Event()
        self.sync = EdgeSync(
            self.client,
            self.db,
            SyncConfig(),
            on_play=lambda epoch: self.played.set(),
            on_halt=lambda reason: self.played.clear(),
            on_queue_changed=self.changed.set,
        )

    async def start(self) -> None:
        await self.db.open()
        await self.sync.start()

    async def crash(self) -> None:
        await self.sync._tasks.close()  # no release, no goodbye
        await self.client.close()
        await self.db.close()

    async def stop(self) -> None:
        await self.sync.stop()
        await self.client.close()
        await self.db.close()


async def latency(hub: Hub, workdir: Path, count: int) -> list[float]:
    box = Box(hub, "latency-box", workdir)
    await box.start()
    await asyncio.wait_for(box.sync.feed_ready.wait(), 10)
    samples: list[float] = []
    async with aiohttp.ClientSession() as patron:
        for n in range(count):
            video = f"req{n:08d}"
            body = {
                "song": {"videoId": video, "title": f"Request {n}", "artist": f"Band {n}", "duration": 180},
                "paymentId": f"pay-{n}",
            }
            started = time.perf_counter()
            async with patron.post(f"{hub.url}/api/v1/venues/{VENUE}/requests", json=body) as response:
                assert response.status == 201, await response.text()
            while True:
                box.changed.clear()  # before reading: a change landing meanwhile is not missed
                view = await box.sync.replica.view()
                if any(e.video_id == video for e in view.priority):
                    break
                await asyncio.wait_for(box.changed.wait(), 10)
            samples.append((time.perf_counter() - started) * 1000)
    await box.stop()
    return samples


async def failover(hub: Hub, workdir: Path, graceful: bool) -> float:
    tag = "graceful" if graceful else "crash"
    a, b = Box(hub, f"{tag}-a-{hub.stale}", workdir), Box(hub, f"{tag}-b-{hub.stale}", workdir)
    await a.start()
    await asyncio.wait_for(a.played.wait(), 10)
    await b.start()
    await asyncio.wait_for(b.sync.feed_ready.wait(), 10)
    await asyncio.sleep(1.0)  # a steady state: b has been refused at least once
    assert not b.played.is_set()
    started = time.perf_counter()
    await (a.stop() if graceful else a.crash())
    await asyncio.wait_for(b.played.wait(), hub.stale + 60)
    took = time.perf_counter() - started
    await b.stop()
    return took


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--skip-default-stale",
        action="store_true",
        help=f"skip the crash failover with the hub's default {HubConfig().registry.stale_after_s:.0f} s",
    )
    args = parser.parse_args()
    edge = SyncConfig()
    default_stale = HubConfig().registry.stale_after_s
    print(
        f"edge defaults: heartbeat {edge.heartbeat_interval_s:g} s, retry {edge.retry_min_s:g}-{edge.retry_max_s:g} s;"
        f" hub default stale_after_s {default_stale:g} s"
    )
    with tempfile.TemporaryDirectory(prefix="djamms-bench-sync-") as tmp:
        workdir = Path(tmp)
        hub = Hub(workdir, stale_after_s=20.0)
        await hub.start()
        try:
            samples = await latency(hub, workdir, args.requests)
            print(f"paid request -> edge replica, {len(samples)} sequential requests over loopback:")
            print(
                f"  p50 {statistics.median(samples):.1f} ms  p90 {pct(samples, 90):.1f} ms  "
                f"p99 {pct(samples, 99):.1f} ms  max {max(samples):.1f} ms  (target p99 <= 300 ms)"
            )
            graceful = await failover(hub, workdir, graceful=True)
            print(f"graceful stop -> standby plays: {graceful * 1000:.0f} ms  (target <= 2000 ms)")
            crash = await failover(hub, workdir, graceful=False)
            print(
                f"crash -> standby plays, hub stale_after_s 20: {crash:.1f} s"
                f"  (within 20 +/- {edge.heartbeat_interval_s:g}: stale counts from the last beat)"
            )
        finally:
            await hub.stop()
        if not args.skip_default_stale:
            hub = Hub(workdir / "default", stale_after_s=default_stale)
            (workdir / "default").mkdir()
            await hub.start()
            try:
                crash = await failover(hub, workdir / "default", graceful=False)
                print(f"crash -> standby plays, hub stale_after_s {default_stale:g} (hub default): {crash:.1f} s")
            finally:
                await hub.stop()


if __name__ == "__main__":
    asyncio.run(main())
