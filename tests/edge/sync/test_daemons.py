"""Real processes: ``djamms-hub serve`` and two ``djamms-edge run`` daemons (libmpv, ao=null) on loopback.

Short intervals through config (heartbeat 0.5 s, hub staleness 2 s) so the stories run in seconds.
The hub is seeded through its store with local files as the playlist's tracks (the media cache that
turns video ids into files is another module); every other step goes through the real programs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest

from djamms_edge.edge.player.seams import render_tone
from djamms_edge.hub.auth import issue_device_token
from djamms_edge.hub.store.base import Song
from djamms_edge.hub.store.sqlite import SqliteStore
from tests.edge.media.http_server import MediaServer
from tests.edge.test_daemon import query
from tests.edge.tones import rendered
from tests.ports import logged_status_url, reserved_port

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]
SECRET = "daemon-test-secret-" + "x" * 32
VENUE = "venue-1"
STALE_S = 2.0
HEARTBEAT_S = 0.5
START_MARGIN_S = 2.0  # resolving the track (ffmpeg analysis) and libmpv opening it, on a busy 2-core box


@pytest.fixture(scope="module")
def tracks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("hub-tracks")
    return rendered(*(render_tone(root / f"Band {n} - Song {n}.m4a", 300 + 110 * n, lead=0.3, tone=5.0, trail=0.3)
                      for n in range(1, 5)))


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM")}


class Proc:
    """A child in its own process group, its output in a log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=REPO, env={**_env(), **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(timeout=10)


class LoopThread:
    """An asyncio loop in a thread, for servers these synchronous process tests need beside them."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def close(self) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class CuttableProxy:
    """A TCP proxy between one box and the hub; ``cut()`` drops and refuses its connections."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.cut_off = threading.Event()
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread = LoopThread()
        self.loop = self.thread.loop
        self.server = self.thread.run(self._start())
        self.port = self.server.sockets[0].getsockname()[1]

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._client, "127.0.0.1", 0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off.is_set():
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        def drop() -> None:
            for writer in self.writers:
                writer.transport.abort()
            self.writers.clear()

        self.cut_off.set()
        self.loop.call_soon_threadsafe(drop)

    def heal(self) -> None:
        self.cut_off.clear()

    def close(self) -> None:
        self.cut()
        self.thread.run(self._stop())  # on the proxy's own loop: Server.close() is not thread-safe
        self.thread.close()

    async def _stop(self) -> None:
        self.server.close()


def start_edge(tmp: Path, venue: str, name: str, hub_url: str, token: str, extra_config: str = "",
               env: dict[str, str] | None = None) -> Proc:
    """``djamms-edge run`` for box ``name`` (no screen, no sound, short sync intervals), logging to tmp/NAME.log."""
    state = tmp / name
    config = tmp / f"{name}.toml"
    config.write_text(
        f"""
[edge]
venue_id = "{venue}"
device_id = "{name}"
state_dir = "{state}"
cache_dir = "{state / "cache"}"
[edge.hub]
url = "{hub_url}"
device_token = "{token}"
[edge.player]
video = false
ao = "null"
[edge.status]
port = 0
[edge.fetch]
allowed_hosts = ["127.0.0.1"]   # test media is served on loopback
[edge.sync]
heartbeat_interval_s = {HEARTBEAT_S}
retry_min_s = 0.2
retry_max_s = 1.0
request_timeout_s = 1.0
poll_interval_s = 1.0
"""
        + extra_config
    )
    return Proc([sys.executable, "-m", "djamms_edge.edge.cli", "run", "--config", str(config)], tmp / f"{name}.log",
                env)


class World:
    def __init__(self, tmp_path: Path, tracks: list[Path]) -> None:
        self.tmp = tmp_path
        self.tracks = tracks
        self.ports = ExitStack()  # the hub's port, held across its restarts until close()
        self.port = self.ports.enter_context(reserved_port())
        self.url = f"http://127.0.0.1:{self.port}"
        self.hub: Proc | None = None
        self.boxes: dict[str, Proc] = {}
        asyncio.run(self._seed())

    async def _seed(self) -> None:
        store = SqliteStore(self.tmp / "hub.db")
        await store.open()
        now = int(time.time() * 1000)
        await store.create_venue(VENUE, "Test venue", now)
        playlist = await store.create_playlist(VENUE, "house", now)
        for path in self.tracks:
            artist, _, title = path.stem.partition(" - ")
            await store.add_track(playlist.playlist_id, Song(str(path), title, artist, 5.6), now)
        await store.activate_playlist(VENUE, playlist.playlist_id, now)
        await store.close()

    def start_hub(self, requests_config: str = "") -> None:
        config = self.tmp / "hub.toml"
        config.write_text(
            f'[hub]\njwt_secret = "{SECRET}"\n[hub.store]\nurl = "sqlite:///{self.tmp / "hub.db"}"\n'
            f"[hub.registry]\nstale_after_s = {STALE_S}\n"
            # A venue's own media by URL, from a server on loopback (allowed by name): how tests serve a paid track.
            '[hub.requests]\nallow_urls = true\nallowed_hosts = ["127.0.0.1"]\n'
            + requests_config
        )
        self.hub = Proc(
            [
                sys.executable,
                "-m",
                "djamms_edge.hub.cli",
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            self.tmp / "hub.log",
        )
        wait_until("the hub", lambda: self._healthy(), limit=20)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:  # noqa: S310 -- loopback
                return bool(response.status == 200)
        except OSError:
            return False

    def stop_hub(self) -> None:
        assert self.hub is not None
        self.hub.stop()

    def start_box(self, name: str, hub_url: str | None = None, extra_config: str = "", *,
                  token_for: str | None = None, env: dict[str, str] | None = None) -> Proc:
        """``token_for``: the device the box's token names (default: the box itself)."""
        token = issue_device_token(SECRET, VENUE, token_for or name, time.time(), 365 * 86400)
        box = start_edge(self.tmp, VENUE, name, hub_url or self.url, token, extra_config, env)
        self.boxes[name] = box
        return box

    def plays(self, name: str) -> list[sqlite3.Row]:
        return query(self.tmp / name / "playback.db", "SELECT * FROM plays ORDER BY started_at")

    def pending(self, name: str) -> int:
        rows = query(self.tmp / name / "sync.db", "SELECT count(*) AS n FROM outbox WHERE state = 'pending'")
        return int(rows[0]["n"]) if rows else -1

    def get(self, path: str, device: str = "observer") -> Any:
        token = issue_device_token(SECRET, VENUE, device, time.time(), 3600)
        url = f"{self.url}/api/v1/venues/{VENUE}{path}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 -- loopback
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 -- loopback
            return json.loads(response.read())

    def status(self, name: str) -> Any:
        """The box's own status page (localhost), found from the address it logs."""
        url = logged_status_url(self.tmp / f"{name}.log")
        assert url is not None, (self.tmp / f"{name}.log").read_text()
        with urllib.request.urlopen(f"{url}/api/status", timeout=5) as response:  # noqa: S310 -- loopback
            return json.loads(response.read())

    def close(self) -> None:
        for box in self.boxes.values():
            box.signal(signal.SIGKILL)
            box.proc.wait(timeout=10)
        if self.hub is not None:
            self.hub.stop()
        self.ports.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))


def wait_until(what: str, check: Callable[[], Any], limit: float = 30.0, world: World | None = None) -> Any:
    """Poll ``check`` (other processes give us no event to await) until it returns something truthy."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}" + ("\n" + world.logs() if world else ""))


@pytest.fixture
def world(tmp_path: Path, tracks: list[Path]) -> Iterator[World]:
    made = World(tmp_path, tracks)
    made.start_hub()
    yield made
    made.close()


def master_is_playing(world: World, name: str) -> Callable[[], bool]:
    return lambda: bool(world.plays(name))


def test_two_daemons_one_plays_and_a_crash_hands_over_the_interrupted_entry(world: World) -> None:
    a = world.start_box("box-a")
    wait_until("box-a playing", master_is_playing(world, "box-a"), world=world)
    b = world.start_box("box-b")
    wait_until("box-b standing by", lambda: "standby" in b.log.read_text(), world=world)
    time.sleep(2 * HEARTBEAT_S + 1)
    assert world.plays("box-b") == []  # exactly one plays
    # Mid-track (the tracks are 5.6 s): a kill at the very end would find the track already reported played.
    current = wait_until("box-a 1-3 s into a track, as the hub knows it",
                         lambda: 1.0 <= ((np := world.get("/queue/full")["nowPlaying"])["position"] or 0) <= 3.0 and np,
                         world=world)
    assert current["deviceId"] == "box-a"
    a.signal(signal.SIGKILL)
    killed_at = time.time()
    interrupted = world.get("/queue/full")["nowPlaying"]  # the heartbeat's position, as it stood at the kill
    assert interrupted["endedAt"] is None
    first = wait_until("box-b to take over", lambda: world.plays("box-b"), limit=STALE_S + 15, world=world)[0]
    assert first["started_at"] - killed_at <= STALE_S + HEARTBEAT_S + START_MARGIN_S, world.logs()
    # The entry box-a was cut off in, from its last reported position: not the next one, not from the top.
    assert first["entry_id"] == interrupted["entryId"], world.logs()
    assert first["start_position"] >= interrupted["position"] - 0.01

    # box-a comes back (systemd restarts it): a standby now, and when box-b stops it takes over with what
    # box-b was playing, never the remainder of its own old play (box-b has finished that one since).
    old = world.plays("box-a")[-1]
    a = world.start_box("box-a")
    wait_until("box-a standing by again", lambda: a.log.read_text().count("standby:") >= 1, world=world)
    b.signal(signal.SIGTERM)
    assert b.proc.wait(timeout=15) == 0
    handed_over = world.get("/queue/full")["nowPlaying"]
    wait_until(
        "box-a to take over again",
        lambda: world.plays("box-a")[-1]["play_id"] != old["play_id"],
        limit=10,
        world=world,
    )
    plays_a = world.plays("box-a")
    assert [p["resumes"] for p in plays_a if p["play_id"] == old["play_id"]] == [0]
    assert plays_a[-1]["entry_id"] == handed_over["entryId"] or handed_over["endedAt"] is not None
    wait_until("the history to record box-b's resumed play", lambda: any(
        h["entryId"] == interrupted["entryId"] for h in world.get("/history?limit=1000")["history"]), world=world)
    history = [h["entryId"] for h in world.get("/history?limit=1000")["history"]]
    assert len(history) == len(set(history)), "an entry recorded twice"


def test_a_box_restarted_after_a_crash_takes_its_lease_back_at_once(world: World) -> None:
    """systemd restarts a crashed daemon: it is the same box (same boot, same state dir) to the hub's
    second-process check, so it plays again at once instead of standing by for instance_grace_s (15 s) as a
    copy of its token elsewhere would."""
    a = world.start_box("box-a")
    wait_until("box-a playing", master_is_playing(world, "box-a"), world=world)
    a.signal(signal.SIGKILL)
    a.proc.wait(timeout=10)
    restarted_at = time.time()
    a = world.start_box("box-a")  # its log goes on in the same file
    wait_until("box-a master again", lambda: a.log.read_text().count("lease: became master") == 2, world=world)
    assert time.time() - restarted_at <= HEARTBEAT_S + 2 * START_MARGIN_S + 2.0, world.logs()
    wait_until("box-a playing again", lambda: "resuming 'Band 1" in a.log.read_text(), limit=START_MARGIN_S + 3,
               world=world)


def test_graceful_stop_hands_over_within_two_seconds(world: World) -> None:
    a = world.start_box("box-a")
    wait_until("box-a playing", master_is_playing(world, "box-a"), world=world)
    b = world.start_box("box-b")
    wait_until("box-b standing by", lambda: "standby" in b.log.read_text(), world=world)
    a.signal(signal.SIGTERM)
    stopped_at = time.time()
    first = wait_until("box-b to take over", lambda: world.plays("box-b"), limit=10, world=world)[0]
    assert a.proc.wait(timeout=15) == 0
    assert first["started_at"] - stopped_at <= 2.0, world.logs()


def test_hub_outage_the_master_plays_on_and_history_is_complete_without_duplicates(world: World) -> None:
    world.start_box("box-a")
    wait_until("box-a playing", master_is_playing(world, "box-a"), world=world)
    world.stop_hub()
    before = len(world.plays("box-a"))
    wait_until(
        "two more tracks during the outage", lambda: len(world.plays("box-a")) >= before + 2, limit=30, world=world
    )
    world.start_hub()
    wait_until("the outbox to drain", lambda: world.pending("box-a") == 0, limit=20, world=world)
    finished = [p for p in world.plays("box-a") if p["end_reason"] == "finished"]
    history = world.get("/history?limit=1000")["history"]
    ids = [h["entryId"] for h in history]
    assert len(ids) == len(set(ids)), "duplicate history rows"
    assert sorted(ids) == sorted(p["entry_id"] for p in finished)
    assert world.get("/queue/full")["nowPlaying"]["deviceId"] == "box-a"


def test_a_master_restarted_during_a_hub_outage_plays_on(world: World) -> None:
    """The internet is down and staff 'turn it off and on again' (a graceful stop, then a start): the release
    never reached the hub, which still counts this box as master, so it resumes playing; silence until the
    internet returns would be the worst answer for a single-box venue."""
    a = world.start_box("box-a")
    wait_until("box-a playing", master_is_playing(world, "box-a"), world=world)
    world.stop_hub()
    wait_until("box-a to notice", lambda: "keep playing as master (offline)" in a.log.read_text(), world=world)
    a.stop()
    assert a.proc.returncode == 0, world.logs()
    assert "the hub did not take the lease back" in a.log.read_text()
    restarted_at = time.time()
    world.start_box("box-a")
    wait_until(
        "box-a playing again without the hub",
        lambda: any(p["resumes"] or p["started_at"] > restarted_at for p in world.plays("box-a")),
        limit=20,
        world=world,
    )
    assert "hub unreachable at start: resume playing" in a.log.read_text()


def test_partition_the_cut_off_master_plays_on_then_yields_when_it_hears_from_the_hub(world: World) -> None:
    """Master cut from the hub, standby not: the standby takes over after staleness; the cut-off master
    cannot tell a partition from an outage, so (venue first) it plays on until it reaches the hub again,
    learns of the higher epoch (register answers conflict) and stops at once. Its queue writes under the
    lost epoch are refused (fencing); what it really played still lands in the history."""
    proxy = CuttableProxy(world.port)
    try:
        a = world.start_box("box-a", f"http://127.0.0.1:{proxy.port}")
        wait_until("box-a playing", master_is_playing(world, "box-a"), world=world)
        b = world.start_box("box-b")
        wait_until("box-b standing by", lambda: "standby" in b.log.read_text(), world=world)
        proxy.cut()
        cut_at = time.time()
        first = wait_until("box-b to take over", lambda: world.plays("box-b"), limit=STALE_S + 15, world=world)[0]
        assert first["started_at"] - cut_at <= STALE_S + HEARTBEAT_S + START_MARGIN_S
        assert "keep playing as master (offline)" in a.log.read_text()
        wait_until(
            "box-a's status page to say it plays without the hub",
            lambda: (st := world.status("box-a"))["role"] == "master" and st["hub"]["connected"] is False,
            limit=5,
            world=world,
        )
        assert world.get("/queue/full")["master"]["deviceId"] == "box-b"
        proxy.heal()
        healed_at = time.time()
        wait_until(
            "box-a to yield", lambda: "lost the lease, stopped playing" in a.log.read_text(), limit=10, world=world
        )
        assert time.time() - healed_at <= 1.0 + 2.0  # retry_max_s plus a margin
        # The halt stops mpv at once; the play's end is recorded when mpv reports it, a moment later.
        wait_until(
            "box-a to record that it stopped playing",
            lambda: all(p["ended_at"] is not None for p in world.plays("box-a")),
            limit=2,
            world=world,
        )
        wait_until("box-a's outbox to settle", lambda: world.pending("box-a") == 0, limit=10, world=world)
        assert world.get("/queue/full")["nowPlaying"]["deviceId"] == "box-b"
    finally:
        proxy.close()


def play_a_paid_request(world: World, tmp_path: Path) -> tuple[int, sqlite3.Row]:
    """A patron pays for a track (served over loopback HTTP, as a venue's own media) while box-a plays;
    returns how many plays after the one playing at the time it came, and its play row."""
    a = world.start_box("box-a")
    wait_until("box-a playing", master_is_playing(world, "box-a"), world=world)
    paid = tmp_path / "media" / "paid.m4a"
    paid.parent.mkdir()
    paid.write_bytes(world.tracks[0].read_bytes())
    media = LoopThread()
    server = MediaServer(paid.parent)
    try:
        media.run(server.start())
        url = f"{server.url}/media/paid.m4a"
        playing_when_posted = world.plays("box-a")[-1]
        song = {"videoId": url, "title": "Paid", "artist": "Patron's pick", "duration": 5.6}
        body = json.dumps({"song": song, "paymentId": "pay-1", "requesterId": "patron-1"}).encode()
        request = urllib.request.Request(  # noqa: S310 -- loopback
            f"{world.url}/api/v1/venues/{VENUE}/requests", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 -- loopback
            assert response.status == 201
        wait_until(
            "the paid track to play",
            lambda: any(p["source"] == url for p in world.plays("box-a")),
            limit=30,
            world=world,
        )
        plays = [p["play_id"] for p in world.plays("box-a")]
        paid_play = next(p for p in world.plays("box-a") if p["source"] == url)
        assert a.proc.poll() is None
        return plays.index(paid_play["play_id"]) - plays.index(playing_when_posted["play_id"]), paid_play
    finally:
        media.run(server.close())
        media.close()


def test_a_paid_request_posted_to_the_hub_plays_on_the_master(world: World, tmp_path: Path) -> None:
    after, paid = play_a_paid_request(world, tmp_path)
    assert paid["kind"] == "priority"
    assert after <= 2  # before the playlist goes on: at worst after the one track already handed to mpv


def test_a_paid_request_posted_to_the_hub_plays_next_on_the_master(world: World, tmp_path: Path) -> None:
    after, _ = play_a_paid_request(world, tmp_path)
    assert after == 1
