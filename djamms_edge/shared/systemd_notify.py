"""Everything that talks to systemd: readiness and status (sd_notify), the watchdog, journald.

This is the one home for systemd. The notify protocol is one datagram of ``KEY=VALUE`` lines
sent to ``$NOTIFY_SOCKET`` (sd_notify(3)); it is small enough to speak directly, as systemd's
own ``notify-selfcontained-example.py`` does, so readiness and the watchdog work even where
systemd-python (libsystemd) is not installed. Journald does need libsystemd's sender, which is
imported only when a journal handler is asked for.

Outside systemd (no ``$NOTIFY_SOCKET``) every notifier call is a no-op, so the daemon calls it
unconditionally.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from djamms_edge.shared.tasks import TaskOwner

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[bool]]


def _socket_address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        # Abstract namespace socket: sd_notify(3) spells the leading NUL as "@".
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and other transports are not used on our targets


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between watchdog pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is set.

    Like sd_watchdog_enabled(3), ``$WATCHDOG_PID`` (when set) must name this process: the
    variables leak into children, and a child must not think the watchdog is its job.
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    expected_pid = env.get("WATCHDOG_PID")
    if expected_pid and expected_pid != str(os.getpid() if pid is None else pid):
        return None
    return usec / 1_000_000 / 2


def _one_line(text: str) -> str:
    # A newline would start a new KEY=VALUE assignment inside the datagram.
    return " ".join(text.split())


class ServiceNotifier:
    """Tells the service manager how the daemon is doing; silent outside systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_interval = watchdog_interval(env)
        self._socket: socket.socket | None = None
        self._send_failed = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        return self._watchdog_interval

    def ready(self, status: str) -> None:
        """The daemon can do its job (for the edge: it can play). Ends systemd's start timeout."""
        self._send("READY=1", f"STATUS={_one_line(status)}")

    def status(self, text: str) -> None:
        """A line a person reads in ``systemctl status``: what the daemon is doing right now."""
        self._send(f"STATUS={_one_line(text)}")

    def stopping(self, status: str = "stopping") -> None:
        self._send("STOPPING=1", f"STATUS={_one_line(status)}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, *lines: str) -> None:
        if self._address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop on a full manager queue: a dropped STATUS line is harmless,
                # and a dropped WATCHDOG=1 is retried at the next interval.
                self._socket.setblocking(False)
            self._socket.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            if not self._send_failed:  # one line per state change, not one per message
                log.warning("cannot notify systemd at %r: %s", self._address, exc)
            self._send_failed = True
        else:
            if self._send_failed:
                log.info("notifying systemd works again")
            self._send_failed = False


async def watchdog_pings(notifier: ServiceNotifier, healthy: HealthCheck, interval: float) -> None:
    """Ping the watchdog every ``interval`` seconds, but only while ``healthy()`` says yes.

    A stuck event loop cannot run this task, so pings stop by themselves; ``healthy`` covers
    what the loop cannot see (a wedged player). A check that raises or takes longer than one
    interval counts as unhealthy. Withholding pings lets systemd kill and restart the daemon
    after WatchdogSec; we never exit on our own from here.
    """
    loop = asyncio.get_running_loop()
    failing = False
    while True:
        started = loop.time()
        try:
            ok = await asyncio.wait_for(healthy(), timeout=interval)
            reason = "" if ok else "health check failed"
        except TimeoutError:
            ok, reason = False, f"health check took longer than {interval:.1f}s"
        except Exception as exc:
            ok, reason = False, f"health check raised {exc!r}"
        if ok:
            notifier.watchdog()
            if failing:
                log.info("healthy again; watchdog pings resumed")
        elif not failing:
            log.error("withholding watchdog pings: %s", reason)
        failing = not ok
        await asyncio.sleep(max(0.0, interval - (loop.time() - started)))


def start_watchdog(owner: TaskOwner, notifier: ServiceNotifier, healthy: HealthCheck) -> asyncio.Task[Any] | None:
    """Start the ping task under ``owner`` when systemd set a watchdog; None otherwise."""
    interval = notifier.watchdog_interval()
    if interval is None or not notifier.enabled:
        return None
    return owner.start(watchdog_pings(notifier, healthy, interval), "systemd-watchdog")


# ---------------------------------------------------------------------------------- journald ----

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
# Fields python-systemd's JournalHandler sets itself: an extra with the same name would clash.
_HANDLER_FIELDS = frozenset(
    {"MESSAGE", "MESSAGE_ID", "PRIORITY", "LOGGER", "THREAD_NAME", "PROCESS_NAME", "CODE_FILE", "CODE_LINE",
     "CODE_FUNC", "CODE_ARGS", "EXCEPTION_TEXT", "EXCEPTION_INFO", "SYSLOG_IDENTIFIER"}
)
# journald accepts upper-case letters, digits and underscores, not starting with "_" or a digit, <= 64 chars.
_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def journal_fields(record_attrs: Mapping[str, object]) -> dict[str, str]:
    """Journal fields for a record's ``extra=`` values: ``video_id="abc"`` becomes ``VIDEO_ID=abc``.

    journald silently drops lower-case field names, so without this mapping the extras would be lost.
    """
    fields: dict[str, str] = {}
    for key, value in record_attrs.items():
        if key in _RECORD_ATTRS or value is None:
            continue
        name = key.upper()
        if _FIELD_NAME.fullmatch(name) and name not in _HANDLER_FIELDS:
            fields[name] = str(value)
    return fields


class _JournalFieldsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # JournalHandler sends every record attribute; upper-case copies are the ones journald keeps.
        for name, value in journal_fields(vars(record)).items():
            setattr(record, name, value)
        return True


def journal_handler(
    program: str, fields: Mapping[str, str] | None = None, *, sender: Callable[..., Any] | None = None
) -> logging.Handler:
    """A journald handler: ``SYSLOG_IDENTIFIER=program``, constant ``fields`` (e.g. VENUE, DEVICE)
    on every entry, and each record's ``extra=`` values as upper-case fields.

    ``sender`` replaces libsystemd's ``journal.send`` (tests have no journald).
    """
    from systemd.journal import JournalHandler, send

    constant = {name.upper(): value for name, value in (fields or {}).items() if value}
    handler: logging.Handler = JournalHandler(
        sender_function=sender or send, SYSLOG_IDENTIFIER=program, **constant
    )
    handler.addFilter(_JournalFieldsFilter())
    return handler
