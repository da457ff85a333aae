"""The engine's decisions, driven through the fake player, the real local queue and real SQLite state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.edge.player.engine import MAX_PLAYER_FAILURES_IN_A_ROW, EngineState, PlaybackEngine, PlayerBroken
from djamms_edge.edge.player.fake import FakePlayer
from djamms_edge.edge.player.resolver import Cue, Unplayable
from djamms_edge.edge.queue.config import QueueConfig
from djamms_edge.edge.queue.local import LocalQueue, playlist_entry
from djamms_edge.edge.queue.model import QueueEntry
from djamms_edge.edge.state import PlaybackState
from djamms_edge.shared.sqlite import Database
from tests.edge.player.conftest import headless_config
from tests.edge.sync.hubs import eventually

TRACK_SECONDS = 10.0


class StaticResolver:
    """Sources named in ``cues`` resolve; anything else is a missing file."""

    def __init__(self, cues: dict[str, Cue]) -> None:
        self.cues = cues
        self.downloading: set[str] = set()  # sources that are "not ready yet"
        self.calls = 0

    async def resolve(self, entry: QueueEntry) -> Cue:
        self.calls += 1
        if entry.source in self.downloading:
            raise Unplayable("not downloaded yet", retry_after=5.0)
        if entry.source not in self.cues:
            raise Unplayable("file missing")
        return self.cues[entry.source]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    engine: PlaybackEngine
    player: FakePlayer
    queue: LocalQueue
    state: PlaybackState
    resolver: StaticResolver
    clock: Clock
    task: asyncio.Task[None]
    root: Path

    async def play(self, seconds: float) -> None:
        """Let ``seconds`` of playback pass in small steps, letting the engine react between them."""
        while seconds > 0:
            step = min(0.5, seconds)
            self.clock.now += step
            self.player.advance(step)
            seconds -= step
            await self.settle()

    async def settle(self) -> None:
        await settle(self.engine, self.task)

    async def crash(self) -> None:
        """Save the position as the saver task would, then die: no close(), no goodbye."""
        await self.engine.save_position()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def played(self) -> list[tuple[str, str | None]]:
        return [(p.entry.title, p.end_reason) for p in await self.state.history()]


async def settle(engine: PlaybackEngine, task: asyncio.Task[None]) -> None:
    """Until the engine has handled everything sent to it: its task waits on an empty inbox for a few turns of the
    loop in a row (the fake player's events come with call_soon). A fixed 10 ms was not enough on a loaded box: the
    state database's threads took longer, and assertions ran before the engine had done its work."""
    for _ in range(20):  # other tasks watching the engine (the status page's source) get their turns too
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    deadline, quiet_turns = loop.time() + 10.0, 0
    while quiet_turns < 3:
        await asyncio.sleep(0.001)
        quiet_turns = quiet_turns + 1 if task.done() or _waiting_for_news(engine, task) else 0
        if loop.time() > deadline:
            raise AssertionError("the engine is still busy after 10 s")


def _waiting_for_news(engine: PlaybackEngine, task: asyncio.Task[None]) -> bool:
    """run() awaits wait_for(), which awaits the inbox's get() (directly, or in a task of its own), and the inbox is
    empty: anything else (handling an event, planning, a database round trip) awaits something else."""
    names: list[str] = []
    awaited: Any = task.get_coro()  # a coroutine chain, walked through CPython's cr_code/cr_await
    while awaited is not None and hasattr(awaited, "cr_code"):
        names.append(awaited.cr_code.co_name)
        awaited = awaited.cr_await
    return names[:2] == ["run", "wait_for"] and engine._inbox.empty()


TITLES = ("one", "two", "three")
MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[MakeRig]:
    made: list[tuple[Rig, Database]] = []
    media = {tmp_path / f"{t}.m4a": TRACK_SECONDS for t in TITLES}
    cues = {str(p): Cue(p, start=1.0, end=TRACK_SECONDS - 1.0) for p in media}

    async def make(titles: tuple[str, ...] = TITLES, clock: Clock | None = None, resolvable: tuple[str, ...] = (),
                   **config: object) -> Rig:
        """``resolvable``: titles that resolve although the player does not know them (it fails to open them)."""
        db = PlaybackState.database(tmp_path)
        await db.open()
        state = PlaybackState(db)
        clock = clock or Clock()
        playlist = [playlist_entry(str(tmp_path / f"{t}.m4a")) for t in titles]
        queue = LocalQueue(state, playlist, QueueConfig(repeat_window_s=0, artist_separation=0), clock=clock)
        player = FakePlayer(media)
        resolver = StaticResolver(cues | {str(tmp_path / f"{t}.m4a"): Cue(tmp_path / f"{t}.m4a") for t in resolvable})
        engine = PlaybackEngine(player, queue, resolver, state, headless_config(**config), clock=clock)
        await engine.start()
        task = asyncio.create_task(engine.run())
        rig = Rig(engine, player, queue, state, resolver, clock, task, tmp_path)
        made.append((rig, db))
        await rig.settle()
        return rig

    yield make
    for rig, db in made:
        rig.task.cancel()
        await asyncio.gather(rig.task, return_exceptions=True)
        await db.close()


async def test_plays_the_playlist_in_order_between_the_cue_offsets(rig_factory: MakeRig) -> None:
    rig = await rig_factory()
    assert rig.player.current is not None and rig.player.current.start == 1.0 and rig.player.current.end == 9.0
    await rig.play(8.0 * 3)
    assert await rig.played() == [("one", "finished"), ("two", "finished"), ("three", "finished"),
                                  ("one", None)]


async def test_a_paid_request_plays_next_and_only_once(rig_factory: MakeRig) -> None:
    rig = await rig_factory()
    await rig.play(2.0)
    await rig.queue.request(str(rig.root / "three.m4a"), title="paid")
    await rig.settle()
    assert [i.path.name for i in rig.player.upcoming] == ["three.m4a"]  # handed to the player before "one" ends
    await rig.play(8.0 * 3)
    assert [t for t, _ in await rig.played()] == ["one", "paid", "two", "three"]


async def test_the_next_entry_is_handed_over_while_the_current_one_plays(
    rig_factory: MakeRig,
) -> None:
    rig = await rig_factory()
    assert [i.path.name for i in rig.player.upcoming] == ["two.m4a"]
    await rig.play(8.5)
    assert rig.player.current is not None and rig.player.current.path.name == "two.m4a"
    assert [i.path.name for i in rig.player.upcoming] == ["three.m4a"]


async def test_a_missing_track_is_skipped_with_one_log_line_and_not_retried_at_once(
    rig_factory: MakeRig, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    rig = await rig_factory(titles=("one", "gone", "two"))
    await rig.play(8.0 * 4 - 1)
    assert [t for t, _ in await rig.played()] == ["one", "two", "one", "two"]
    skips = [r.getMessage() for r in caplog.records if "gone" in r.getMessage()]
    assert len(skips) == 1 and "file missing" in skips[0]
    assert list(await rig.state.unplayable_since(0)) == [str(rig.root / "gone.m4a")]


async def test_a_file_the_player_cannot_open_is_skipped(rig_factory: MakeRig) -> None:
    rig = await rig_factory()
    broken = rig.root / "two.m4a"
    del rig.player.media[broken]  # resolves fine, but the player fails on it: a corrupt file
    await rig.play(8.0 * 2 - 1)
    assert [t for t, _ in await rig.played()] == ["one", "three"]
    assert str(broken) in await rig.state.unplayable_since(0)


async def test_nothing_playable_is_idle_without_spinning(rig_factory: MakeRig) -> None:
    rig = await rig_factory(titles=("gone", "missing"))
    assert rig.engine.status().state is EngineState.IDLE
    calls = rig.resolver.calls
    await asyncio.sleep(0.3)
    assert rig.resolver.calls == calls  # waits for a queue change or the idle re-check, never polls
    rig.resolver.cues["gone-now-here"] = rig.resolver.cues[next(iter(rig.resolver.cues))]
    await rig.queue.request("gone-now-here", title="paid")
    # The request wakes it (a few state-database round trips, which a loaded box stretches). Waiting for it stays a
    # test of the wake-up: the idle re-check alone would come after idle_recheck_s (30 s).
    await eventually(lambda: rig.engine.status().state is EngineState.PLAYING, within=5.0)


async def test_skip_fades_and_records_the_skip(rig_factory: MakeRig) -> None:
    rig = await rig_factory(skip_fade_s=0.25)
    await rig.play(3.0)
    await rig.engine.skip()
    await rig.settle()
    assert rig.player.fades == [0.25]
    assert await rig.played() == [("one", "skipped"), ("two", None)]


async def test_pause_resume_and_volume_show_in_the_status(rig_factory: MakeRig) -> None:
    rig = await rig_factory()
    await rig.engine.pause()
    await rig.play(5.0)
    status = rig.engine.status()
    assert status.state is EngineState.PAUSED and status.now_playing is not None
    assert status.now_playing.position == 1.0
    await rig.engine.save_position()
    before = await rig.state.in_progress()
    rig.clock.now += 10
    await rig.engine.save_position()  # paused: nothing moved, nothing written
    after = await rig.state.in_progress()
    assert before is not None and after is not None and after.saved_at == before.saved_at
    await rig.engine.resume()
    await rig.engine.set_volume(35)
    await rig.play(2.0)
    status = rig.engine.status()
    assert status.state is EngineState.PLAYING and status.volume == 35
    assert status.now_playing is not None and status.now_playing.position == 3.0


async def test_after_a_crash_the_same_play_resumes_where_it_was(rig_factory: MakeRig) -> None:
    clock = Clock()
    first = await rig_factory(clock=clock)
    await first.play(6.3)
    await first.crash()

    second = await rig_factory(clock=clock)
    assert second.player.current is not None and second.player.current.path.name == "one.m4a"
    assert second.player.current.start == pytest.approx(7.3)
    await second.play(0.5)
    shown = second.engine.status().now_playing  # the status page's progress still counts from the cue-in
    assert shown is not None and (shown.start, shown.position) == (pytest.approx(1.0), pytest.approx(7.8))
    await second.play(8.0 * 2 - 0.5)
    history = await second.state.history()
    assert [(p.entry.title, p.resumes, p.end_reason) for p in history] == [
        ("one", 1, "finished"), ("two", 0, "finished"), ("three", 0, None),
    ]
    assert history[0].resumed_from == pytest.approx(7.3)


async def test_a_play_saved_at_its_end_is_not_replayed_after_a_restart(rig_factory: MakeRig) -> None:
    clock = Clock()
    first = await rig_factory(clock=clock)
    await first.play(7.5)
    await first.crash()  # saved at 8.5 s: within a second of the 9 s cue-out

    second = await rig_factory(clock=clock)
    assert second.player.current is not None and second.player.current.path.name == "two.m4a"
    assert await second.played() == [("one", "finished"), ("two", None)]


async def test_a_play_that_dies_each_time_it_resumes_is_given_up_and_the_music_goes_on(rig_factory: MakeRig) -> None:
    """A file that crashes libmpv (in the daemon) at one spot: the daemon dies, restarts, resumes there, dies."""
    clock = Clock()
    rig = await rig_factory(clock=clock)
    await rig.play(3.0)
    await rig.crash()
    for resumes in (1, 2):
        rig = await rig_factory(clock=clock)
        assert rig.player.current is not None and rig.player.current.path.name == "one.m4a", resumes
        await rig.play(0.5)
        await rig.crash()
    rig = await rig_factory(clock=clock)
    assert rig.player.current is not None and rig.player.current.path.name == "two.m4a"
    history = await rig.state.history()
    assert [(p.entry.title, p.resumes, p.end_reason) for p in history] == [("one", 2, "failed"), ("two", 0, None)]


async def test_a_play_that_gets_further_after_each_restart_or_is_paused_is_resumed_every_time(
    rig_factory: MakeRig,
) -> None:
    clock = Clock()
    rig = await rig_factory(clock=clock, position_save_s=0.2)  # "further": more than 2 saves + 1 s
    await rig.play(1.0)
    for _ in range(3):  # power cuts, not a crashing file: each restart got 1.6 s further
        await rig.crash()
        rig = await rig_factory(clock=clock, position_save_s=0.2)
        await rig.play(1.6)
    assert rig.player.current is not None and rig.player.current.path.name == "one.m4a"
    await rig.engine.pause()
    for _ in range(3):  # paused: no progress, but not a crash at one spot either
        await rig.crash()
        rig = await rig_factory(clock=clock, position_save_s=0.2)
    assert rig.player.current is not None and rig.player.current.path.name == "one.m4a" and rig.player.paused
    assert [(p.entry.title, p.resumes, p.end_reason) for p in await rig.state.history()] == [("one", 6, None)]


async def test_halting_stops_at_once_and_enabling_plays_again(rig_factory: MakeRig) -> None:
    rig = await rig_factory()
    await rig.play(2.0)
    rig.engine.set_active(False)
    await rig.settle()
    assert rig.player.current is None and rig.engine.status().state is EngineState.HALTED
    rig.engine.set_active(True)
    await rig.settle()
    assert rig.engine.status().state is EngineState.PLAYING
    assert await rig.played() == [("one", "stopped"), ("two", None)]


async def test_an_entry_not_downloaded_yet_is_passed_over_not_failed_and_plays_once_ready(
    rig_factory: MakeRig, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="djamms_edge.edge.player.engine")
    rig = await rig_factory()
    paid_source = str(rig.root / "three.m4a")
    rig.resolver.downloading.add(paid_source)
    await rig.queue.request(paid_source, title="paid")
    await rig.settle()
    assert [i.path.name for i in rig.player.upcoming] == ["two.m4a"]  # the main queue goes on meanwhile
    await rig.play(8.0)  # "two" starts; the paid request keeps waiting, not failed
    assert await rig.state.waiting_requests() != []
    rig.resolver.downloading.clear()  # the download finished, long before the 5 s retry
    rig.engine.wake()
    await rig.settle()
    assert [i.path.name for i in rig.player.upcoming] == ["one.m4a"]  # a plain wake does not re-ask
    rig.engine.media_ready()  # what the prefetcher says when a download finishes
    await rig.settle()
    assert [i.path.name for i in rig.player.upcoming] == ["three.m4a"]
    await rig.play(8.0)
    assert [t for t, _ in await rig.played()] == ["one", "two", "paid"]
    passed_over = [r.getMessage() for r in caplog.records if "passing over 'paid'" in r.getMessage()]
    assert len(passed_over) == 1  # one line, not one per retry


async def test_a_paid_request_interrupted_by_a_crash_resumes_and_plays_once(rig_factory: MakeRig) -> None:
    clock = Clock()
    first = await rig_factory(clock=clock)
    await first.queue.request(str(first.root / "three.m4a"), title="paid")
    await first.play(8.0 + 3.0)  # "one" ends, the paid request plays for 3 s
    await first.crash()

    second = await rig_factory(clock=clock)
    assert second.player.current is not None and second.player.current.start == pytest.approx(4.0)
    await second.play(5.0 + 8.0 * 2)
    history = await second.state.history()
    assert [(p.entry.title, p.resumes) for p in history][:4] == [("one", 0), ("paid", 1), ("two", 0), ("three", 0)]
    assert await second.state.waiting_requests() == []


async def test_a_player_that_fails_every_track_takes_the_engine_down(rig_factory: MakeRig) -> None:
    """Tracks that resolve but all fail in the player: blame the player; the daemon exits and is restarted."""
    titles = tuple(f"t{i}" for i in range(MAX_PLAYER_FAILURES_IN_A_ROW + 2))
    rig = await rig_factory(titles=titles, resolvable=titles)
    with pytest.raises(PlayerBroken):
        async with asyncio.timeout(5):
            await rig.task
    assert len(await rig.state.unplayable_since(0)) == MAX_PLAYER_FAILURES_IN_A_ROW - 1


class Rotation:
    """A playlist repeating without end under a new entry id each time round, as the hub replica's offline
    rotation does; failures are not remembered (the replica forgets nothing the hub has not confirmed)."""

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        self.listeners: list[Callable[[], None]] = []

    async def upcoming(self, count: int) -> list[QueueEntry]:
        return [QueueEntry(f"e{n}", self.sources[n % len(self.sources)], title=f"t{n % len(self.sources)}")
                for n in range(count)]

    async def started(self, entry: QueueEntry) -> None: ...

    async def finished(self, entry: QueueEntry, outcome: object, detail: str = "") -> None: ...

    async def request_limit(self) -> float | None:
        return None  # a playlist has no paid requests to limit

    async def refused(self, entry: QueueEntry, measured_s: float) -> None: ...

    def subscribe(self, on_change: Callable[[], None]) -> None:
        self.listeners.append(on_change)


@pytest.mark.parametrize(
    ("downloading", "expected"),
    [(True, "passing over"), (False, "gave up planning")],
    ids=["not-downloaded", "all-broken"],
)
async def test_a_queue_that_cannot_play_logs_each_state_change_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, downloading: bool, expected: str,
) -> None:
    caplog.set_level(logging.INFO, logger="djamms_edge.edge.player.engine")
    sources = [str(tmp_path / f"{n}.m4a") for n in range(3)]
    resolver = StaticResolver({})  # nothing resolves: missing files, or downloads still running
    if downloading:
        resolver.downloading.update(sources)
    db = PlaybackState.database(tmp_path)
    await db.open()
    clock = Clock()
    engine = PlaybackEngine(FakePlayer({}), Rotation(sources), resolver, PlaybackState(db), headless_config(),
                            clock=clock)
    await engine.start()
    task = asyncio.create_task(engine.run())
    try:
        for _ in range(10):  # queue changes, replans, downloads coming due again
            engine.wake()
            engine.media_ready()
            clock.now += 6.0
            await settle(engine, task)
        assert engine.status().state is EngineState.IDLE
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.close()
    lines = [r.getMessage() for r in caplog.records if expected in r.getMessage()]
    assert len(lines) == (len(sources) if downloading else 1), lines
