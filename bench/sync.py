"""Edge ↔ hub sync: paid request → edge replica latency, and master failover times.

A real ``djamms-hub serve`` runs as a child process on a loopback port (its own SQLite file). In this
process run the edge side: EdgeSync boxes with the *default* [edge.sync] settings, over the real hub
client. Measured:

- latency: time from POSTing a paid request (as a patron's phone does) until the entry is committed
  in the edge's local replica, over N sequential requests (p50/p90/p99/max);
- crash failover: the master's tasks and sockets vanish without a release (what the hub sees of a
  ``kill -9``); time until the standby's player is told to play. Bounded by the hub's
  ``stale_after_s`` + one edge heartbeat interval; run for the hub default and for the 20 s we suggest;
- graceful failover: the master stops (releases); time until the standby plays;
- kill -9 mid paid request: two real ``djamms-edge run`` daemons (libmpv, ao=null, default [edge.sync]),
  a patron's paid song (a 60 s file over loopback HTTP) playing on the master, which is killed with
  SIGKILL 3 s or more into the song: time until the *same entry* plays on the standby, and how much of the
  song is heard twice (the standby resumes from the last position the master reported in a heartbeat).
  Its baseline is the crash failover above (the lease alone, same staleness).

    .venv/bin/python bench/sync.py [--requests 300] [--skip-default-stale] [--kill-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from djamms_edge.edge.player.seams import render_tone  # noqa: E402
from djamms_edge.edge.sync.config import SyncConfig  # noqa: E402
from djamms_edge.edge.sync.engine import EdgeSync  # noqa: E402
from djamms_edge.edge.sync.hub_client import HubClient  # noqa: E402
from djamms_edge.edge.sync.store import open_sync_db  # noqa: E402
from djamms_edge.hub.auth import issue_device_token  # noqa: E402
from djamms_edge.hub.config import HubConfig  # noqa: E402
from djamms_edge.hub.store.base import Song  # noqa: E402
from djamms_edge.hub.store.sqlite import SqliteStore  # noqa: E402
from tests.ports import reserved_port  # noqa: E402

SECRET = "bench-secret-" + "x" * 32
VENUE = "bench-venue"


class Hub:
    """``djamms-hub serve`` in its own process group, terminated then killed on the way out."""

    def __init__(self, workdir: Path, stale_after_s: float, *, playlist: bool = True) -> None:
        self.workdir = workdir
        self.stale = stale_after_s
        self.playlist = playlist
        self.ports = ExitStack()  # held until stop(): the config's public_url names the port before the hub starts
        self.port = self.ports.enter_context(reserved_port())
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def seed(self, store: SqliteStore, now: int) -> None:
        await store.create_venue(VENUE, "Bench venue", now)
        playlist = await store.create_playlist(VENUE, "house", now)
        for n in range(20 if self.playlist else 0):
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
            "[hub.limits]\nrequests_per_client = 1000000\nrequests_per_patron = 1000000\n"
            # The paid song is a file served over loopback (an internal address: allowed by name).
            '[hub.requests]\nallow_urls = true\nallowed_hosts = ["127.0.0.1"]\n'
            + self.extra_config()
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
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        self.ports.close()


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


async def in_replica(box: Box, video: str) -> None:
    """Until ``video`` is in the box's replica of the priority queue."""
    while True:
        box.changed.clear()  # before reading: a change landing meanwhile is not missed
        view = await box.sync.replica.view()
        if any(e.video_id == video for e in view.priority):
            return
        await asyncio.wait_for(box.changed.wait(), 10)


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
            await in_replica(box, video)
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


class Daemon:
    """``djamms-edge run`` for one box (audio to ao=null, no video), in its own process group."""

    def __init__(self, hub: Hub, name: str, workdir: Path) -> None:
        self.name = name
        self.state = workdir / name
        self.config = workdir / f"{name}.toml"
        token = issue_device_token(SECRET, VENUE, name, time.time(), 3600)
        self.config.write_text(
            f'[edge]\nvenue_id = "{VENUE}"\ndevice_id = "{name}"\nstate_dir = "{self.state}"\n'
            f'cache_dir = "{self.state / "cache"}"\nlog_level = "INFO"\n'
            f'[edge.hub]\nurl = "{hub.url}"\ndevice_token = "{token}"\n'
            '[edge.player]\nvideo = false\nao = "null"\n[edge.status]\nport = 0\n'
            '[edge.fetch]\nallowed_hosts = ["127.0.0.1"]\n'  # the paid song's loopback server
        )
        self.proc: asyncio.subprocess.Process | None = None
        self.log = (workdir / f"{name}.log").open("ab")  # read when a run goes wrong

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            str(REPO / ".venv/bin/djamms-edge"), "run", "--config", str(self.config), start_new_session=True,
            stdout=self.log, stderr=asyncio.subprocess.STDOUT,
        )

    async def said(self, text: str) -> bool:
        return text in (self.state.parent / f"{self.name}.log").read_text(errors="replace")

    def plays(self) -> list[sqlite3.Row]:
        db = self.state / "playback.db"
        if not db.exists():
            return []
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute("SELECT * FROM plays ORDER BY started_at").fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, sig)
            await self.proc.wait()
        self.log.close()


async def until(what: str, check: Any, limit: float) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


async def kill_mid_paid_request(workdir: Path, stale: float, runs: int) -> list[tuple[float, float]]:
    """(seconds from kill -9 to the same entry playing on the standby, seconds of the song heard twice) per run."""
    media = workdir / "media"
    media.mkdir()
    await render_tone(media / "paid.m4a", 440, lead=0.4, tone=60.0, trail=0.4)
    app = web.Application()
    app.router.add_static("/media", media)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    media_url = f"http://127.0.0.1:{runner.addresses[0][1]}/media/paid.m4a"
    hub = Hub(workdir, stale_after_s=stale, playlist=False)
    await hub.start()
    try:
        async with aiohttp.ClientSession() as http:
            return [await one_kill(hub, http, f"{media_url}?run={run}", workdir, run) for run in range(runs)]
    finally:
        await hub.stop()
        await runner.cleanup()


async def one_kill(hub: Hub, http: aiohttp.ClientSession, url: str, workdir: Path, run: int) -> tuple[float, float]:
    token = issue_device_token(SECRET, VENUE, "observer", time.time(), 3600)

    async def now_playing() -> Any:
        async with http.get(f"{hub.url}/api/v1/venues/{VENUE}/queue/full",
                            headers={"Authorization": f"Bearer {token}"}) as response:
            return (await response.json())["nowPlaying"]

    master, standby = Daemon(hub, f"kill-a{run}", workdir), Daemon(hub, f"kill-b{run}", workdir)
    await master.start()
    await until("the first box to be master", lambda: master.said("became master"), 60)
    await standby.start()
    await until("the second box to stand by", lambda: standby.said("standby"), 60)
    song = {"videoId": url, "title": "Paid", "artist": f"Patron {run}", "duration": 60}
    body = json.dumps({"song": song, "paymentId": f"pay-kill-{run}"})
    async with http.post(f"{hub.url}/api/v1/venues/{VENUE}/requests", data=body,
                         headers={"Content-Type": "application/json"}) as response:
        assert response.status == 201, await response.text()

    async def deep_enough() -> Any:
        playing = await now_playing()
        ok = playing and playing["videoId"] == url and (playing["position"] or 0) >= 3.0
        return playing if ok else None

    playing = await until("the paid song 3 s in on the master", deep_enough, 120)
    # Not just after a heartbeat (when the position was seen): anywhere in the interval, as a crash would.
    await asyncio.sleep(random.Random(run).uniform(0, SyncConfig().heartbeat_interval_s))
    await master.kill()
    killed_at = time.time()
    # Where the master really was: its last reported position, plus the time since that report.
    heard_until = playing["position"] + (killed_at * 1000 - playing["positionAt"]) / 1000

    async def resumed() -> Any:
        return next((p for p in standby.plays() if p["entry_id"] == playing["entryId"]), None)

    try:
        play = await until("the standby to play the same entry", resumed, hub.stale + 60)
    finally:
        await standby.kill(signal.SIGTERM)
    return play["started_at"] - killed_at, max(0.0, heard_until - play["start_position"])


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--kill-runs", type=int, default=3, help="kill -9 mid paid request: repetitions (0 skips)")
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
        if args.kill_runs:
            (workdir / "kill").mkdir()
            figures = await kill_mid_paid_request(workdir / "kill", 20.0, args.kill_runs)
            waits, twice = [f[0] for f in figures], [f[1] for f in figures]
            print(f"kill -9 mid paid request -> the same entry plays on the standby, hub stale_after_s 20, "
                  f"{len(figures)} runs (real daemons):")
            print(f"  wait {' / '.join(f'{w:.1f}' for w in waits)} s (median {statistics.median(waits):.1f} s; "
                  f"baseline: crash failover above, {crash:.1f} s)")
            print(f"  heard twice {' / '.join(f'{t:.1f}' for t in twice)} s (at most one heartbeat, "
                  f"{edge.heartbeat_interval_s:g} s); nothing of the song lost")
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
