"""The staff console in Chromium against a real hub, a real SMTP server and a real edge daemon:
sign in by the mailed link, see the dashboard, pair a fresh box by the code it shows, see it play,
revoke it (it stops, and forgets its pairing)."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aiosmtpd.smtp import SMTP
from playwright.async_api import Page, expect

from djamms_edge.edge.pairing import credentials_path
from djamms_edge.edge.player.seams import render_tone
from djamms_edge.hub import accounts
from djamms_edge.hub.app import create_app
from djamms_edge.hub.store import store_from_url
from djamms_edge.hub.store.base import HubStore, Song
from tests.browser import PHONE, PageWatch, check_layout, chromium_page, save_screenshot
from tests.edge.test_daemon import query
from tests.hub.conftest import hub_config
from tests.hub.test_auth import MailBox, smtp_config
from tests.ports import logged_status_url, reserved_port

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]
VENUE = "bar-1"
STAFF = "sam@bar.test"


async def eventually(what: str, check: Callable[[], Awaitable[T | None]], limit: float = 60.0,
                     logs: Path | None = None) -> T:
    """Poll ``check`` (another process gives no event to await) until it returns something truthy."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.2)
    tail = (await asyncio.to_thread(logs.read_text))[-4000:] if logs else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


@dataclasses.dataclass
class Console:
    url: str
    store: HubStore
    mail: MailBox
    http: aiohttp.ClientSession


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    """A hub whose magic links point at itself, mailing through aiosmtpd, with a venue, its staff user and
    an active playlist of two local tone tracks (the media cache is another module's)."""
    mail = MailBox()
    smtp = await asyncio.get_running_loop().create_server(lambda: SMTP(mail, hostname="localhost"), "127.0.0.1", 0)
    ports = ExitStack()  # the hub's port, known before it starts: its magic links name it
    port = ports.enter_context(reserved_port())
    url = f"http://127.0.0.1:{port}"
    config = dataclasses.replace(hub_config(smtp=smtp_config(smtp.sockets[0].getsockname()[1])), public_url=url)
    store = store_from_url(f"sqlite:///{tmp_path / 'hub.db'}", retain_changes=1000)
    server = TestServer(create_app(config, store), host="127.0.0.1", port=port)
    await server.start_server()
    now_ms = int(time.time() * 1000)
    await accounts.create_venue(store, VENUE, "The Bar", "Europe/Berlin", now_ms)
    await accounts.set_user(store, STAFF, "staff", VENUE, now_ms)
    playlist = await store.create_playlist(VENUE, "house", now_ms)
    for n in (1, 2):
        track = await render_tone(tmp_path / f"Band {n} - Song {n}.m4a", 330 + 110 * n, lead=0.3, tone=8.0, trail=0.3)
        await store.add_track(playlist.playlist_id, Song(str(track), f"Song {n}", f"Band {n}", 8.6), now_ms)
    await store.activate_playlist(VENUE, playlist.playlist_id, now_ms)
    try:
        async with aiohttp.ClientSession() as http:
            yield Console(url, store, mail, http)
    finally:
        await server.close()
        ports.close()
        smtp.close()


@dataclasses.dataclass
class Box:
    proc: subprocess.Popen[bytes]
    state: Path
    log: Path

    def status_url(self) -> str | None:
        return logged_status_url(self.log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_fresh_box(tmp_path: Path, hub_url: str) -> Box:
    """``djamms-edge run`` with the hub's URL and no token: a box straight out of its box."""
    state = tmp_path / "box"
    config = tmp_path / "box.toml"
    config.write_text(f"""
[edge]
device_id = "box-new"
state_dir = "{state}"
cache_dir = "{state / 'cache'}"
[edge.hub]
url = "{hub_url}"
[edge.player]
video = false
ao = "null"
[edge.status]
port = 0
[edge.sync]
heartbeat_interval_s = 0.5
retry_min_s = 0.2
retry_max_s = 1.0
request_timeout_s = 2.0
poll_interval_s = 1.0
""")
    log = tmp_path / "box.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJAMMS_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "djamms_edge.edge.cli", "run", "--config", str(config)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Box(proc, state, log)


async def box_status(http: aiohttp.ClientSession, box: Box) -> Any:
    url = box.status_url()
    if url is None:
        return None  # not listening yet
    try:
        async with http.get(url + "/api/status", timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return await resp.json() if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


async def sign_in(page: Page, console: Console) -> None:
    await page.goto(console.url + "/console/sign-in")
    await check_layout(page)
    await page.get_by_label("Your email").fill(STAFF)
    await page.get_by_role("button", name="Send me a sign-in link").click()
    await expect(page.locator("#notice")).to_contain_text(f"we sent a sign-in link to {STAFF}")
    await save_screenshot(page, "console-sign-in.png")
    mail = await asyncio.wait_for(console.mail.mails.get(), timeout=10)
    assert mail.rcpt_tos == [STAFF]
    text = email.message_from_bytes(mail.original_content or b"", policy=email.policy.default).get_content()
    link = next(word for word in text.split() if word.startswith(console.url + "/console/sign-in?secret="))
    await page.goto(link)
    # Staff of one venue land on its dashboard; the secret is gone from the address bar.
    await expect(page).to_have_url(f"{console.url}/console/{VENUE}/", timeout=15_000)
    assert await page.evaluate("localStorage.getItem('djamms.token')")


async def test_sign_in_pair_a_box_see_it_play_and_revoke_it(console: Console, tmp_path: Path) -> None:
    box = start_fresh_box(tmp_path, console.url)
    try:
        async with chromium_page() as page:
            watch = PageWatch(page, console.url)
            # Not signed in: the console sends the browser to sign in; a used or made-up link says so.
            await page.goto(f"{console.url}/console/{VENUE}/")
            await expect(page).to_have_url(f"{console.url}/console/sign-in")
            await page.goto(f"{console.url}/console/sign-in?secret={'0' * 64}")
            await expect(page.locator("#alert")).to_contain_text("used already or has expired")
            await expect(page).to_have_url(f"{console.url}/console/sign-in")  # the secret left the address bar

            await sign_in(page, console)
            await expect(page.locator("#boxes")).to_contain_text("No box has reported yet")
            await check_layout(page)
            # Where patrons come in: the venue's page, its QR code (it loads) and the poster to print.
            patron = page.locator("#patron-link")
            await expect(patron).to_have_attribute("href", re.compile(rf"/v/{VENUE}$"))
            assert await page.locator("img.patrons-qr").evaluate("img => img.complete && img.naturalWidth > 0")
            await expect(page.get_by_role("link", name="Print the QR poster")).to_have_attribute(
                "href", f"/v/{VENUE}/poster")

            # The new box shows its code on its own status page.
            status = await eventually("the box's pairing code", lambda: _pairing(console.http, box), logs=box.log)
            code = status["pairing"]["code"]
            browser = page.context.browser
            assert browser is not None
            box_page = await browser.new_page(viewport=PHONE)
            status_url = box.status_url()
            assert status_url is not None  # it answered with the code
            await box_page.goto(status_url)
            await expect(box_page.locator("#pairing-code")).to_have_text(code)
            await save_screenshot(box_page, "edge-status-pairing-code.png")
            await box_page.close()

            # Staff type it (as read off the TV: lower case, no dash) into the console.
            await page.get_by_label("Code on the box").fill(code.lower().replace("-", ""))
            await page.get_by_role("button", name="Pair this box").click()
            await expect(page.locator("#notice")).to_contain_text("Box box-new is paired")

            # It stores its token (not in the read-only config), starts, becomes master and plays.
            await eventually("the box playing", lambda: _plays(box), logs=box.log)
            assert credentials_path(box.state).stat().st_mode & 0o777 == 0o600
            master = page.locator("#boxes li[data-device='box-new']")
            await expect(master).to_have_attribute("data-role", "master", timeout=15_000)
            await expect(master).to_contain_text("Playing Song", timeout=15_000)  # refreshed every 5 s
            await expect(master).to_contain_text("version")
            await save_screenshot(page, "console-dashboard-box-playing.png")

            # Revoke: the box is refused at once, stops, and forgets its pairing (next start shows a code).
            page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await page.get_by_role("button", name="Revoke box box-new").click()
            await expect(page.locator("#notice")).to_contain_text("Box box-new is revoked")
            await expect(master).to_have_attribute("data-role", "revoked")
            await save_screenshot(page, "console-dashboard-box-revoked.png")
            exited = await eventually("the revoked box to stop",
                                      lambda: asyncio.sleep(0, result=box.proc.poll() is not None), logs=box.log)
            assert exited and box.proc.returncode == 1
            assert not credentials_path(box.state).exists()
            assert "next start shows a new pairing code" in box.log.read_text()
            watch.assert_clean(allow=("401",))  # the made-up sign-in link
    finally:
        box.stop()


async def _pairing(http: aiohttp.ClientSession, box: Box) -> Any:
    status = await box_status(http, box)
    return status if status and status.get("pairing") else None


async def _plays(box: Box) -> bool:
    return bool(query(box.state / "playback.db", "SELECT * FROM plays"))
