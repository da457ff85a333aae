"""What the status page costs: RSS and CPU of a process serving it, with no client vs. pages open.

Two processes are measured, each first with no client (the baseline) and then under load:
one real headless chromium page plus further SSE streams (up to the configured limit) and
a /metrics + /api/status scrape each second.
- ``server``: the status server alone over the fake source, which changes once a second
  (more often than a playing daemon does);
- ``daemon``: a real ``djamms-edge run`` playing generated tracks through libmpv (ao=null,
  no video), page included.

    .venv/bin/python bench/status_page.py [--seconds 10] [--streams 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from djamms_edge.edge.status.config import StatusConfig  # noqa: E402
from djamms_edge.edge.status.fake import FakeStatusSource  # noqa: E402
from djamms_edge.edge.status.server import start_status_server  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_URL = re.compile(rb"status page at (http://127\.0\.0\.1:\d+)")


async def serve() -> None:
    """Child mode: run the server, print its URL, change the source every second."""
    source = FakeStatusSource()
    server = await start_status_server(StatusConfig(port=0, max_event_clients=16), source)
    print(f"status page at {server.url}", flush=True)
    try:
        n = 0
        while True:
            await asyncio.sleep(1.0)
            n += 1
            source.play(f"Track {n}", artist="Bench", position=10.0)
    finally:
        await server.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def measure(pid: int, seconds: float) -> tuple[float, float]:
    """Peak RSS (MB) and mean CPU (% of one core) over ``seconds``."""
    loop = asyncio.get_running_loop()
    start_cpu, start = cpu_seconds(pid), loop.time()
    peak = rss_mb(pid)
    while loop.time() - start < seconds:
        await asyncio.sleep(0.25)
        peak = max(peak, rss_mb(pid))
    return peak, 100 * (cpu_seconds(pid) - start_cpu) / (loop.time() - start)


async def drain(response: aiohttp.ClientResponse) -> None:
    async for _ in response.content.iter_any():
        pass


async def scrape(http: aiohttp.ClientSession, url: str) -> None:
    while True:
        for path in ("/metrics", "/api/status"):
            async with http.get(url + path) as response:
                await response.read()
        await asyncio.sleep(1.0)


async def page_url(child: asyncio.subprocess.Process) -> str:
    """The URL the child logs when its page is up (the daemon logs to stderr, the server prints)."""
    assert child.stdout is not None
    while line := await asyncio.wait_for(child.stdout.readline(), 60):
        if found := PAGE_URL.search(line):
            return found[1].decode()
    raise RuntimeError(f"child exited with {await child.wait()} before its status page was up")


async def under_load(pid: int, url: str, seconds: float, streams: int) -> tuple[tuple[float, float], str]:
    # Imported here so the measured child (same file, --serve) never loads playwright.
    from tests.browser import chromium_page

    async with aiohttp.ClientSession() as http, chromium_page() as page:
        await page.goto(url + "/")
        await page.wait_for_selector("#title:not(:empty)")
        responses = [await http.get(url + "/events") for _ in range(streams)]
        readers = [asyncio.create_task(drain(r)) for r in responses]
        scraper = asyncio.create_task(scrape(http, url))
        try:
            figures = await measure(pid, seconds)
            return figures, await page.inner_text("#title")
        finally:
            for task in [*readers, scraper]:
                task.cancel()
            await asyncio.gather(*readers, scraper, return_exceptions=True)
            for response in responses:
                response.close()


async def bench_child(name: str, argv: list[str], seconds: float, streams: int) -> None:
    child = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
    )
    assert child.stdout is not None
    draining: asyncio.Task[bytes] | None = None
    try:
        url = await page_url(child)
        draining = asyncio.create_task(child.stdout.read())  # keep its log pipe from filling up
        await asyncio.sleep(2.0)  # let imports, libmpv and first allocations settle
        idle = await measure(child.pid, seconds)
        loaded, title = await under_load(child.pid, url, seconds, streams)
    finally:
        child.terminate()
        await child.wait()
        if draining is not None:
            await draining
    label = f"1 chromium page + {streams} SSE + scrapes"
    print(f"{name}: {seconds:.0f} s per phase; the page was showing {title!r}")
    print(f"  {'phase':<38} {'RSS MB':>8} {'CPU %':>7}")
    print(f"  {'no client (baseline)':<38} {idle[0]:8.1f} {idle[1]:7.2f}")
    print(f"  {label:<38} {loaded[0]:8.1f} {loaded[1]:7.2f}")
    print(f"  {'delta':<38} {loaded[0] - idle[0]:8.1f} {loaded[1] - idle[1]:7.2f}")


async def daemon_argv(root: Path) -> list[str]:
    from djamms_edge.edge.player.seams import render_tone

    playlist = root / "playlist"
    playlist.mkdir()
    await asyncio.gather(
        *(
            render_tone(playlist / f"Bench {n} - Tone {n}.m4a", 300 + 100 * n, lead=0.5, tone=120, trail=0.5)
            for n in range(3)
        )
    )
    config = root / "config.toml"
    config.write_text(
        f'[edge]\nstate_dir = "{root / "state"}"\ncache_dir = "{root / "cache"}"\n'
        f'[edge.player]\nvideo = false\nao = "null"\n[edge.queue]\nplaylist = "{playlist}"\n'
        f"[edge.status]\nport = 0\nmax_event_clients = 16\n"
    )
    return [sys.executable, "-m", "djamms_edge.edge.cli", "run", "--config", str(config)]


async def bench(seconds: float, streams: int) -> None:
    await bench_child("status server alone (fake source)", [sys.executable, __file__, "--serve"], seconds, streams)
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        argv = await daemon_argv(Path(tmp))
        await bench_child("djamms-edge run (libmpv ao=null, audio only)", argv, seconds, streams)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=15, help="SSE streams besides the browser's (limit is 16)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve() if args.serve else bench(args.seconds, args.streams))


if __name__ == "__main__":
    main()
