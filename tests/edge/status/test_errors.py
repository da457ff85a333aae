"""Recent errors come from the daemon's log, from any thread, newest last."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest

from djamms_edge.edge.status.errors import RecentErrorLog
from djamms_edge.edge.status.model import ChangeCounter


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("djamms_edge.test_status_errors")
    log.propagate = False
    yield log
    log.handlers.clear()


async def test_warnings_and_errors_are_kept_with_a_total(logger: logging.Logger) -> None:
    changes = ChangeCounter()
    feed = RecentErrorLog(asyncio.get_running_loop(), changes.bump, capacity=3)
    logger.addHandler(feed)
    logger.info("played a track")  # not an error: not shown
    for n in range(5):
        logger.warning("track %d is corrupt, skipped", n)
    try:
        raise OSError("disk full")
    except OSError:
        logger.exception("cache write failed")
    assert [e.message for e in feed.recent()] == [
        "track 3 is corrupt, skipped",
        "track 4 is corrupt, skipped",
        "cache write failed",  # the line, without its traceback
    ]
    assert feed.total == 6
    assert changes.version == 6


async def test_an_error_logged_on_another_thread_wakes_the_page(logger: logging.Logger) -> None:
    changes = ChangeCounter()
    feed = RecentErrorLog(asyncio.get_running_loop(), changes.bump)
    logger.addHandler(feed)
    thread = threading.Thread(target=logger.error, args=("libmpv: audio device lost",))
    thread.start()
    assert await asyncio.wait_for(changes.wait(0), 2) == 1
    thread.join()
    assert feed.recent()[0].message == "libmpv: audio device lost"
