"""``djamms-edge run``: the one function that builds the daemon from config and runs it.

Subsystems start in order (state database, player + engine, background tasks) and stop in
reverse from one exit stack, so SIGTERM (systemd), Ctrl-C and a dying subsystem all take
the same path out. A background task that dies takes the daemon down with exit status 1 and
systemd restarts it, rather than leaving a box that looks alive and plays nothing.

Without a hub the queue is the local playlist from ``[edge.queue]``. The media cache (and
its prefetcher) is opened when something must be downloaded: with a hub, or when the
playlist names video ids or URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from djamms_edge.config import Config
from djamms_edge.edge.box_profile import this_box, with_box_profile
from djamms_edge.edge.describer import PendingDescriber
from djamms_edge.edge.device import device_id
from djamms_edge.edge.disk_trouble import DiskTrouble
from djamms_edge.edge.doctor import BoxDoctor
from djamms_edge.edge.night_analysis import night_analyzer, report_to
from djamms_edge.edge.pairing import forget_credentials, needs_pairing, paired_config
from djamms_edge.edge.player.api import Player
from djamms_edge.edge.player.engine import PlaybackEngine
from djamms_edge.edge.player.mpv_player import MpvPlayer
from djamms_edge.edge.player.prefetch import CACHE_DIRECTORY, keep_prefetched, needs_cache, open_media_cache
from djamms_edge.edge.player.request_qr import configured as configured_qr
from djamms_edge.edge.player.resolver import CachedMediaResolver, LocalFileResolver, TrackResolver
from djamms_edge.edge.queue.local import LocalQueue, PlaylistError, load_playlist
from djamms_edge.edge.queue.model import QueueEntry
from djamms_edge.edge.queue.source import QueueSource
from djamms_edge.edge.state import PlaybackState
from djamms_edge.edge.status.daemon_source import DaemonStatusSource, serve_status_page
from djamms_edge.edge.sync.errors import CredentialsRefused
from djamms_edge.edge.sync.link import HubLink, open_hub_link
from djamms_edge.shared.cli import add_config_option, load_or_exit
from djamms_edge.shared.logs import setup_logging
from djamms_edge.shared.sqlite import Database
from djamms_edge.shared.systemd_notify import ServiceNotifier, start_watchdog
from djamms_edge.shared.tasks import TaskOwner

log = logging.getLogger(__name__)
T = TypeVar("T")

# What the box does while the disk refuses each area's writes (full, read-only): edge/disk_trouble.py.
WITHOUT_WRITES = {
    "playback.db": "The music plays on, but what plays is not kept in the history and a restart does not resume it",
    "sync.db": "The music plays on, but changes to the hub's queue (new paid requests) do not reach this box and "
               "what it plays is not reported",
    "media.db": "Cached songs play on; nothing new is downloaded",
    CACHE_DIRECTORY: "Cached songs play on; nothing new is downloaded",
}


def add_run_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the daemon: play the queue (the local playlist without a hub)")
    add_config_option(parser)


def run_command(args: argparse.Namespace) -> int:
    tune_malloc()
    config = with_device_id(load_or_exit(args.config))
    edge = config.edge
    # In the journal every line carries the venue and box: `journalctl VENUE=… DEVICE=…` across a fleet.
    fields = {"VENUE": edge.venue_id, "DEVICE": edge.device_id}
    setup_logging(edge.log_level, program="djamms-edge", journal_fields=fields)
    return asyncio.run(run_daemon(config))


def tune_malloc(arenas: int = 2, threshold: int = 128 * 1024) -> None:
    """glibc malloc settings for a process that plays for weeks, set before any thread starts.

    - At most ``arenas`` arenas (one per thread by default, up to 8 per core): each thread that ever allocated
      (SQLite's, the executor's, libmpv's) keeps an arena's worth of RSS. bench/transitions.py: 1.5 MiB less
      while playing, ~4 MiB less after downloads and analyses.
    - Fixed mmap and trim thresholds (glibc's defaults, 128 KiB). Left dynamic, the first free of a large
      mmapped block raises both: libmpv frees a 10 MiB buffer when the doctor's probe player closes at start
      (strace -k: libmpv -> free -> munmap of 10 MiB), after which blocks up to 10 MiB come from the heap and up
      to 20 MiB of free heap is never given back. bench/transitions.py, packaged: 110.2 -> 101.0 MiB while
      playing; the +10 MiB that came at the first track change (~120 MiB after a minute) no longer does.

    Not glibc: as is."""
    import ctypes

    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # glibc's malloc.h
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        for option, value in ((m_arena_max, arenas), (m_mmap_threshold, threshold), (m_trim_threshold, threshold)):
            libc.mallopt(option, value)


def with_device_id(config: Config) -> Config:
    """The config with ``edge.device_id`` filled in (derived from the machine id when not configured), so the
    hub registry, the status page and the logs all name this box the same way."""
    if config.edge.device_id:
        return config
    return replace(config, edge=replace(config.edge, device_id=device_id(config.edge.device_id)))


def playlist_entries(config: Config) -> list[QueueEntry]:
    """The configured local playlist; a playlist that cannot be read is one error line and an empty queue."""
    if not config.edge.queue.playlist:
        return []
    path = Path(config.edge.queue.playlist)
    try:
        entries = load_playlist(path)
    except PlaylistError as exc:
        log.error("%s; nothing to play until it is fixed", exc)
        return []
    log.info("playlist %s: %d tracks", path, len(entries))
    return entries


async def run_daemon(config: Config, stop: asyncio.Event | None = None) -> int:
    """Run until ``stop`` is set, SIGTERM/SIGINT arrives, or a subsystem dies (exit status 1).

    A box with a hub and no device token pairs first (edge/pairing.py): its code on the status page and
    the TV until staff enter it in the console."""
    profile = this_box(config.edge.box_profile)
    config = with_box_profile(with_device_id(config), profile)
    edge = config.edge
    log.info("box profile %s (%s): fetches %s first, mpv hwdec=%s", profile.name, profile.why,
             "/".join(edge.fetch.video_codecs), edge.player.hwdec)  # fmt: skip
    stop = stop or asyncio.Event()
    notifier = ServiceNotifier()
    tasks = TaskOwner("edge")
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(_signals_set(stop))
        stack.callback(notifier.close)
        paired = needs_pairing(edge)
        if paired:
            found = await _pair(config, notifier, stop)
            if found is None:
                return 0
            edge = found.edge

        trouble = DiskTrouble(WITHOUT_WRITES)  # writes the disk refuses: the music goes on, staff are told
        stack.push_async_callback(trouble.close)
        db = PlaybackState.database(edge.state_dir)
        await db.open()
        stack.push_async_callback(db.close)
        trouble.watch(db)
        state = PlaybackState(db)

        # With a hub the queue is the hub's (mirrored locally) and the player starts halted until the lease says play.
        link = await stack.enter_async_context(open_hub_link(edge)) if edge.hub.url else None
        if link is not None:
            sync = link.sync
            trouble.report_to(lambda problem: sync.report_error("disk", problem))
            trouble.watch(link.sync.db)
        playlist = [] if link else playlist_entries(config)
        queue: QueueSource = link.queue if link else LocalQueue(state, playlist, edge.queue)
        target, max_gain = edge.player.loudness_target_lufs, edge.player.max_gain_db
        resolver: TrackResolver = LocalFileResolver(edge.analysis, target_lufs=target, max_gain_db=max_gain)
        cache = None
        if link is not None or needs_cache([e.source for e in playlist]):
            cache = await stack.enter_async_context(open_media_cache(
                edge, report_to(link.sync) if link else None, link.sync.report_details if link else None))
            resolver = CachedMediaResolver(cache, resolver, target_lufs=target, max_gain_db=max_gain)
            trouble.watch(cache.database)
        # The doctor's probe opens the audio output and the screen: before the player holds them.
        doctor = BoxDoctor(edge, on_change=lambda report: notifier.status(report.status_line()))

        def problems() -> list[str]:  # what the status page, the hub's heartbeat and systemd's status line show
            return [*trouble.problems(), *doctor.problems()]

        trouble.subscribe(lambda: notifier.status(problems()[0] if trouble.problems() else doctor.report.status_line()))
        await doctor.examine_box(fetching=cache is not None)
        engine = PlaybackEngine(MpvPlayer(edge.player), queue, resolver, state, edge.player, active=link is None)
        stack.push_async_callback(engine.close)
        await engine.start()
        request_qr = configured_qr(edge.player, edge.hub.url, edge.venue_id)
        if request_qr is not None:
            engine.player.show_request_qr(request_qr)
        elif edge.player.show_request_qr:
            log.warning("show_request_qr is on, but there is no hub URL or request_qr_url to put in the code")
        if link is not None:
            link.attach(engine)
            link.reporter.problems = problems  # the venue's dashboard shows them too
            link.sync.paired = paired
            await link.start()
            stack.push_async_callback(link.stop)  # on the way out: halt and release before the player closes
        await report_damaged_state({
            db: "the play history, the resume point and staff volume/pause were lost",
            **({link.sync.db: "the queue replica is loaded from the hub again; reports not yet sent were lost"}
               if link else {}),
            **({cache.database: "the cache index was rebuilt from the media files on disk"} if cache else {}),
        }, link)
        night = night_analyzer(cache, edge.night_analysis, engine, link.sync if link else None) if cache else None
        await stack.enter_async_context(
            serve_status_page(
                edge.status,
                DaemonStatusSource(
                    engine, queue, venue_id=edge.venue_id, device_id=edge.device_id,
                    lease=link.lease if link else None, lease_changes=link.subscribe_lease if link else None,
                    cache_usage=cache.usage if cache else None,
                    cache_cap_bytes=edge.cache.max_bytes, analysis=(lambda: night.progress) if night else None,
                    problems=problems, hub_refusal=link.refusal if link else None,
                ),
            )
        )

        stack.push_async_callback(tasks.close)
        tasks.start(engine.run(), "playback")
        tasks.start(engine.save_positions(), "position-saver")
        if cache is not None:
            protect = edge.cache.prefetch_count + edge.player.lookahead
            tasks.start(keep_prefetched(queue, cache, engine, fetch=edge.cache.prefetch_count, protect=protect,
                                        slow_after_s=edge.cache.slow_fetch_seconds, trouble=trouble), "prefetch")
        if night is not None:
            tasks.start(night.run(), "night-analysis")
        if cache is not None and link is not None:  # songs added by URL alone, described before they play
            describer = PendingDescriber(link.sync.api.pending_songs, cache.describe, link.sync.report_details)
            tasks.start(describer.run(), "describer")
        tasks.start(doctor.follow_hub(), "doctor")
        start_watchdog(tasks, notifier, health_check(tasks, engine.player))

        playing = "playing" if engine.status().now_playing or engine.status().upcoming else "idle"
        notifier.ready(f"{playing}; {doctor.report.status_line()}" if doctor.report.problems else playing)
        log.info("edge daemon running (state in %s)", edge.state_dir)
        await _first_of(stop.wait(), tasks.failed.wait(), *([link.sync.failed.wait()] if link else []))
        failure = tasks.failure or (link.sync.failure if link else None)
        if isinstance(failure, CredentialsRefused) and paired and forget_credentials(edge.state_dir):
            log.error("%s: the stored pairing is forgotten; the next start shows a new pairing code", failure)
        elif failure is not None:
            log.error("stopping: a subsystem died (%r)", failure)
        notifier.stopping()
        log.info("edge daemon stopping")
    return 1 if failure is not None else 0


async def report_damaged_state(consequences: dict[Database, str], link: HubLink | None) -> None:
    """A state file found damaged at open (moved aside, started afresh): one log line saying what it cost, and
    a device error for the venue's staff through the outbox (it reaches the hub once it answers)."""
    for database, consequence in consequences.items():
        if database.damaged is None:
            continue
        message = (f"damaged ({database.damaged.problem}); kept as {database.damaged.kept_as.name} and started "
                   f"afresh: {consequence}")
        log.error("%s %s", database.path.name, message)
        if link is not None:
            await link.sync.report_error(database.path.name, message)


def health_check(tasks: TaskOwner, player: Player) -> Callable[[], Awaitable[bool]]:
    """The watchdog's question: no subsystem died, and the player answers (a stuck libmpv does not, and the
    watchdog's timeout turns that into withheld pings: systemd restarts us)."""

    async def healthy() -> bool:
        if tasks.failed.is_set():
            return False
        await player.probe()
        return True

    return healthy


async def _pair(config: Config, notifier: ServiceNotifier, stop: asyncio.Event) -> Config | None:
    """The config with stored or newly paired credentials; None when stopped first. Waiting for staff is
    not a failed start: systemd hears "ready" and its watchdog pings meanwhile."""
    pairing = TaskOwner("pairing")
    notifier.ready("pairing: a code, if one is needed, is on the status page and the screen")
    start_watchdog(pairing, notifier, _alive)
    try:
        return await _unless_stopped(paired_config(config, lambda: MpvPlayer(config.edge.player)), stop)
    finally:
        await pairing.close()


async def _alive() -> bool:
    return True


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None when ``stop`` came first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def _first_of(*awaitables: Coroutine[Any, Any, Any]) -> None:
    waiting = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in waiting:
            future.cancel()


@contextlib.asynccontextmanager
async def _signals_set(stop: asyncio.Event) -> AsyncIterator[None]:
    """SIGTERM and SIGINT (Ctrl-C) both just set ``stop``: one way out."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
