"""DiskTrouble's episodes: said once when the disk first refuses an area's writes, gone with the first write that
works, reported to the hub once per episode (also an episode begun before the hub link existed)."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest

from djamms_edge.edge.disk_trouble import DiskTrouble, what_is_wrong

FULL = OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (FULL, "the disk is full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk is full"),
        (OSError(errno.EROFS, "Read-only file system"), "the disk is read-only"),
        (OSError(errno.EIO, "Input/output error"), "the disk fails to write"),
    ],
)
def test_what_is_wrong_in_a_venues_words(error: OSError, said: str) -> None:
    assert what_is_wrong(error) == said


async def test_an_episode_is_said_once_reported_once_and_ends_with_a_write_that_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "djamms_edge.edge.disk_trouble")
    reported: list[str] = []

    async def report(problem: str) -> None:
        reported.append(problem)

    trouble = DiskTrouble({"playback.db": "The music plays on"})
    changes: list[int] = []
    trouble.subscribe(lambda: changes.append(len(trouble.problems())))
    try:
        trouble.failed("playback.db", FULL)  # before the hub link: reported once it exists
        trouble.failed("playback.db", FULL)
        trouble.report_to(report)
        await asyncio.sleep(0)
        assert reported == trouble.problems()
        assert trouble.problems()[0].startswith("playback.db cannot be written: the disk is full")
        assert "The music plays on" in trouble.problems()[0] and "recovers by itself" in trouble.problems()[0]
        trouble.worked("playback.db")
        trouble.worked("playback.db")
        assert trouble.problems() == []
        trouble.failed("playback.db", FULL)  # a new episode: said and reported again
        await asyncio.sleep(0)
        assert len(reported) == 2 and changes == [1, 0, 1]
    finally:
        await trouble.close()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(said) == 2, said
    assert sum("can be written again" in r.getMessage() for r in caplog.records) == 1
