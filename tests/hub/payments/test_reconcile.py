"""``djamms-hub payments reconcile`` after a restore: a real hub (a process) on SQLite charging through the fake
Stripe (the official library's wire format), backed up with the real ``djamms-hub backup``, patrons paying after
the backup, the backup restored as docs/hub-deploy.md says, and the real command giving the paid requests back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import expect

from djamms_edge.hub.backup import backups_in
from djamms_edge.hub.cli import main
from djamms_edge.hub.payments.provider import CheckoutOrder, PaymentError
from djamms_edge.hub.payments.stripe_provider import StripeProvider
from djamms_edge.hub.payments_cli import since_time
from djamms_edge.hub.store.base import Song
from tests.browser import PageWatch, chromium_page, save_screenshot
from tests.hub.fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, running_fake_stripe
from tests.hub.served import ServedHub, hub_command, hub_config_file, serving

VENUE = "tavern"
PRICE = 250


def stripe_config(directory: Path, fake: FakeStripe, store_url: str | None = None) -> Path:
    """A hub charging through ``fake``, on SQLite in ``directory`` unless ``store_url`` names another store."""
    directory.mkdir(parents=True, exist_ok=True)
    payments = (f'[hub.payments]\nprovider = "stripe"\nstripe_secret_key = "{API_KEY}"\n'
                f'stripe_webhook_secret = "{WEBHOOK_SECRET}"\nstripe_api_base = "{fake.url}"\n'
                "[hub.requests]\nartist_limit = 10\n")
    return hub_config_file(directory, payments, store_url=store_url)


async def command(*args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(hub_command, *args)  # the fake Stripe answers on this loop meanwhile
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


async def seeded(config: Path) -> dict[str, str]:
    """``djamms-hub seed-demo``: the venue, its playlist, tokens of its staff and box."""
    code, out, err = await command("seed-demo", "--config", str(config), "--venue", VENUE)
    assert code == 0, err
    return dict(json.loads(out))


class Bar:
    """The seeded venue on a served hub: staff, its box, patrons paying through the fake Stripe."""

    def __init__(self, hub: ServedHub, fake: FakeStripe, http: aiohttp.ClientSession, tokens: dict[str, str]):
        self.hub, self.fake, self.http, self.tokens = hub, fake, http, tokens
        fake.webhook_url = hub.url + "/api/v1/payments/stripe/webhook"

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, f"{self.hub.url}/api/v1/venues/{VENUE}{path}", json=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def opened(self) -> Bar:
        """The venue charges PRICE for songs of its playlist, and its box plays."""
        staff, box = self.tokens["staffToken"], self.tokens["deviceToken"]
        assert (await self.call("PUT", "/price", {"price": PRICE, "currency": "usd"}, staff))[0] == 200
        playlist = self.tokens["playlistId"]
        assert (await self.call("PATCH", f"/playlists/{playlist}", {"requestable": True}, staff))[0] == 200
        assert (await self.call("POST", "/players/register", {"deviceId": "demo-box"}, box))[0] == 200
        return self

    async def checkout(self, video_id: str, patron: str) -> tuple[str, str]:
        """(request id, Stripe session id) of a patron's checkout."""
        status, body = await self.call("POST", "/checkout", {"song": {"videoId": video_id}, "requesterId": patron})
        assert status == 201, body
        return body["requestId"], body["checkoutUrl"].rsplit("/", 1)[1]

    async def pay(self, session: str) -> None:
        """The patron pays; Stripe's webhook reaches the hub."""
        assert (await self.fake.send(self.fake.pay(session)))[1]["outcome"] == "queued"

    async def queue(self) -> list[tuple[str, str | None]]:
        """What staff see: the priority queue's songs and who asked."""
        status, body = await self.call("GET", "/queue/full", token=self.tokens["staffToken"])
        assert status == 200, body
        return [(e["title"], e["requesterId"]) for e in body["priorityQueue"]]

    async def mine(self, request_id: str) -> dict[str, Any]:
        """What the patron's request page shows."""
        status, body = await self.call("GET", f"/requests/{request_id}/status")
        assert status == 200, body
        return dict(body)


async def test_a_restore_loses_no_paid_request(tmp_path: Path) -> None:
    live, backups = tmp_path / "live", tmp_path / "backups"
    async with running_fake_stripe() as fake, aiohttp.ClientSession() as http:
        config = stripe_config(live, fake)
        tokens = await seeded(config)
        async with serving(config) as hub:
            bar = await Bar(hub, fake, http, tokens).opened()
            _, paid_before = await bar.checkout("dQw4w9WgXcQ", "patron-a")
            await bar.pay(paid_before)
            began, paid_after_backup = await bar.checkout("kJQP7kiw5Fk", "patron-d")  # pays once the backup is made
            code, out, err = await command("backup", "--config", str(config), "--dir", str(backups))
            assert code == 0, err
            [backup] = backups_in(backups)
            after, session = await bar.checkout("9bZkp7q19f0", "patron-b")
            await bar.pay(session)
            await bar.pay(paid_after_backup)
            # A checkout an older hub began: its metadata names the request and venue only, not the song.
            _, old = await bar.checkout("dQw4w9WgXcQ", "patron-c")
            fake.sessions[old]["metadata"] = {k: fake.sessions[old]["metadata"][k] for k in ("request_id", "venue_id")}
            await bar.pay(old)
            # Paid, then given back from Stripe's dashboard: not to be queued again.
            _, refunded = await bar.checkout("9bZkp7q19f0", "patron-e")
            await bar.pay(refunded)
            fake.refunds.append({"id": "re_test_dashboard", "object": "refund", "amount": PRICE, "currency": "usd",
                                 "payment_intent": fake.sessions[refunded]["payment_intent"], "status": "succeeded"})
            paid = await bar.queue()
            assert len(paid) == 5, paid

        # Restore as docs/hub-deploy.md says: the backup in place of hub.db, nothing of the old WAL beside it.
        for stale in ("hub.db-wal", "hub.db-shm"):
            (live / stale).unlink(missing_ok=True)
        shutil.copyfile(backup, live / "hub.db")
        os.chmod(live / "hub.db", 0o600)
        since = backup.name.removeprefix("hub-").removesuffix(".db")  # the backup's time, from its name

        async with serving(config) as hub:
            bar = Bar(hub, fake, http, tokens)
            assert await bar.queue() == [("Never Gonna Give You Up", "patron-a")]  # what the backup held
            assert (await bar.call("GET", f"/requests/{after}/status"))[0] == 404
            assert (await bar.mine(began))["status"] == "awaiting_payment"

            status, feed = await bar.call("GET", "/changes?since=0", token=tokens["deviceToken"])
            assert status == 200, feed

            # While the restored hub serves.
            code, out, err = await command("payments", "reconcile", "--config", str(config), "--since", since)
            assert code == 0, err
            lines = out.splitlines()
            assert lines[0] == "rebuilt 2, already there 1, refused/refunded 1, by hand 1", out
            intent = fake.sessions[old]["payment_intent"]
            assert lines[1:] == [f"refund by hand: {intent} (checkout {old}), 2.50 USD: its checkout names no song "
                                 "(made before the hub recorded songs with checkouts)"], out
            queue = await bar.queue()  # in the order the patrons began paying
            assert queue == [("Never Gonna Give You Up", "patron-a"), ("Despacito", "patron-d"),
                             ("Gangnam Style", "patron-b")], queue
            mine = await bar.mine(after)  # the patron's request page finds their request again
            assert (mine["status"], mine["amount"], mine["currency"]) == ("pending", PRICE, "usd"), mine
            assert mine["song"]["title"] == "Gangnam Style" and mine["position"] is not None
            assert (await bar.mine(began))["status"] == "pending"
            async with chromium_page() as page:  # the patron's phone, back on their request's page
                watch = PageWatch(page, hub.url)
                await page.goto(f"{hub.url}/v/{VENUE}?request={after}")
                await expect(page.locator("#mine-song")).to_have_text("Gangnam Style — PSY")
                await expect(page.locator("#mine-status")).to_contain_text("In the queue: number 3")
                await save_screenshot(page, "patron-request-after-restore-phone.png")
                watch.assert_clean()
            # The venue's box, asking for the changes after the version it had, is told of both.
            status, news = await bar.call("GET", f"/changes?since={feed['version']}", token=tokens["deviceToken"])
            assert status == 200 and news["version"] > feed["version"], news
            told = json.dumps(news["messages"])
            assert "Gangnam Style" in told and "Despacito" in told, told

            code, again, err = await command("payments", "reconcile", "--config", str(config), "--since", since)
            assert code == 0, err
            assert again.splitlines()[0] == "rebuilt 0, already there 3, refused/refunded 1, by hand 1", again
            assert await bar.queue() == queue  # a second run changes nothing
            assert [r["id"] for r in fake.refunds] == ["re_test_dashboard"]  # and the hub refunded nothing

            # Stripe cannot be reached: a clear message and 1; nothing changes.
            fake.down = True
            code, out, err = await command("payments", "reconcile", "--config", str(config), "--since",
                                           "0001-01-01T00:00:00Z")  # asks from 1970 on: Stripe's earliest
            assert code == 1 and out == "", out
            assert fake.queries[-1]["created[gte]"] == "0", fake.queries[-1]
            assert "Stripe could not list the checkouts" in err and "run it again" in err, err
            fake.down = False
            assert await bar.queue() == queue

    with sqlite3.connect(live / "hub.db") as db:  # the patron's address never reached Stripe, nor came back
        addresses = {row[0] for row in db.execute("SELECT client_address FROM payments WHERE request_id = ?",
                                                  (after,))}
    assert addresses == {""}
    sent = {k for s in fake.sessions.values() for k in s["metadata"]}
    assert sent <= {"request_id", "venue_id", "requester_id", "video_id", "title", "artist", "duration"}, sent


async def test_on_postgresql_the_boxes_hear_of_a_rebuilt_request_at_once(tmp_path: Path, pg_url: str) -> None:
    """Several processes on one PostgreSQL database: what the command writes reaches the serving hub's change
    feed at once (NOTIFY), so the venue's box queues the rebuilt request without waiting for another change."""

    async def forget(request_id: str) -> None:
        db = await asyncpg.connect(pg_url)
        try:
            assert await db.execute("DELETE FROM payments WHERE request_id = $1", request_id) == "DELETE 1"
        finally:
            await db.close()

    await boxes_hear_of_a_rebuilt_request(tmp_path, pg_url, forget)


async def test_on_sqlite_the_boxes_hear_of_a_rebuilt_request_too(tmp_path: Path) -> None:
    """The command is another process writing the hub's SQLite file while the hub serves: the hub sees the file's
    data_version move within a second and its feed tells the box, as PostgreSQL's NOTIFY does."""

    async def forget(request_id: str) -> None:
        with sqlite3.connect(tmp_path / "hub.db") as db:
            assert db.execute("DELETE FROM payments WHERE request_id = ?", (request_id,)).rowcount == 1

    await boxes_hear_of_a_rebuilt_request(tmp_path, None, forget)


async def boxes_hear_of_a_rebuilt_request(tmp_path: Path, store_url: str | None,
                                          forget: Callable[[str], Awaitable[None]]) -> None:
    async with running_fake_stripe() as fake, aiohttp.ClientSession() as http:
        config = stripe_config(tmp_path, fake, store_url)
        tokens = await seeded(config)
        async with serving(config) as hub:
            bar = await Bar(hub, fake, http, tokens).opened()
            lost, session = await bar.checkout("9bZkp7q19f0", "patron-b")
            # As an older backup restored would have it: no record of the checkout; the patron paid at Stripe.
            await forget(lost)
            fake.pay(session)
            box = {"Authorization": f"Bearer {tokens['deviceToken']}"}
            async with http.ws_connect(f"{hub.url}/api/v1/venues/{VENUE}/feed?since=0", headers=box) as ws:
                while (await asyncio.wait_for(ws.receive_json(), 5))["type"] != "ready":
                    pass
                code, out, err = await command("payments", "reconcile", "--config", str(config), "--since", "1h")
                assert (code, out) == (0, "rebuilt 1, already there 0, refused/refunded 0, by hand 0\n"), err
                told = await asyncio.wait_for(ws.receive_json(), 5)
            assert told["type"] == "change" and "Gangnam Style" in json.dumps(told), told
            assert await bar.queue() == [("Gangnam Style", "patron-b")]
            assert (await bar.mine(lost))["status"] == "pending"


async def test_a_hub_that_takes_no_payments_or_has_no_store_is_refused(tmp_path: Path) -> None:
    free = hub_config_file(tmp_path)
    code, _, err = await command("payments", "reconcile", "--config", str(free), "--since", "26h")
    assert code == 2 and "takes no payments" in err, err
    async with running_fake_stripe() as fake:  # the store's path is wrong: it is not made afresh and filled
        code, _, err = await command("payments", "reconcile", "--config", str(stripe_config(tmp_path / "lost", fake)),
                                     "--since", "26h")
    assert code == 2 and "no hub database at " in err and "/lost/hub.db (hub.store.url)" in err, err
    assert not (tmp_path / "lost" / "hub.db").exists() and fake.requests == []


BAD_SINCE = [
    ("yesterday", "is neither a time such as 2026-11-30T04:30:12Z nor a time ago such as 26h"),
    ("2026-13-01T00:00:00Z", "is neither a time"),
    ("2026-11-30T04:30:12", "has no time zone: add Z for UTC"),
    ("2999-01-01T00:00:00Z", "is in the future"),
    ("-5h", "is neither a time"),
    ("", "is neither a time"),
    ("99999999h", "is neither a time"),  # more than timedelta holds
    ("\x00", "is neither a time"),
]


def test_a_bad_since_gets_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(hub_config_file(tmp_path))
    done = hub_command("payments", "reconcile", "--config", config, "--since", "yesterday")  # the real command
    assert done.returncode == 2 and BAD_SINCE[0][1] in done.stderr and "Traceback" not in done.stderr, done.stderr
    for since, said in BAD_SINCE:
        with pytest.raises(SystemExit) as exited:
            main(["payments", "reconcile", "--config", config, f"--since={since}"])
        assert exited.value.code == 2 and said in capsys.readouterr().err, since


def test_since_reads_a_time_or_a_time_ago() -> None:
    now = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
    assert since_time("26h", now) == now - timedelta(hours=26)
    assert since_time("90m", now) == now - timedelta(minutes=90)
    assert since_time("2d", now) == now - timedelta(days=2)
    assert since_time("20261130T043012.345678Z", now) == datetime(2026, 11, 30, 4, 30, 12, 345678, tzinfo=UTC)
    assert since_time("2026-11-30T05:30:00+01:00", now) == datetime(2026, 11, 30, 4, 30, tzinfo=UTC)


async def test_a_song_fits_stripes_metadata_limits() -> None:
    """A song added by a URL of 2,048 characters: in parts of Stripe's 500-character values (the fake refuses
    metadata over Stripe's limits, as Stripe does), read back whole from the paid checkout."""
    long_url = "https://media.example/" + "a" * (2048 - 22)
    song = Song(long_url, "T" * 300, "A" * 300, 231.5, "counter-box")
    order = CheckoutOrder("req-1", VENUE, PRICE, "usd", "x", "https://h/ok", "https://h/no", 2_000_000_000, song,
                          "patron-1")
    async with running_fake_stripe() as fake:
        provider = StripeProvider(API_KEY, WEBHOOK_SECRET, fake.url)
        try:
            checkout = await provider.create_checkout(order)
            fake.pay(checkout.ref)
            [paid] = await provider.paid_checkouts(0)
            too_long = dataclasses.replace(order, request_id="req-2", requester_id="p" * 501)
            with pytest.raises(PaymentError):  # the fake holds the hub to Stripe's limits
                await provider.create_checkout(too_long)
        finally:
            await provider.close()
    assert (paid.song, paid.requester_id, paid.request_id, paid.checkout_ref) == (song, "patron-1", "req-1",
                                                                                  checkout.ref)
    assert len(fake.sessions[checkout.ref]["metadata"]) == 12


async def test_paid_checkouts_pages_through_stripes_list() -> None:
    """The provider asks Stripe's list with created[gte] and status=complete, page after page (starting_after),
    and returns the paid ones only."""
    async with running_fake_stripe() as fake:
        provider = StripeProvider(API_KEY, WEBHOOK_SECRET, fake.url)
        try:
            song = Song("dQw4w9WgXcQ", "Never Gonna Give You Up", "Rick Astley", 213.0)
            for n in range(215):
                order = CheckoutOrder(f"req-{n}", VENUE, PRICE, "usd", "x", "https://h/ok", "https://h/no",
                                      2_000_000_000, song, f"patron-{n}")
                checkout = await provider.create_checkout(order)
                if n % 50 != 7:  # a few are left unpaid (open)
                    fake.pay(checkout.ref)
                if n < 3:
                    fake.sessions[checkout.ref]["created"] -= 7200  # before the time asked about
            since = max(s["created"] for s in fake.sessions.values()) - 3600
            paid = await provider.paid_checkouts(since)
        finally:
            await provider.close()
    assert [p.request_id for p in paid[:3]] == ["req-3", "req-4", "req-5"]  # oldest first
    asked = {p.request_id for p in paid}
    assert asked == {f"req-{n}" for n in range(3, 215) if n % 50 != 7}
    assert len(paid) == len(asked)  # each once
    assert all(p.song == song and p.requester_id == f"patron-{(p.request_id or '')[4:]}" for p in paid)
    lists = [q for q in fake.queries if q.get("status") == "complete"]
    assert len(lists) == 3 and all(q["created[gte]"] == str(since) and q["limit"] == "100" for q in lists)
    assert "starting_after" not in lists[0] and all("starting_after" in q for q in lists[1:])
