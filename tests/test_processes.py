"""tests/processes.py: a program and everything it started are stopped, even children in sessions of their own
whose parent is gone (as the demo's hub and edge were left running when its test failed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.processes import ProcessTree

# Starts a child in a session of its own (as the demo starts the hub and the edge), prints its pid, then
# either waits (a program still running) or exits at once (the child is orphaned, reparented to init).
PROGRAM = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print(child.pid, flush=True)
if sys.argv[1] == "wait":
    time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("program_ends", [False, True], ids=["program-running", "child-orphaned"])
def test_stopping_ends_the_program_and_a_child_in_its_own_session(program_ends: bool) -> None:
    with ProcessTree([sys.executable, "-c", PROGRAM, "exit" if program_ends else "wait"], grace=1.0,
                     stdout=subprocess.PIPE, text=True) as tree:
        assert tree.proc.stdout is not None
        child = int(tree.proc.stdout.readline())
        if program_ends:
            tree.proc.wait(timeout=10)
        assert alive(child) and os.getsid(child) != tree.proc.pid  # not in the program's session: out of killpg's reach
        assert child in tree.members()
        tree.stop()
        assert tree.members() == set()
        deadline = time.monotonic() + 5  # SIGKILLed; init reaps the orphan
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
