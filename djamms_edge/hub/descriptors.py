"""Running out of file descriptors, noticed on event loops that do not report failed accepts.

asyncio reports each failed ``accept()`` to the loop's exception handler, where ``ConnectionGuard`` folds them
into one logged episode (hub/serving.py). libuv (uvloop) does not: on EMFILE/ENFILE it accepts and closes the
waiting connections itself and says nothing. On such a loop this probes once a second whether the process
can open one more descriptor, and tells the guard when it cannot, so the on-call engineer reads the same
log lines either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # serving imports this module
    from djamms_edge.hub.serving import ConnectionGuard

PROBE_INTERVAL_S = 1.0
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


def out_of_descriptors() -> OSError | None:
    """The error opening one more descriptor raises now, if it is "too many open files"; else None."""
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        if exc.errno in OUT_OF_DESCRIPTORS:
            return exc
        raise
    return None


async def _probe(guard: ConnectionGuard) -> None:
    while True:
        await asyncio.sleep(PROBE_INTERVAL_S)
        exc = out_of_descriptors()
        if exc is not None:
            guard.accept_failed(exc)


@contextlib.asynccontextmanager
async def watching(guard: ConnectionGuard) -> AsyncIterator[None]:
    """While the block runs, descriptor exhaustion reaches ``guard`` on a loop that hides failed accepts."""
    if isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):  # asyncio's own: it reports them
        yield
        return
    task = asyncio.create_task(_probe(guard), name="descriptor-probe")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
