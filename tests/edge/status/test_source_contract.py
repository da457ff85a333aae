"""One contract for every StatusSource: the fake the page tests use, and the daemon's adapter.

If the fake drifted from what the daemon really does (a control that does not bump the
version, a pause that does not show), the page tests would prove nothing; this suite
holds both to the same behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from djamms_edge.edge.status.daemon_source import DaemonStatusSource
from djamms_edge.edge.status.fake import FakeStatusSource
from djamms_edge.edge.status.model import NowPlaying, StatusSource
from tests.edge.player.test_engine import MakeRig
from tests.edge.player.test_engine import rig_factory as rig_factory  # the engine harness fixture


@dataclass
class Subject:
    source: StatusSource
    let_time_pass: Callable[[float], Awaitable[None]]  # playback seconds (a skip's fade, for the engine)


@pytest.fixture(params=["fake", "daemon"])
async def subject(request: pytest.FixtureRequest, rig_factory: MakeRig) -> AsyncIterator[Subject]:
    if request.param == "fake":

        async def nothing(_seconds: float) -> None:
            await asyncio.sleep(0)

        yield Subject(FakeStatusSource(), nothing)
        return
    rig = await rig_factory()
    source = DaemonStatusSource(rig.engine, rig.queue, venue_id="v", device_id="d", clock=rig.clock)
    await source.start()
    await rig.settle()
    yield Subject(source, rig.play)
    await source.close()


async def _changed(source: StatusSource, after: int) -> int:
    return await asyncio.wait_for(source.wait_changed(after), 2)


def _playing(source: StatusSource) -> NowPlaying:
    playing = source.snapshot().now_playing
    assert playing is not None
    return playing


async def test_a_waiter_is_not_woken_without_a_change(subject: Subject) -> None:
    version = subject.source.snapshot().version
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subject.source.wait_changed(version), 0.2)
    assert await _changed(subject.source, version - 1) == version  # an older version returns at once


async def test_pause_and_resume_show_and_bump_the_version(subject: Subject) -> None:
    source = subject.source
    assert not _playing(source).paused
    version = source.snapshot().version
    await source.pause()
    version = await _changed(source, version)
    assert _playing(source).paused
    await source.resume()
    await _changed(source, version)
    assert not _playing(source).paused


async def test_volume_shows(subject: Subject) -> None:
    version = subject.source.snapshot().version
    await subject.source.set_volume(37.0)
    await _changed(subject.source, version)
    assert subject.source.snapshot().volume == 37.0


async def test_skip_moves_to_another_entry(subject: Subject) -> None:
    source = subject.source
    before, version = _playing(source), source.snapshot().version
    await source.skip()
    await subject.let_time_pass(1.0)
    await _changed(source, version)
    after = _playing(source)
    assert after.entry_id != before.entry_id
    assert after.real_start <= after.position <= after.real_end
