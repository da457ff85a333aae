"""The patron's side: the patron page on bar Wi-Fi, and a paid request's way from Stripe's webhook to the box.

A real ``djamms-hub serve`` (child process, SQLite) charges through the fake Stripe of the tests (in this
process, spoken to by the official stripe library); an EdgeSync box (default [edge.sync]) follows the venue.

- webhook -> edge replica: a patron starts a checkout, pays; time from Stripe POSTing the signed
  ``checkout.session.completed`` until the entry is in the box's local replica. Baseline, side by side: a
  request at a free venue (POST .../requests) until the same replica has it.
- patron page: headless chromium (phone viewport) with Chromium's network emulation (1.6 Mbps down, 750 kbps
  up, 150 ms RTT): first contentful paint and bytes transferred, cold (empty cache) and warm (reload).
  Baseline: the hub's smallest answer (/healthz) under the same emulation (one round trip).

    .venv/bin/python bench/patron.py [--requests 200] [--loads 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync import VENUE, Box, in_replica, pct  # noqa: E402
from sync import Hub as SyncHub  # noqa: E402

from djamms_edge.hub.store.base import Song, VenuePrice  # noqa: E402
from djamms_edge.hub.store.sqlite import SqliteStore  # noqa: E402
from tests.hub.fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, running_fake_stripe  # noqa: E402

PRICE = VenuePrice(250, "usd")
SONGS = 200  # a venue's requestable list; the page shows the first 50 and searches the rest
THROTTLE = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8, "uploadThroughput": 750_000 / 8}


class Hub(SyncHub):
    """bench/sync.py's hub child process, with a venue of requestable songs and Stripe (the fake) configured."""

    def __init__(self, workdir: Path, stripe: FakeStripe) -> None:
        super().__init__(workdir, stale_after_s=20.0)
        self.stripe = stripe
        self.db = workdir / "hub.db"

    async def seed(self, store: SqliteStore, now: int) -> None:
        await store.create_venue(VENUE, "The Bench Arms", now)
        playlist = await store.create_playlist(VENUE, "requests", now)
        for n in range(SONGS):
            await store.add_track(playlist.playlist_id, Song(f"song{n:07d}", f"Song number {n}", f"Band {n}", 200.0),
                                  now)
        await store.update_playlist(VENUE, playlist.playlist_id, None, True)

    def extra_config(self) -> str:
        return (f'[hub.payments]\nprovider = "stripe"\nstripe_secret_key = "{API_KEY}"\n'
                f'stripe_webhook_secret = "{WEBHOOK_SECRET}"\nstripe_api_base = "{self.stripe.url}"\n')

    async def set_price(self, price: VenuePrice) -> None:
        """Through the store file (the hub reads the price per request; SQLite serialises the writers)."""
        store = SqliteStore(self.db)
        await store.open()
        try:
            await store.set_venue_price(VENUE, price, int(time.time() * 1000))
        finally:
            await store.close()


async def free_requests(hub: Hub, box: Box, http: aiohttp.ClientSession, count: int) -> list[float]:
    samples = []
    for n in range(count):
        video = f"song{n:07d}"
        body = {"song": {"videoId": video, "title": f"Song number {n}", "artist": f"Band {n}", "duration": 200},
                "paymentId": f"free-{n}"}
        started = time.perf_counter()
        async with http.post(f"{hub.url}/api/v1/venues/{VENUE}/requests", json=body) as response:
            assert response.status == 201, await response.text()
        await in_replica(box, video)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def paid_requests(hub: Hub, box: Box, http: aiohttp.ClientSession, count: int) -> list[float]:
    samples = []
    for n in range(count, 2 * count):
        video = f"song{n % SONGS:07d}"
        async with http.post(f"{hub.url}/api/v1/venues/{VENUE}/checkout",
                             json={"song": {"videoId": video}, "requesterId": f"patron-{n}"}) as response:
            started_checkout: dict[str, Any] = await response.json()
            assert response.status == 201, started_checkout
        event = hub.stripe.pay(started_checkout["checkoutUrl"].rsplit("/", 1)[1])
        started = time.perf_counter()
        status, answer = await hub.stripe.send(event)
        assert status == 200 and answer["outcome"] == "queued", answer
        await in_replica(box, video)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> str:
    return (f"p50 {statistics.median(samples):6.1f} ms  p90 {pct(samples, 90):6.1f} ms  "
            f"p99 {pct(samples, 99):6.1f} ms  max {max(samples):6.1f} ms")


async def page_loads(url: str, loads: int) -> dict[str, list[tuple[float, int]]]:
    """(first contentful paint ms, bytes) per load of ``url`` cold and warm, and of /healthz cold."""
    from tests.browser import chromium_page

    figures: dict[str, list[tuple[float, int]]] = {"page cold": [], "page warm": [], "baseline /healthz": []}
    async with chromium_page() as first:
        browser = first.context.browser
        assert browser is not None
        for _ in range(loads):
            for target, cold, warm in ((url, "page cold", "page warm"), (url.split("/v/")[0] + "/healthz",
                                                                        "baseline /healthz", None)):
                context = await browser.new_context(viewport={"width": 390, "height": 844})
                page = await context.new_page()
                cdp = await context.new_cdp_session(page)
                await cdp.send("Network.enable")
                await cdp.send("Network.emulateNetworkConditions", THROTTLE)
                received = [0]

                def count(event: dict[str, Any], got: list[int] = received) -> None:
                    got[0] += int(event["encodedDataLength"])

                cdp.on("Network.loadingFinished", count)
                figures[cold].append(await load(page, target, received))
                if warm is not None:
                    received[0] = 0
                    await page.reload(wait_until="load")
                    figures[warm].append(await paint(page, received))
                await context.close()
    return figures


async def load(page: Any, url: str, received: list[int]) -> tuple[float, int]:
    await page.goto(url, wait_until="load")
    return await paint(page, received)


async def paint(page: Any, received: list[int]) -> tuple[float, int]:
    fcp = await page.evaluate(
        "() => new Promise(done => { const seen = () => performance.getEntriesByName('first-contentful-paint');"
        " const wait = () => seen().length ? done(seen()[0].startTime) : setTimeout(wait, 20); wait(); })")
    await asyncio.sleep(0.3)  # late events (the SSE stream's first bytes) are counted too
    return float(fcp), received[0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--loads", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="djamms-bench-patron-") as tmp:
        async with running_fake_stripe() as stripe:
            hub = Hub(Path(tmp), stripe)
            await hub.start()
            stripe.webhook_url = hub.url + "/api/v1/payments/stripe/webhook"
            box = Box(hub, "bench-box", Path(tmp))
            try:
                await box.start()
                await asyncio.wait_for(box.sync.feed_ready.wait(), 10)
                async with aiohttp.ClientSession() as http:
                    free = await free_requests(hub, box, http, args.requests)
                    await hub.set_price(PRICE)
                    paid = await paid_requests(hub, box, http, args.requests)
                await box.stop()
                print(f"{args.requests} sequential requests each, loopback, default [edge.sync]:")
                print(f"  baseline: free request POST -> edge replica      {summary(free)}")
                print(f"  Stripe webhook (signed, verified) -> edge replica {summary(paid)}  (target p99 <= 300 ms)")
                print(f"  ratio p99 webhook / baseline: {pct(paid, 99) / pct(free, 99):.2f}")
                figures = await page_loads(f"{hub.url}/v/{VENUE}", args.loads)
            finally:
                await hub.stop()
    print(f"patron page, {args.loads} loads each, chromium phone viewport, network emulation "
          "1.6 Mbps down / 750 kbps up / 150 ms RTT:")
    for name, runs in figures.items():
        fcp = [f for f, _ in runs]
        size = [b for _, b in runs]
        print(f"  {name:<18} first contentful paint p50 {statistics.median(fcp):6.0f} ms  max {max(fcp):6.0f} ms"
              f"  bytes p50 {statistics.median(size):7.0f}")
    cold = statistics.median(f for f, _ in figures["page cold"])
    floor = statistics.median(f for f, _ in figures["baseline /healthz"])
    print(f"  target: cold first render <= 1000 ms; ratio cold page / baseline: {cold / floor:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
