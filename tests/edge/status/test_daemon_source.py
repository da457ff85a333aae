"""DaemonStatusSource over the real engine, local queue and SQLite state (the player is the fake)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from djamms_edge.edge.night_analysis import Progress
from djamms_edge.edge.player.engine import EngineState
from djamms_edge.edge.status.config import StatusConfig
from djamms_edge.edge.status.daemon_source import DaemonStatusSource, LinkState, link_state, serve_status_page
from djamms_edge.edge.status.model import AnalysisProgress, CacheUse, ControlRefused
from djamms_edge.edge.sync.lease import LeaseState
from djamms_edge.edge.sync.lease import Role as LeaseRole
from tests.edge.player.test_engine import MakeRig, Rig
from tests.edge.player.test_engine import rig_factory as rig_factory  # the engine harness fixture


@pytest.mark.parametrize(
    ("engine", "lease", "expected"),
    [
        (EngineState.PLAYING, None, LinkState("master", connected=False)),  # no hub: the box is its own master
        (EngineState.HALTED, None, LinkState("standby", connected=False)),
        (EngineState.PLAYING, LeaseState("box", LeaseRole.MASTER), LinkState("master", connected=True)),
        (EngineState.PLAYING, LeaseState("box", LeaseRole.MASTER_OFFLINE, hub_ok=False), LinkState("master", False)),
        (EngineState.HALTED, LeaseState("box", LeaseRole.STANDBY), LinkState("standby", connected=True)),
        (EngineState.IDLE, LeaseState("box", LeaseRole.STARTING, hub_ok=False), LinkState("offline", False)),
        (EngineState.HALTED, LeaseState("box", LeaseRole.STOPPED), LinkState("offline", connected=True)),
    ],
)
def test_role_and_hub_link(engine: EngineState, lease: LeaseState | None, expected: LinkState) -> None:
    assert link_state(engine, lease) == expected


@pytest.fixture
async def watched(rig_factory: MakeRig) -> AsyncIterator[tuple[Rig, DaemonStatusSource]]:
    rig = await rig_factory()
    source = DaemonStatusSource(rig.engine, rig.queue, venue_id="v", device_id="d", clock=rig.clock)
    await source.start()
    await rig.settle()
    yield rig, source
    await source.close()


async def test_snapshot_shows_the_play_and_the_queue(watched: tuple[Rig, DaemonStatusSource]) -> None:
    rig, source = watched
    await rig.play(2.0)
    snap = source.snapshot()
    assert snap.now_playing is not None
    assert (snap.now_playing.title, snap.now_playing.real_start, snap.now_playing.real_end) == ("one", 1.0, 9.0)
    assert snap.now_playing.position == pytest.approx(3.0)
    assert [item.title for item in snap.main_queue][:2] == ["two", "three"]
    assert snap.priority_queue == ()

    seen = snap.version
    await rig.queue.request(str(rig.root / "three.m4a"), title="paid", requested_by="table 4")
    assert await asyncio.wait_for(source.wait_changed(seen), 2) > seen
    await rig.settle()
    assert [(i.title, i.requested_by) for i in source.snapshot().priority_queue] == [("paid", "table 4")]


async def test_controls_act_on_the_engine(watched: tuple[Rig, DaemonStatusSource]) -> None:
    rig, source = watched
    await source.pause()
    await rig.settle()
    snap = source.snapshot()
    assert snap.now_playing is not None and snap.now_playing.paused
    await source.resume()
    await source.set_volume(40.0)
    await rig.settle()
    assert source.snapshot().volume == 40.0
    await source.skip()
    await rig.play(1.0)
    assert (await rig.played())[0] == ("one", "skipped")


async def test_a_halted_box_refuses_transport_controls(watched: tuple[Rig, DaemonStatusSource]) -> None:
    rig, source = watched
    rig.engine.set_active(False)
    await rig.settle()
    for control in (source.skip, source.pause, source.resume):
        with pytest.raises(ControlRefused, match="standby"):
            await control()


async def test_daemon_warnings_become_recent_errors(watched: tuple[Rig, DaemonStatusSource]) -> None:
    _rig, source = watched
    seen = source.snapshot().version
    logging.getLogger("djamms_edge.edge.player.engine").warning("skipping 'x': file missing")
    assert await asyncio.wait_for(source.wait_changed(seen), 2) > seen
    snap = source.snapshot()
    assert snap.recent_errors[-1].message == "skipping 'x': file missing"
    assert snap.errors_total >= 1


async def test_a_taken_port_leaves_the_daemon_running_without_a_page(
    rig_factory: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = await rig_factory()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = StatusConfig(port=taken.getsockname()[1])
        source = DaemonStatusSource(rig.engine, rig.queue, venue_id="v", device_id="d")
        async with serve_status_page(config, source) as server:
            assert server is None
            await rig.play(1.0)
            assert rig.engine.status().state is EngineState.PLAYING
    assert "status page not started" in caplog.text


async def test_lease_and_cache_changes_reach_the_page(rig_factory: MakeRig) -> None:
    rig = await rig_factory()
    lease = LeaseState("box", LeaseRole.MASTER)
    usage = (12, 3_000_000)

    async def cache_usage() -> tuple[int, int]:
        return usage

    source = DaemonStatusSource(
        rig.engine,
        rig.queue,
        venue_id="v",
        device_id="d",
        lease=lambda: lease,
        cache_usage=cache_usage,
        cache_cap_bytes=8_000_000,
    )
    await source.start()
    try:
        await rig.settle()
        snap = source.snapshot()
        assert (snap.role, snap.hub.connected, snap.hub.configured) == ("master", True, True)
        assert snap.cache == CacheUse(bytes_used=3_000_000, bytes_cap=8_000_000, files=12)

        lease = LeaseState("box", LeaseRole.MASTER_OFFLINE, hub_ok=False)
        seen = snap.version
        await asyncio.wait_for(source.wait_changed(seen), 3)  # noticed within the one-second check
        snap = source.snapshot()
        assert (snap.role, snap.hub.connected, snap.hub.detail) == ("master", False, "hub unreachable")
    finally:
        await source.close()


async def test_night_analysis_progress_reaches_the_page(rig_factory: MakeRig) -> None:
    rig = await rig_factory()
    progress = Progress()
    source = DaemonStatusSource(rig.engine, rig.queue, venue_id="v", device_id="d", analysis=lambda: progress)
    await source.start()
    try:
        await rig.settle()
        assert source.snapshot().analysis == AnalysisProgress(done=0, total=0, running=False)
        progress = Progress(total=12, state="analysing")  # a new round replaces the progress object
        progress.done = 5
        wanted = AnalysisProgress(done=5, total=12, running=True)
        async with asyncio.timeout(3):  # noticed within the one-second check, with a change for live clients
            seen = 0
            while source.snapshot().analysis != wanted:
                seen = await source.wait_changed(seen)
    finally:
        await source.close()


async def test_a_take_over_shows_on_the_page_at_once(rig_factory: MakeRig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The role follows the lease the moment it changes (a standby taking over is master on its page at
    once, and live pages are told), not at the next poll of the lease."""
    from djamms_edge.edge.status import daemon_source

    monkeypatch.setattr(daemon_source, "LEASE_CHECK_S", 3600.0)  # no poll to lean on: only the listener
    rig = await rig_factory()
    lease = LeaseState("box", LeaseRole.STANDBY)
    listeners: list[Callable[[], None]] = []
    source = DaemonStatusSource(rig.engine, rig.queue, venue_id="v", device_id="d", lease=lambda: lease,
                                lease_changes=listeners.append)
    await source.start()
    try:
        await rig.settle()
        assert source.snapshot().role == "standby"
        seen = source.snapshot().version
        lease = LeaseState("box", LeaseRole.MASTER)  # what EdgeSync.handle does on a take-over, then it tells
        for listener in listeners:
            listener()
        assert source.snapshot().role == "master"
        await asyncio.wait_for(source.wait_changed(seen), 0.1)  # live pages are woken now
    finally:
        await source.close()
