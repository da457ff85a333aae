"""The systemd boundary: a real NOTIFY_SOCKET listener sees what the daemon tells the service manager."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from djamms_edge.shared.systemd_notify import (
    ServiceNotifier,
    journal_fields,
    journal_handler,
    start_watchdog,
    watchdog_interval,
    watchdog_pings,
)
from djamms_edge.shared.tasks import TaskOwner


class Listener:
    """What systemd does: bind a datagram socket and read notify messages from it."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def messages(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[Listener, str]]:
    path = str(tmp_path / "notify")
    assert len(path) < 100, "AF_UNIX paths are limited to 108 bytes"
    listen = Listener(path)
    yield listen, path
    listen.sock.close()


def test_ready_status_and_stopping_reach_the_manager(listener: tuple[Listener, str]) -> None:
    listen, path = listener
    notifier = ServiceNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.status("fetching 3 tracks")
    notifier.ready("playing Song A (master)")
    notifier.status("hub unreachable since 12:03\nplaying from the local queue")
    notifier.stopping()
    notifier.close()
    assert listen.messages() == [
        "STATUS=fetching 3 tracks",
        "READY=1\nSTATUS=playing Song A (master)",
        # A newline inside a status would start a new assignment; it is folded into one readable line.
        "STATUS=hub unreachable since 12:03 playing from the local queue",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_abstract_socket_addresses_work() -> None:
    name = f"djamms-test-{secrets.token_hex(8)}"
    listen = Listener("\0" + name)
    try:
        ServiceNotifier({"NOTIFY_SOCKET": "@" + name}).ready("ok")
        assert listen.messages() == ["READY=1\nSTATUS=ok"]
    finally:
        listen.sock.close()


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = ServiceNotifier({})
    assert not notifier.enabled
    notifier.ready("x")
    notifier.status("y")
    notifier.watchdog()
    notifier.stopping()


def test_a_vanished_manager_is_logged_once_and_never_raises(
    listener: tuple[Listener, str], caplog: pytest.LogCaptureFixture
) -> None:
    listen, path = listener
    listen.sock.close()
    os.unlink(path)
    notifier = ServiceNotifier({"NOTIFY_SOCKET": path})
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            notifier.status("still here")
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),  # WatchdogSec=20 -> ping every 10 s
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "4242"}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}, None),  # set for another process (we are a child)
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=4242) == expected


async def test_watchdog_pings_only_while_healthy(listener: tuple[Listener, str]) -> None:
    listen, path = listener
    notifier = ServiceNotifier({"NOTIFY_SOCKET": path})
    # Health as the daemon would report it, check by check: fine, fine, player stuck x3, fine again.
    verdicts = [True, True, False, False, False, True]
    checked = asyncio.Event()

    async def healthy() -> bool:
        verdict = verdicts.pop(0)
        if not verdicts:
            checked.set()
        return verdict

    task = asyncio.create_task(watchdog_pings(notifier, healthy, interval=0.01))
    await asyncio.wait_for(checked.wait(), 5)
    await asyncio.sleep(0)  # let the last verdict's ping go out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert listen.messages() == ["WATCHDOG=1"] * 3  # the three healthy checks, none for the stuck ones


async def test_a_hanging_or_raising_health_check_withholds_pings(
    listener: tuple[Listener, str], caplog: pytest.LogCaptureFixture
) -> None:
    listen, path = listener
    notifier = ServiceNotifier({"NOTIFY_SOCKET": path})
    calls = 0
    enough = asyncio.Event()

    async def healthy() -> bool:
        nonlocal calls
        calls += 1
        if calls >= 4:
            enough.set()
        if calls % 2:
            await asyncio.Event().wait()  # a player that never answers
        raise RuntimeError("player gone")

    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(watchdog_pings(notifier, healthy, interval=0.01))
        await asyncio.wait_for(enough.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert listen.messages() == []
    # One line when it goes bad, not one per interval.
    assert len([r for r in caplog.records if "withholding watchdog pings" in r.message]) == 1


async def test_start_watchdog_runs_under_the_task_owner_only_when_systemd_asked(
    listener: tuple[Listener, str],
) -> None:
    listen, path = listener
    owner = TaskOwner("test")
    checks = 0
    second_check = asyncio.Event()

    async def healthy() -> bool:
        nonlocal checks
        checks += 1
        if checks == 2:  # the first verdict has been acted on
            second_check.set()
        return True

    assert start_watchdog(owner, ServiceNotifier({"NOTIFY_SOCKET": path}), healthy) is None
    notifier = ServiceNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})
    task = start_watchdog(owner, notifier, healthy)
    assert task is not None and owner.running == ["test:systemd-watchdog"]
    await asyncio.wait_for(second_check.wait(), 5)
    assert listen.messages()[0] == "WATCHDOG=1"
    await owner.close()
    assert task.cancelled() and owner.running == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"video_id": "dQw4w9WgXcQ"}, {"VIDEO_ID": "dQw4w9WgXcQ"}),
        ({"venue": "the-anchor", "device": "pi-bar"}, {"VENUE": "the-anchor", "DEVICE": "pi-bar"}),
        ({"attempt": 3}, {"ATTEMPT": "3"}),
        ({"video_id": None}, {}),  # nothing to say: no empty field
        ({"priority": "9", "message_id": "x"}, {}),  # would clash with the handler's own fields
        ({"_private": "x", "9lives": "x", "a-b": "x"}, {}),  # not valid journal field names
    ],
)
def test_record_extras_become_journal_fields(extra: dict[str, Any], expected: dict[str, str]) -> None:
    record = logging.LogRecord("djamms.edge", logging.INFO, __file__, 1, "playing %s", ("x",), None)
    record.__dict__.update(extra)
    assert journal_fields(vars(record)) == expected


def test_journal_handler_sends_structured_fields() -> None:
    sent: list[dict[str, Any]] = []

    def sender(MESSAGE: str, **fields: Any) -> None:  # the name journal.send uses
        sent.append({"MESSAGE": MESSAGE, **fields})

    handler = journal_handler("djamms-edge", {"VENUE": "the-anchor", "DEVICE": "pi-bar"}, sender=sender)
    logger = logging.getLogger("djamms.test.journal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("cannot fetch %s", "dQw4w9WgXcQ", extra={"video_id": "dQw4w9WgXcQ"})
    finally:
        logger.removeHandler(handler)
    (entry,) = sent
    assert entry["MESSAGE"] == "cannot fetch dQw4w9WgXcQ"
    assert entry["PRIORITY"] == "4"
    assert {k: entry[k] for k in ("SYSLOG_IDENTIFIER", "VENUE", "DEVICE", "VIDEO_ID")} == {
        "SYSLOG_IDENTIFIER": "djamms-edge",
        "VENUE": "the-anchor",
        "DEVICE": "pi-bar",
        "VIDEO_ID": "dQw4w9WgXcQ",
    }
