"""A program a test starts, stopped with everything it started, on every exit path of the test.

Killing the program's process group is not enough: the demo puts its hub and edge in sessions of their own
(so Ctrl-C reaches only the demo, which stops them in order), and the edge does the same with ffmpeg. Killed
alone, the program leaves them running, reparented to init, for hours (it happened: issue 14's session).
So every process started here carries a marker in its environment, which its descendants inherit whatever
session, group or parent they end up with; ``stop()`` asks the program to stop (SIGTERM to its group),
waits, then SIGKILLs every process still carrying the marker, and every descendant of those.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

MARKER = "DJAMMS_TEST_PROCESS_TREE"


class ProcessTree:
    """``subprocess.Popen(argv, **popen)`` in its own session, marked; a context manager that stops it all."""

    def __init__(self, argv: Sequence[str], *, grace: float = 10.0, **popen: Any) -> None:
        self.grace = grace  # how long the program gets to stop its own children after SIGTERM
        self.marker = uuid.uuid4().hex
        env = {**(popen.pop("env", None) or os.environ), MARKER: self.marker}
        self.proc = subprocess.Popen(list(argv), env=env, start_new_session=True, **popen)

    def __enter__(self) -> ProcessTree:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def members(self) -> set[int]:
        """Live processes of the tree (zombies are not): marked ones and their descendants."""
        table = _processes()
        needle = f"{MARKER}={self.marker}".encode()
        found = {pid for pid, (_, environ) in table.items() if needle in environ.split(b"\0")}
        while True:  # descendants, in case one was started with an environment of its own
            more = {pid for pid, (parent, _) in table.items() if parent in found} - found
            if not more:
                return found
            found |= more

    def stop(self) -> None:
        """SIGTERM to the program's group, ``grace`` seconds, then SIGKILL to whatever of the tree is left."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=self.grace)
        deadline = time.monotonic() + 10
        while left := self.members():
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {sorted(left)} survived SIGKILL")
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.poll()  # reaps the program itself (the others are reaped by their parents or init)
            time.sleep(0.05)
        self.proc.wait()


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid: (parent pid, environment) of every live process of this user (zombies have neither)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or another user's
        state, parent = stat.rpartition(")")[2].split()[:2]  # the name may hold spaces and parentheses
        if state != "Z":
            table[int(entry.name)] = (int(parent), environ)
    return table
