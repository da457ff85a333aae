"""``djamms-edge run`` as systemd sees it: the real daemon process, a real NOTIFY_SOCKET listener.

This is what ``Type=notify`` + ``WatchdogSec=`` in djamms-edge.service rely on: READY=1 once it can
play, readable STATUS= lines, WATCHDOG=1 at half the watchdog interval, STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def manager_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield sock, path
    sock.close()


def next_message(sock: socket.socket, wanted: str, limit: float = 60.0) -> tuple[str, list[str]]:
    """The first datagram containing ``wanted`` (and everything received before it)."""
    seen: list[str] = []
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            break
        if wanted in message.splitlines():
            return message, seen
        seen.append(message)
    raise AssertionError(f"no {wanted} within {limit}s; got {seen}")


def test_daemon_reports_ready_pings_the_watchdog_and_says_it_is_stopping(
    tmp_path: Path, manager_socket: tuple[socket.socket, str]
) -> None:
    sock, path = manager_socket
    config = tmp_path / "config.toml"
    config.write_text(
        f'[edge]\nstate_dir = "{tmp_path / "state"}"\ncache_dir = "{tmp_path / "cache"}"\n'
        '[edge.player]\nvideo = false\nao = "null"\n[edge.status]\nport = 0\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in {"JOURNAL_STREAM", "INVOCATION_ID", "WATCHDOG_PID"}}
    env |= {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}  # WatchdogSec=1 -> a ping every 0.5 s
    with (tmp_path / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "djamms_edge.edge.cli", "run", "--config", str(config)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        ready, _ = next_message(sock, "READY=1")
        assert any(line.startswith("STATUS=") and len(line) > len("STATUS=") for line in ready.splitlines())
        next_message(sock, "WATCHDOG=1", limit=5)
        next_message(sock, "WATCHDOG=1", limit=5)  # keeps pinging, not once

        os.killpg(daemon.pid, signal.SIGTERM)
        stopping, _ = next_message(sock, "STOPPING=1", limit=30)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
    assert "STATUS=" in stopping, (tmp_path / "daemon.log").read_text()[-2000:]
