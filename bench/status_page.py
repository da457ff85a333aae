"""What the status page costs: RSS and CPU of a status server, idle vs. with pages open.

The server runs in its own process over the fake source, which publishes one
change a second (more often than a playing daemon does). Baseline: the same
process with no client. Load: one real headless chromium page plus further SSE
streams up to the configured limit, and a /metrics + /api/status scrape each second.

    .venv/bin/python bench/status_page.py [--seconds 10] [--streams 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from djamms_edge.edge.status.config import StatusConfig  # noqa: E402
from djamms_edge.edge.status.fake import FakeStatusSource  # noqa: E402
from djamms_edge.edge.status.server import start_status_server  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


async def serve() -> None:
    """Child mode: run the server, print its URL, change the source every second."""
    source = FakeStatusSource()
    server = await start_status_server(StatusConfig(port=0, max_event_clients=16), source)
    print(server.url, flush=True)
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


async def bench(seconds: float, streams: int) -> None:
    # Imported here so the measured child (same file, --serve) never loads playwright.
    from tests.edge.status.browser import chromium_page

    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    assert child.stdout is not None
    url = (await child.stdout.readline()).decode().strip()
    try:
        await asyncio.sleep(1.0)  # let imports and first allocations settle
        idle_rss, idle_cpu = await measure(child.pid, seconds)
        async with aiohttp.ClientSession() as http, chromium_page() as page:
            await page.goto(url + "/")
            await page.wait_for_selector("#title:not(:empty)")
            responses = [await http.get(url + "/events") for _ in range(streams)]
            readers = [asyncio.create_task(drain(r)) for r in responses]
            scraper = asyncio.create_task(scrape(http, url))
            try:
                load_rss, load_cpu = await measure(child.pid, seconds)
                title = await page.inner_text("#title")
            finally:
                for task in [*readers, scraper]:
                    task.cancel()
                await asyncio.gather(*readers, scraper, return_exceptions=True)
                for response in responses:
                    response.close()
    finally:
        child.terminate()
        await child.wait()
    print(f"status server, {seconds:.0f} s per phase, source changing once a second")
    print(f"{'phase':<44} {'RSS MB':>8} {'CPU %':>7}")
    print(f"{'idle (no client)':<44} {idle_rss:8.1f} {idle_cpu:7.2f}")
    print(f"{f'1 chromium page + {streams} SSE streams + scrapes':<44} {load_rss:8.1f} {load_cpu:7.2f}")
    print(f"{'delta':<44} {load_rss - idle_rss:8.1f} {load_cpu - idle_cpu:7.2f}")
    print(f"page was showing: {title!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=15, help="SSE streams besides the browser's (limit is 16)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve() if args.serve else bench(args.seconds, args.streams))


if __name__ == "__main__":
    main()
