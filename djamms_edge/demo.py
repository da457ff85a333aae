"""``scripts/demo.sh``: a hub and an edge daemon on this machine, playing generated media.

Nothing is downloaded: demo music videos are generated with ffmpeg, served over
loopback HTTP (so the edge fetches them through the real yt-dlp path), put in
an active playlist on a freshly seeded hub, and played by a real edge daemon
through libmpv. One paid request is made after a few seconds so the priority
queue shows on the status page. A second box starts unpaired: its pairing code
is on its own status page (and its window), to be entered on the staff console's
dashboard, where the playing box shows too. Ctrl-C (or SIGTERM) stops the edges,
then the hub, then the media server: the reverse of the start.

Both programs run as real subprocesses with the same commands systemd uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from djamms_edge.edge.media.synth import SynthTrack, fade, render, silence, tone
from djamms_edge.hub.seed import DEMO_ADMIN_EMAIL, demo_owner_email, demo_staff_email

log = logging.getLogger("djamms.demo")

VENUE_ID = "demo-venue"
DEVICE_ID = "demo-box"
NEW_DEVICE_ID = "demo-box-2"  # starts unpaired: the console's pairing in the demo
DEMO_STAFF_EMAIL = demo_staff_email(VENUE_ID)
DEMO_OWNER_EMAIL = demo_owner_email(VENUE_ID)
STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class DemoTrack:
    name: str
    title: str
    artist: str
    track: SynthTrack


# Each has silence at one end or both, so trimming is visible on the status page (realStart/realEnd).
DEMO_TRACKS = (
    DemoTrack("opening", "Opening Tone", "The Generators", SynthTrack((silence(2.0), tone(20.0), silence(4.0)))),
    DemoTrack("fade", "Long Fade", "Sine Collective", SynthTrack((tone(16.0, 0.4), fade(6.0, 0.4, 0.0), silence(5.0)))),
    DemoTrack("hard-stop", "Hard Stop", "Square Deal", SynthTrack((silence(1.5), tone(18.0, 0.6)))),
    DemoTrack("request", "Paid Request", "Patron Favourite", SynthTrack((silence(1.0), tone(15.0, 0.5), silence(3.0)))),
)


# One playlist song goes in by its page's URL alone, as staff paste a link: its details say "coming from the box"
# until the demo box fetches it (yt-dlp reads the page) and reports artist, title and length.
BY_URL_ALONE = "hard-stop"


def write_video_page(root: Path, name: str, media_url: str, title: str, uploader: str | None = None,
                     artist: str | None = None, duration_s: float | None = None) -> str:
    """A video's page as a video site shows one (``root/NAME.html``): schema.org VideoObject metadata in JSON-LD,
    which yt-dlp's own generic extractor reads (title, uploader from ``author``, artist from ``byArtist``, the
    length from ``duration``) and follows to the media file. The demo's (and the tests') stand-in for YouTube:
    real yt-dlp, a real page. Returns the page's file name."""
    video: dict[str, object] = {"@context": "https://schema.org", "@type": "VideoObject", "name": title,
                                "contentUrl": media_url}
    if uploader is not None:
        video["author"] = {"@type": "Person", "name": uploader}
    if artist is not None:
        video["byArtist"] = {"@type": "MusicGroup", "name": artist}
    if duration_s is not None:
        video["duration"] = f"PT{duration_s:g}S"
    data = json.dumps(video).replace("</", "<\\/")
    (root / f"{name}.html").write_text(
        f"<!doctype html><html><head><title>{html.escape(title)}</title>"
        f'<script type="application/ld+json">{data}</script></head><body></body></html>', encoding="utf-8")
    return f"{name}.html"


@dataclass(frozen=True)
class DemoPlan:
    media_dir: Path
    run_dir: Path
    hub_port: int
    status_port: int
    media_port: int
    new_box_status_port: int
    audio_output: str
    video: bool

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}/"

    @property
    def new_box_status_url(self) -> str:
        return f"http://127.0.0.1:{self.new_box_status_port}/"

    def media_url(self, name: str, ext: str = "mp4") -> str:
        return f"http://127.0.0.1:{self.media_port}/{name}.{ext}"


def port_or_free(preferred: int) -> int:
    """``preferred`` when nothing listens there, else any free loopback port.

    The probe sets SO_REUSEADDR as the servers do: a port left in TIME_WAIT by the last run, or reserved by a
    test for the demo (tests/ports.py), is one they can bind."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def has_audio_device() -> bool:
    """A sound server socket or an ALSA playback device: otherwise the demo plays into ao=null."""
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}"))
    if (runtime / "pulse" / "native").exists() or (runtime / "pipewire-0").exists():
        return True
    return any(Path("/dev/snd").glob("pcmC*D*p"))


def has_screen() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def write_config(plan: DemoPlan, device_token: str | None, admin_token: str, *, device_id: str = DEVICE_ID,
                 status_port: int | None = None, name: str = "config.toml") -> Path:
    """A demo config file (secrets generated per run, file readable by this user only); the second box's
    has its own device id, state and status port, and no token (it pairs)."""
    path = plan.run_dir / name
    jwt_secret = _existing_jwt_secret(plan.run_dir / "config.toml") or secrets.token_hex(32)
    state = "edge" if device_id == DEVICE_ID else device_id
    text = f"""# Written by scripts/demo.sh; regenerated on every run.
[hub]
port = {plan.hub_port}
public_url = "{plan.hub_url}"
jwt_secret = "{jwt_secret}"

[hub.store]
url = "sqlite:///{plan.run_dir / "hub.db"}"

[hub.registry]
stale_after_s = 20.0

[hub.requests]
allow_urls = true
allowed_hosts = ["127.0.0.1"]  # the demo serves its media on loopback

[edge]
venue_id = "{VENUE_ID}"
device_id = "{device_id}"
state_dir = "{plan.run_dir / f"{state}-state"}"
cache_dir = "{plan.run_dir / f"{state}-cache"}"

[edge.hub]
url = "{plan.hub_url}"
device_token = "{device_token or ""}"

[edge.status]
port = {plan.status_port if status_port is None else status_port}
admin_token = "{admin_token}"

[edge.fetch]
allowed_hosts = ["127.0.0.1"]

[edge.player]
video = {"true" if plan.video else "false"}
fullscreen = false
ao = "{plan.audio_output}"
show_request_qr = true  # the patron page's QR code on the TV window while idle and as each song starts
"""
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _existing_jwt_secret(path: Path) -> str | None:
    if not path.exists():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("jwt_secret = "):
            return line.split('"')[1]
    return None


def prepare_dirs(plan: DemoPlan) -> list[DemoTrack]:
    """A fresh run directory (a new venue every run); returns the demo videos still to generate."""
    shutil.rmtree(plan.run_dir, ignore_errors=True)
    plan.run_dir.mkdir(parents=True)
    plan.media_dir.mkdir(parents=True, exist_ok=True)
    return [demo for demo in DEMO_TRACKS if not (plan.media_dir / f"{demo.name}.mp4").exists()]


async def make_media(media_dir: Path, missing: Sequence[DemoTrack]) -> None:
    """Generate the demo music videos (later runs reuse them)."""
    for demo in missing:
        log.info("generating demo video %s.mp4", demo.name)
        await render(demo.track, media_dir, demo.name, ("mp4",), channels=2, video_size="640x360")


@contextlib.asynccontextmanager
async def media_server(directory: Path, port: int) -> AsyncIterator[None]:
    """Serve ``directory`` over loopback HTTP; aiohttp's static files honour Range requests."""
    app = web.Application()
    app.router.add_static("/", directory)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


class Child:
    """A program of ours in its own session: Ctrl-C reaches only the demo, which stops children in order."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name, self.proc = name, proc

    @classmethod
    async def start(cls, name: str, argv: Sequence[str]) -> Child:
        proc = await asyncio.create_subprocess_exec(*argv, start_new_session=True)
        return cls(name, proc)

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("%s did not stop within %.0fs; killing it", self.name, STOP_GRACE_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()


def _program(name: str) -> str:
    """The console script beside this interpreter (the venv's), else PATH's."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


async def _run_json(argv: Sequence[str]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} failed with status {proc.returncode}")
    return dict(json.loads(out))


async def _wait_healthy(session: aiohttp.ClientSession, url: str, hub: Child, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if hub.proc.returncode is not None:
            raise RuntimeError(f"the hub exited with status {hub.proc.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the hub did not answer {url} within {limit_s:.0f}s")


async def _call(session: aiohttp.ClientSession, method: str, url: str, token: str | None, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(method, url, json=body, headers=headers) as response:
        answer = await response.json()
        if response.status >= 400:
            raise RuntimeError(f"{url}: {response.status} {answer}")
        return answer


async def put_demo_playlist(session: aiohttp.ClientSession, plan: DemoPlan, staff_token: str) -> None:
    """A playlist of the generated videos (as local URLs), made the venue's active one."""
    venue = f"{plan.hub_url}/api/v1/venues/{VENUE_ID}"
    playlist = await _call(session, "POST", f"{venue}/playlists", staff_token, {"name": "Local demo videos"})
    for demo in DEMO_TRACKS[:-1]:
        song: dict[str, Any] = {
            "videoId": plan.media_url(demo.name),
            "title": demo.title,
            "artist": demo.artist,
            "duration": demo.track.duration,
        }
        if demo.name == BY_URL_ALONE:  # its page's URL alone: the box fills in the rest when it fetches it
            write_video_page(plan.media_dir, demo.name, plan.media_url(demo.name),
                             f"{demo.artist} - {demo.title} (Official Video)", uploader=f"{demo.artist} VEVO")
            song = {"videoId": plan.media_url(demo.name, "html")}
        await _call(session, "POST", f"{venue}/playlists/{playlist['playlistId']}/tracks", staff_token, {"song": song})
    await _call(session, "PUT", f"{venue}/active-playlist", staff_token, {"playlistId": playlist["playlistId"]})
    # Patrons may request these songs from the patron page (free at the demo venue: no provider configured).
    await _call(session, "PATCH", f"{venue}/playlists/{playlist['playlistId']}", staff_token, {"requestable": True})


async def make_paid_request(session: aiohttp.ClientSession, plan: DemoPlan) -> None:
    demo = DEMO_TRACKS[-1]
    song = {
        "videoId": plan.media_url(demo.name),
        "title": demo.title,
        "artist": demo.artist,
        "duration": demo.track.duration,
    }
    answer = await _call(
        session,
        "POST",
        f"{plan.hub_url}/api/v1/venues/{VENUE_ID}/requests",
        None,
        {"song": song, "paymentId": f"demo-{secrets.token_hex(6)}", "requesterId": "demo-patron"},
    )
    log.info("a patron paid for %r: request %s is in the priority queue", demo.title, answer.get("requestId"))


async def run_demo(plan: DemoPlan, stop: asyncio.Event, play_seconds: float = 0.0) -> int:
    """Run until ``stop`` is set, or (``play_seconds`` > 0) that long after the edge started playing."""
    await make_media(plan.media_dir, await asyncio.to_thread(prepare_dirs, plan))
    admin_token = secrets.token_urlsafe(24)
    config = write_config(plan, None, admin_token)
    seeded = await _run_json(
        [_program("djamms-hub"), "seed-demo", "--config", str(config), "--venue", VENUE_ID, "--device", DEVICE_ID]
    )
    config = write_config(plan, seeded["deviceToken"], admin_token)

    children: list[Child] = []
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(media_server(plan.media_dir, plan.media_port))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        hub = await Child.start("hub", [_program("djamms-hub"), "serve", "--config", str(config)])
        children.append(hub)
        stack.push_async_callback(hub.stop)
        await _wait_healthy(session, f"{plan.hub_url}/healthz", hub)
        await put_demo_playlist(session, plan, seeded["staffToken"])

        edge = await Child.start("edge", [_program("djamms-edge"), "run", "--config", str(config)])
        children.append(edge)
        stack.push_async_callback(edge.stop)  # stops first: the edge releases its lease while the hub is up
        new_box_config = write_config(plan, None, admin_token, device_id=NEW_DEVICE_ID,
                                      status_port=plan.new_box_status_port, name="config-new-box.toml")
        new_box = await Child.start("new box", [_program("djamms-edge"), "run", "--config", str(new_box_config)])
        children.append(new_box)
        stack.push_async_callback(new_box.stop)
        print(
            f"\n  DJAMMS demo is running ({'audio' if plan.audio_output != 'null' else 'no audio device: ao=null'}"
            f", {'video window' if plan.video else 'no screen: audio only'})\n"
            f"  status page : {plan.status_url}   (controls token: {admin_token})\n"
            f"  console     : {plan.hub_url}/console/sign-in   sign in as {DEMO_STAFF_EMAIL}, {DEMO_OWNER_EMAIL}"
            f" or {DEMO_ADMIN_EMAIL};\n"
            f"                no mail server in the demo: the sign-in link is printed in this terminal;\n"
            f"                as the owner: add and remove the venue's staff on its Team page;\n"
            f"                as the admin: new venues on /console/, each venue's people and owners on its Team page;\n"
            f"                Playlists: one song was added by its URL alone, its details filled in by the box\n"
            f"  a new box   : {plan.new_box_status_url}   shows a pairing code: enter it on the console's dashboard\n"
            f"  patron page : {plan.hub_url}/v/{VENUE_ID}   (request a song from a phone; poster with QR code:"
            f" {plan.hub_url}/v/{VENUE_ID}/poster)\n"
            f"  hub queue   : {plan.hub_url}/api/v1/venues/{VENUE_ID}/queue\n"
            f"  hub API     : {plan.hub_url}/api/v1/openapi.json\n"
            f"  Ctrl-C stops everything.\n",
            flush=True,
        )
        request_later = asyncio.create_task(_request_after(session, plan, 8.0, stop), name="demo:paid-request")
        stack.push_async_callback(_cancel, request_later)
        if play_seconds > 0:
            stop_later = asyncio.create_task(_stop_after_playing(session, plan, play_seconds, stop), name="demo:timer")
            stack.push_async_callback(_cancel, stop_later)
        ended = asyncio.create_task(_first_exit(children), name="demo:children")
        stack.push_async_callback(_cancel, ended)
        stopping = asyncio.create_task(stop.wait(), name="demo:stop")
        stack.push_async_callback(_cancel, stopping)
        await asyncio.wait([ended, stopping], return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            name, code = ended.result()
            log.error("the %s exited on its own (status %s); stopping the demo", name, code)
            return 1
        log.info("stopping: edge, then hub, then the media server")
    return 0


async def _request_after(session: aiohttp.ClientSession, plan: DemoPlan, delay: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
        return
    try:
        await make_paid_request(session, plan)
    except (aiohttp.ClientError, RuntimeError) as exc:
        log.warning("the demo's paid request failed: %s", exc)


async def _stop_after_playing(session: aiohttp.ClientSession, plan: DemoPlan, seconds: float,
                              stop: asyncio.Event) -> None:
    """``--seconds`` counts from when the edge plays (its status page shows a track), not from the start: on a
    slow box generating media and fetching it can take longer than the whole run."""
    while not stop.is_set():
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            async with session.get(f"{plan.status_url}api/status") as response:
                if response.status == 200 and (await response.json()).get("now_playing"):
                    break
        await asyncio.sleep(0.5)
    log.info("playback started; the demo stops in %.0fs", seconds)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    stop.set()


async def _first_exit(children: Sequence[Child]) -> tuple[str, int | None]:
    waits = {asyncio.ensure_future(c.proc.wait()): c for c in children}
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in waits:
            future.cancel()
    child = waits[next(iter(done))]
    return child.name, child.proc.returncode


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _main(args: argparse.Namespace) -> int:
    root = args.dir.resolve()
    plan = DemoPlan(
        media_dir=root / "media",
        run_dir=root / "run",
        hub_port=port_or_free(args.hub_port),
        status_port=port_or_free(args.status_port),
        media_port=port_or_free(args.media_port),
        new_box_status_port=port_or_free(args.new_box_status_port),
        audio_output="null" if args.no_audio or not has_audio_device() else "",
        video=has_screen() and not args.no_video,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await run_demo(plan, stop, play_seconds=args.seconds)
    except RuntimeError as exc:
        log.error("demo failed: %s", exc)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m djamms_edge.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("var/demo"), help="where the demo keeps its files")
    parser.add_argument("--hub-port", type=int, default=8700)
    parser.add_argument("--status-port", type=int, default=8080)
    parser.add_argument("--media-port", type=int, default=8701)
    parser.add_argument("--new-box-status-port", type=int, default=8081, help="the unpaired second box's page")
    parser.add_argument("--no-audio", action="store_true", help="play into ao=null even with a sound device")
    parser.add_argument("--no-video", action="store_true", help="audio only even with a screen")
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="stop by itself this long after playback starts (0 = Ctrl-C)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo: %(message)s", datefmt="%H:%M:%S")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
