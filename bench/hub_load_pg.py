"""Hub on PostgreSQL, one and two instances, side by side with the single SQLite hub in one run.

Same closed-loop load for every target (wrk, one thread per hub instance, 50 connections in all, fixed
duration), reusing bench/hub_load.py's process helpers, wrk parsing and Lua scripts:

- ``sqlite x1``: one ``djamms-hub serve`` on SQLite (the default deployment);
- ``pg x1``: one hub on PostgreSQL (what the network database costs one instance);
- ``pg x2``: two hubs on one PostgreSQL database, the load split evenly over both (two wrk
  processes, 25 connections each; req/s is their sum, p50/p99 the worse of the two).

For each: heartbeats (one conditional UPDATE) and paid requests (venue row lock, artist-limit count,
request row, queue entry, change-log row, NOTIFY: one transaction), all for ONE venue, the worst case
since every paid request of a venue queues on that venue's row lock.

Then the change feed: a WebSocket subscriber on one hub, paid requests POSTed one at a time, time
from POST to the subscriber receiving the change: on the same SQLite hub, and across the two
PostgreSQL hubs (LISTEN/NOTIFY); each idle and while wrk keeps the hubs busy with heartbeats.
The target across hubs is p99 <= 300 ms.

PostgreSQL is ``DJAMMS_TEST_PG_URL`` or a private cluster started with scripts/pg-test-cluster.sh
(fsync off: a throwaway cluster; SQLite runs with synchronous=NORMAL, also no fsync per commit).

    .venv/bin/python bench/hub_load_pg.py [--duration 8] [--connections 50] [--feed-samples 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub_load  # the single-hub bench: wrk runner, process helpers, Lua scripts
from hub_load import DEVICE, PYTHON, REPO, SECRET, VENUE, Result

CLUSTER_SCRIPT = REPO / "scripts" / "pg-test-cluster.sh"
FEED_TARGET_P99_MS = 300.0


@dataclass
class Hubs:
    label: str
    bases: list[str]  # .../api/v1/venues/{VENUE} of each instance
    token: str        # device token of DEVICE


@contextmanager
def pg_server() -> Iterator[str]:
    url = os.environ.get("DJAMMS_TEST_PG_URL")
    if url:
        yield url
        return
    # Directly under /tmp: as root the cluster runs as `nobody`, which must reach the directory.
    cluster = tempfile.mkdtemp(prefix="djamms-pg-bench-", dir="/tmp")
    started = subprocess.run([str(CLUSTER_SCRIPT), "start", cluster], capture_output=True, text=True, check=False,
                             timeout=120)
    try:
        if started.returncode != 0:
            raise SystemExit(f"no PostgreSQL: {started.stderr.strip()} (run scripts/install-system-deps.sh "
                             "--with-postgres, or set DJAMMS_TEST_PG_URL)")
        yield started.stdout.strip()
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", cluster], capture_output=True, check=False, timeout=60)


async def _admin(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def pg_database(server_url: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f"CREATE DATABASE {name}"))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@contextmanager
def hubs(label: str, store_url: str, instances: int, workdir: Path) -> Iterator[Hubs]:
    """``instances`` hub processes on one store, seeded with the demo venue and DEVICE registered as master."""
    config = workdir / f"{label.replace(' ', '-')}.toml"
    config.write_text(
        f'[hub]\njwt_secret = "{SECRET}"\nlog_level = "WARNING"\n[hub.store]\nurl = "{store_url}"\n'
        "[hub.limits]\nrequests_per_client = 100000000\nrequests_per_patron = 100000000\n"
    )
    hub_cli = [PYTHON, "-m", "djamms_edge.hub.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")}
    seeded = subprocess.run([*hub_cli, "seed-demo", "--config", str(config), "--venue", VENUE, "--device", DEVICE],
                            capture_output=True, text=True, check=True, timeout=60, env=env)
    token = json.loads(seeded.stdout)["deviceToken"]
    with ExitStack() as stack:
        bases = []
        for i in range(instances):
            port = hub_load.held_port()
            log = workdir / f"{label.replace(' ', '-')}-{i}.log"
            proc = hub_load.start([*hub_cli, "serve", "--config", str(config), "--port", str(port)], log, env)
            stack.callback(hub_load.stop, proc)
            hub_load.wait_until_up(f"http://127.0.0.1:{port}/healthz", proc)
            bases.append(f"http://127.0.0.1:{port}/api/v1/venues/{VENUE}")
        answer = hub_load.hub_json(f"{bases[0]}/players/register", {"deviceId": DEVICE, "userAgent": "bench"}, token)
        assert answer["status"] in ("registered", "reconnected"), answer
        yield Hubs(label, bases, token)


def run_split(name: str, urls: list[str], luas: list[str], args: argparse.Namespace, workdir: Path) -> Result:
    """One single-threaded wrk per instance, all at once, the connections split evenly between them."""
    per = max(1, args.connections // len(urls))
    wrk = shutil.which("wrk") or "wrk"
    outputs: list[str] = []
    for duration, keep in ((2, False), (args.duration, True)):  # warm-up, then the measured run
        procs = []
        for i, (url, lua) in enumerate(zip(urls, luas, strict=True)):
            script = workdir / f"{name}-{i}.lua"
            script.write_text(lua)
            procs.append(subprocess.Popen([wrk, "-t1", f"-c{per}", f"-d{duration}s", "--latency", "-s",
                                           str(script), url], stdout=subprocess.PIPE, text=True))
        for proc in procs:
            out, _ = proc.communicate(timeout=duration + 60)
            if proc.returncode != 0:
                raise SystemExit(f"wrk failed for {name}")
            if keep:
                outputs.append(out)
    parts = [hub_load.parse_wrk(name, out) for out in outputs]
    return Result(name, sum(p.rps for p in parts), max(p.p50_ms for p in parts), max(p.p99_ms for p in parts),
                  sum(p.requests for p in parts), sum(p.bad for p in parts))


def load(target: Hubs, args: argparse.Namespace, workdir: Path) -> list[Result]:
    heartbeat = hub_load.HEARTBEAT_LUA % {"device": DEVICE, "token": target.token}
    # Each wrk numbers paymentIds by its own run id, so two wrks never send the same paymentId.
    paid = [hub_load.PAID_LUA.replace("RUN", str(os.getpid() * 100 + i)) for i in range(len(target.bases))]
    return [
        run_split(f"{target.label} heartbeat", [b + "/players/heartbeat" for b in target.bases],
                  [heartbeat] * len(target.bases), args, workdir),
        run_split(f"{target.label} paid-request", [b + "/requests" for b in target.bases], paid, args, workdir),
    ]


@contextmanager
def background_heartbeats(target: Hubs, connections: int, workdir: Path) -> Iterator[None]:
    """Heartbeat load on every instance (wrk, ``connections`` each) while the body runs."""
    script = workdir / "background.lua"
    script.write_text(hub_load.HEARTBEAT_LUA % {"device": DEVICE, "token": target.token})
    wrk = shutil.which("wrk") or "wrk"
    procs = [subprocess.Popen([wrk, "-t1", f"-c{connections}", "-d600s", "-s", str(script),
                               base + "/players/heartbeat"], stdout=subprocess.DEVNULL)
             for base in target.bases]
    try:
        time.sleep(1.0)  # let the load reach its steady state
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def feed_runs(target: Hubs, args: argparse.Namespace, workdir: Path) -> list[tuple[str, list[float]]]:
    """Feed latency from the last instance's POSTs to the first instance's subscriber, idle and under load."""
    where = "same hub" if len(target.bases) == 1 else "across hubs"
    runs = []
    for load_note, connections in (("idle", 0), ("+heartbeat load", max(1, args.connections // 5))):
        def measure() -> list[float]:
            return asyncio.run(feed_latencies(target.bases[0], target.bases[-1], target.token, args.feed_samples))

        if connections:
            with background_heartbeats(target, connections, workdir):
                values = measure()
        else:
            values = measure()
        runs.append((f"{target.label}, {where}, {load_note}", values))
    return runs


async def feed_latencies(subscribe_base: str, post_base: str, token: str, samples: int) -> list[float]:
    """Seconds from POSTing a paid request (to one hub) until the feed subscriber (on another) has it."""
    auth = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{subscribe_base}/feed?since=0",
                                                                  headers=auth, max_msg_size=0) as ws:
        while (await ws.receive_json(timeout=30))["type"] != "ready":
            pass

        async def arrival(artist: str) -> float:
            # Match our own entry: changes still in flight from the load before must not count.
            while True:
                message = await ws.receive_json(timeout=10)
                change = message.get("change", {})
                if change.get("type") == "entry_added" and change["entry"]["artist"] == artist:
                    return time.perf_counter()

        for i in range(samples):
            artist = f"feed-{uuid.uuid4().hex}"
            song = {"videoId": "9bZkp7q19f0", "title": "Feed", "artist": artist, "duration": 200}
            receiving = asyncio.create_task(arrival(artist))
            sent = time.perf_counter()
            async with http.post(f"{post_base}/requests", json={"song": song, "paymentId": f"feed-{uuid.uuid4()}"}
                                 ) as resp:
                if resp.status != 201:
                    receiving.cancel()
                    raise SystemExit(f"feed sample {i}: {resp.status} {await resp.text()}")
            latencies.append(await receiving - sent)
    return latencies


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds of load per target")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--feed-samples", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench/hub_load_pg.py needs wrk (scripts/install-system-deps.sh --with-postgres installs it)",
              file=sys.stderr)
        return 2
    results: list[Result] = []
    feeds: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="hub-load-pg-") as tmp, pg_server() as server:
        workdir = Path(tmp)
        with hubs("sqlite x1", f"sqlite:///{workdir / 'hub.db'}", 1, workdir) as single:
            results += load(single, args, workdir)
            feeds += feed_runs(single, args, workdir)
        with pg_database(server) as url, hubs("pg x1", url, 1, workdir) as one:
            results += load(one, args, workdir)
        with pg_database(server) as url, hubs("pg x2", url, 2, workdir) as two:
            results += load(two, args, workdir)
            feeds += feed_runs(two, args, workdir)

    print(f"hub_load_pg: wrk, {args.connections} connections in all, {args.duration}s per target, "
          f"{os.cpu_count()} cores, loopback, hubs and PostgreSQL on this machine")
    print(f"{'target':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'non-2xx':>9}{'x sqlite':>10}")
    baseline = {r.name.split(" ", 2)[-1]: r.rps for r in results if r.name.startswith("sqlite")}
    for r in results:
        ratio = r.rps / baseline[r.name.split(" ", 2)[-1]]
        print(f"{r.name:<26}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.requests:>10}{r.bad:>9}{ratio:>10.2f}")
    print(f"{'feed: POST -> subscriber':<40}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>10}")
    for label, values in feeds:
        ms = [v * 1000 for v in values]
        print(f"{label:<40}{len(ms):>6}{percentile(ms, 50):>9.2f}{percentile(ms, 99):>9.2f}{max(ms):>10.2f}")
    cross_p99 = max(percentile([v * 1000 for v in values], 99) for label, values in feeds if "across" in label)
    print(f"target cross-instance feed p99 <= {FEED_TARGET_P99_MS:.0f} ms: "
          f"{'met' if cross_p99 <= FEED_TARGET_P99_MS else 'NOT met'}")
    return 0 if all(r.bad == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
