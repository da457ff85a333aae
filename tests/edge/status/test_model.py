"""The snapshot's pure parts: position advancing, and change notification."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math

import pytest

from djamms_edge.edge.status.fake import sample_snapshot
from djamms_edge.edge.status.model import ChangeCounter, NowPlaying, snapshot_to_json

NOW = 1_000_000.0


def _playing(position: float, position_at: float, paused: bool) -> NowPlaying:
    np = sample_snapshot(NOW).now_playing
    assert np is not None
    return dataclasses.replace(np, position=position, position_at=position_at, paused=paused, real_end=200.0)


@pytest.mark.parametrize(
    ("position", "sampled_at", "paused", "now", "expected"),
    [
        (42.0, NOW, False, NOW + 3.5, 45.5),  # advances with the clock
        (42.0, NOW, True, NOW + 3.5, 42.0),  # a paused track stays put
        (199.0, NOW, False, NOW + 10, 200.0),  # never past realEndOffset
        (42.0, NOW, False, NOW - 5, 42.0),  # a clock that stepped back does not rewind
    ],
)
def test_position_when(position: float, sampled_at: float, paused: bool, now: float, expected: float) -> None:
    assert _playing(position, sampled_at, paused).position_when(now) == pytest.approx(expected)


async def test_a_waiter_wakes_on_the_next_change_only() -> None:
    changes = ChangeCounter()
    waiter = asyncio.create_task(changes.wait(0))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    changes.bump()
    assert await asyncio.wait_for(waiter, 1) == 1


async def test_a_burst_of_changes_reaches_a_slow_waiter_as_one_newest_version() -> None:
    changes = ChangeCounter()
    for _ in range(5):
        changes.bump()
    # A client that last saw version 2 is told the newest version at once, without waiting.
    assert await asyncio.wait_for(changes.wait(2), 1) == 5


def test_json_never_carries_nan_or_infinity() -> None:
    playing = _playing(42.0, NOW, paused=False)
    snapshot = dataclasses.replace(
        sample_snapshot(NOW), now_playing=dataclasses.replace(playing, duration=math.inf), volume=math.nan
    )
    text = json.dumps(snapshot_to_json(snapshot, NOW), allow_nan=False)  # raises on NaN/Infinity
    body = json.loads(text)
    assert (body["now_playing"]["duration"], body["volume"]) == (None, None)
    assert body["now_playing"]["position"] == 42.0
