"""Ownership of long-lived asyncio tasks.

Every background task is started through a ``TaskOwner``, named, and cancelled
and awaited when the owner closes. A task that ends on its own with an error
is a dead subsystem: the owner records it and sets ``failed`` so the program
stops (and systemd restarts it) instead of running on half alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskOwner:
    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.failed = asyncio.Event()
        self.failure: BaseException | None = None

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        if self._closing:
            coro.close()
            raise RuntimeError(f"{self.name}: cannot start {name!r} while closing")
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._on_done)
        return task

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._closing:
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s died: %r", task.get_name(), exc, exc_info=exc)
            if self.failure is None:
                self.failure = exc
            self.failed.set()

    @property
    def running(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks)

    async def close(self, grace: float = 10.0) -> None:
        """Cancel every task and wait for them, logging any that will not stop."""
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            log.warning("task %s did not stop within %.1fs", task.get_name(), grace)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("task %s ended with %r during shutdown", task.get_name(), task.exception())
