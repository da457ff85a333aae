"""Recent errors for the status page, taken from the daemon's own log.

Every module already logs one line per failure (a broken track, the hub going
away); this handler keeps the last few of those lines and counts them, so the
page shows what the journal shows without each module reporting twice.
Records may come from any thread (the SQLite writer, libmpv's); the change
notification is handed to the event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable

from djamms_edge.edge.status.model import RecentError

DEFAULT_CAPACITY = 10


class RecentErrorLog(logging.Handler):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[], object],
        *,
        capacity: int = DEFAULT_CAPACITY,
        level: int = logging.WARNING,
    ) -> None:
        super().__init__(level)
        self._loop = loop
        self._on_change = on_change
        self._recent: deque[RecentError] = deque(maxlen=capacity)
        self._total = 0
        self._guard = threading.Lock()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = (self.format(record).splitlines() or [""])[0]  # the line, not a traceback
        except Exception:  # logging must never raise into the code that logged
            self.handleError(record)
            return
        with self._guard:
            self._recent.append(RecentError(at=record.created, message=message))
            self._total += 1
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._on_change()
            return
        # RuntimeError: the loop is closed; the daemon is exiting and nobody is watching.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_change)

    def recent(self) -> tuple[RecentError, ...]:
        with self._guard:
            return tuple(self._recent)

    @property
    def total(self) -> int:
        with self._guard:
            return self._total
