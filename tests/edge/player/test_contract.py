"""One suite, two players: real libmpv (ao=null, real time, no video) and the fake must behave alike."""

from __future__ import annotations

import asyncio

import pytest

from djamms_edge.edge.player.api import Ended, EndReason, Failed, PlaybackItem, Started
from djamms_edge.edge.player.request_qr import QrPlacement, RequestQr
from tests.edge.player.conftest import Harness, Media


def item(play_id: str, path: object, **kw: float) -> PlaybackItem:
    return PlaybackItem(play_id=play_id, path=path, **kw)  # type: ignore[arg-type]


async def test_items_play_in_order_each_started_then_finished(harness: Harness, media: Media) -> None:
    harness.player.set_upcoming([item("a", media.short[0]), item("b", media.short[1])])
    assert await harness.take(4) == [
        Started("a"), Ended("a", EndReason.FINISHED), Started("b"), Ended("b", EndReason.FINISHED),
    ]
    assert harness.player.position() is None


async def test_missing_and_corrupt_files_fail_and_the_next_one_plays(harness: Harness, media: Media) -> None:
    harness.player.set_upcoming([item("gone", media.missing), item("bad", media.corrupt), item("ok", media.short[0])])
    events = await harness.take(4)
    assert [type(e) for e in events[:2]] == [Failed, Failed]
    assert [e.play_id for e in events[:2]] == ["gone", "bad"]
    assert events[2:] == [Started("ok"), Ended("ok", EndReason.FINISHED)]


async def test_replacing_the_upcoming_items_plays_the_new_ones_only(harness: Harness, media: Media) -> None:
    harness.player.set_upcoming([item("a", media.short[0]), item("b", media.short[1])])
    assert await harness.next_event() == Started("a")
    harness.player.set_upcoming([item("c", media.short[2])])
    assert await harness.take(3) == [Ended("a", EndReason.FINISHED), Started("c"), Ended("c", EndReason.FINISHED)]


async def test_keeping_the_same_upcoming_item_does_not_restart_it(harness: Harness, media: Media) -> None:
    upcoming = [item("a", media.short[0]), item("b", media.short[1])]
    harness.player.set_upcoming(upcoming)
    assert await harness.next_event() == Started("a")
    harness.player.set_upcoming(upcoming[1:])
    harness.player.set_upcoming(upcoming[1:])
    assert await harness.take(3) == [Ended("a", EndReason.FINISHED), Started("b"), Ended("b", EndReason.FINISHED)]


async def test_handing_over_the_playing_item_again_does_not_replay_it(harness: Harness, media: Media) -> None:
    first = item("a", media.short[0])
    harness.player.set_upcoming([first, item("b", media.short[1])])
    assert await harness.next_event() == Started("a")
    harness.player.set_upcoming([first, item("c", media.short[2])])  # a caller that missed a's start
    assert await harness.take(3) == [Ended("a", EndReason.FINISHED), Started("c"), Ended("c", EndReason.FINISHED)]
    await harness.elapse(1.2)
    assert harness.events.empty()


async def test_skip_fades_out_ends_as_skipped_and_starts_the_next(harness: Harness, media: Media) -> None:
    harness.player.set_volume(60)
    harness.player.set_upcoming([item("long", media.long), item("b", media.short[1])])
    assert await harness.next_event() == Started("long")
    await harness.player.skip(0.1)
    assert await harness.take(2) == [Ended("long", EndReason.SKIPPED), Started("b")]
    assert harness.player.volume == 60  # the fade is undone for the next track


async def test_playback_begins_at_the_start_offset(harness: Harness, media: Media) -> None:
    harness.player.set_upcoming([item("long", media.long, start=12.0, end=20.0)])
    assert await harness.next_event() == Started("long")
    await harness.elapse(0.3)
    position = harness.player.position()
    assert position is not None and 12.0 <= position < 13.5


async def test_pause_freezes_the_position_and_resume_continues(harness: Harness, media: Media) -> None:
    harness.player.set_upcoming([item("long", media.long)])
    assert await harness.next_event() == Started("long")
    await harness.elapse(0.3)
    harness.player.pause()
    assert harness.player.paused
    frozen = harness.player.position()
    await harness.elapse(0.5)
    assert harness.player.position() == pytest.approx(frozen, abs=0.05)
    harness.player.resume()
    await harness.elapse(0.4)
    position = harness.player.position()
    assert frozen is not None and position is not None and position > frozen + 0.2


async def test_stop_ends_the_current_item_and_drops_the_upcoming(harness: Harness, media: Media) -> None:
    harness.player.set_upcoming([item("long", media.long), item("b", media.short[1])])
    assert await harness.next_event() == Started("long")
    harness.player.stop()
    assert await harness.next_event() == Ended("long", EndReason.STOPPED)
    await harness.elapse(1.5)
    assert harness.events.empty()
    assert harness.player.position() is None


async def test_probe_answers_while_playing(harness: Harness, media: Media) -> None:
    harness.player.set_upcoming([item("a", media.short[0])])
    await asyncio.wait_for(harness.player.probe(), 2)  # the watchdog's question: answered within its timeout


async def test_the_request_qr_code_fills_the_idle_screen_and_visits_the_corner_as_a_song_starts(
    harness: Harness, media: Media,
) -> None:
    assert harness.player.request_qr is None  # off unless the venue turns it on
    harness.player.show_request_qr(RequestQr("http://hub.example/v/bar", song_start_s=0.3))
    assert harness.player.request_qr is QrPlacement.SCREEN
    harness.player.set_upcoming([item("long", media.long)])
    assert await harness.next_event() == Started("long")
    assert harness.player.request_qr is QrPlacement.CORNER
    await harness.elapse(0.6)
    assert harness.player.request_qr is None  # the rest of the song is the video's
    harness.player.stop()
    assert await harness.next_event() == Ended("long", EndReason.STOPPED)
    assert harness.player.request_qr is QrPlacement.SCREEN
    harness.player.show_request_qr(None)
    assert harness.player.request_qr is None


async def test_the_corner_code_waits_while_the_song_is_paused(harness: Harness, media: Media) -> None:
    harness.player.show_request_qr(RequestQr("http://hub.example/v/bar", song_start_s=0.6))
    harness.player.set_upcoming([item("long", media.long)])
    assert await harness.next_event() == Started("long")
    await harness.elapse(0.3)
    harness.player.pause()
    await harness.elapse(0.6)
    assert harness.player.request_qr is QrPlacement.CORNER  # its seconds are seconds of music
    harness.player.resume()
    await harness.elapse(0.6)
    assert harness.player.request_qr is None
