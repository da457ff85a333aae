"""Paid requests on SQLite: a batch of them in three statements (migration 13's ``paid_request_steps``).

Why: the store's writes run on one writer thread, batched into one transaction (SqliteStore._write). Every
statement the thread runs lets go of the GIL, and taking it back from the event loop's thread, busy with the
HTTP side of the next requests, can take up to the interpreter's switch interval (5 ms). Five statements and
a savepoint per request made the writer thread and the loop take turns instead of working side by side:
that was most of a paid request's time under load (bench/hub_load.py). Now the paid requests queued together
go in one INSERT whose trigger does, row by row in order, what the per-request transaction did.

Each row is decided as it was one at a time: its paymentId seen before (also earlier in the same batch)
makes it a replay, an unknown venue is refused, and the artist's count includes the rows before it. The
rule itself stays in Python (rules.paid_request_refusal): the row carries the refusal for each count.
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from typing import Any

import orjson

from djamms_edge.hub import fastjson
from djamms_edge.hub.identity import artist_key
from djamms_edge.hub.rules import paid_request_refusal
from djamms_edge.hub.store.base import (
    PAID_CREDIT,
    PRUNE_EVERY,
    PaidRequest,
    QueueEntry,
    RequestOutcome,
    RequestRules,
    RequestStatus,
    UnknownVenue,
)

PaidStep = tuple[Any, ...]  # one row of paid_request_steps, in its column order
_REQUEST_ID, _VENUE, _PAYMENT = 0, 1, 2
_COLUMNS = 18
_ROW = "(" + ", ".join("?" * _COLUMNS) + ")"


def paid_step(request: PaidRequest, rules: RequestRules, now_ms: int, retain: int) -> PaidStep:
    """The row that submits ``request`` (built on the caller's side, so the writer thread only runs SQL)."""
    song = request.song
    request_id = request.request_id or str(uuid.uuid4())
    refusals = [paid_request_refusal(song.duration, n, rules) for n in range(rules.artist_limit + 1)]
    entry = QueueEntry("e-" + secrets.token_hex(8), "priority", song, request_id, request.requester_id, PAID_CREDIT)
    change = fastjson.dumps({"type": "entry_added", "entry": entry.to_json()})
    return (request_id, request.venue_id, request.payment_id, request.requester_id, request.client_address,
            song.video_id, song.title, song.artist, artist_key(song.artist), song.duration,
            now_ms - rules.artist_window_ms, fastjson.dumps(refusals), now_ms, entry.entry_id, entry.paid_credit,
            change, retain, PRUNE_EVERY)


def submit_paid_steps(conn: sqlite3.Connection, steps: list[PaidStep]) -> list[tuple[bool, Any]]:
    """Run ``steps`` in order inside the caller's transaction: each one's (True, RequestOutcome), or (False,
    the error) for a step that failed alone. Raises when SQLite rolled the whole transaction back."""
    outcomes: list[tuple[bool, Any]] = []
    start = 0
    while start < len(steps):
        # A run with each paymentId once: a repeat must be told a replay of the first, so it starts the next run.
        end, payments = start, set()
        while end < len(steps) and steps[end][_PAYMENT] not in payments:
            payments.add(steps[end][_PAYMENT])
            end += 1
        outcomes.extend(_run(conn, steps[start:end]))
        start = end
    return outcomes


def _run(conn: sqlite3.Connection, steps: list[PaidStep]) -> list[tuple[bool, Any]]:
    try:
        return _statements(conn, steps)
    except Exception as exc:
        if not conn.in_transaction:
            raise
        if len(steps) == 1:
            return [(False, exc)]
        # SQLite undid the failed statement whole: run each step alone so that only the faulty one fails.
        return [outcome for step in steps for outcome in _run(conn, [step])]


def _statements(conn: sqlite3.Connection, steps: list[PaidStep]) -> list[tuple[bool, Any]]:
    payments = [step[_PAYMENT] for step in steps]
    marks = ", ".join("?" * len(steps))
    # One row back per statement (a JSON aggregate): each row fetched would be one more wait for the GIL.
    (before,) = conn.execute(
        f"SELECT json_group_array(payment_id) FROM requests WHERE payment_id IN ({marks})", payments
    ).fetchone()
    conn.execute(f"INSERT INTO paid_request_steps VALUES {', '.join([_ROW] * len(steps))}",
                 [value for step in steps for value in step])
    (after,) = conn.execute(
        "SELECT json_group_object(payment_id, json_array(request_id, status, reason)) FROM requests"
        f" WHERE payment_id IN ({marks})", payments
    ).fetchone()
    seen_before = set(orjson.loads(before))
    stored: dict[str, list[Any]] = orjson.loads(after)
    outcomes: list[tuple[bool, Any]] = []
    for step, payment in zip(steps, payments, strict=True):
        row = stored.get(payment)
        if row is None:  # nothing stored and nothing there before: the trigger found no such venue
            outcomes.append((False, UnknownVenue(f"unknown venue {step[_VENUE]!r}")))
            continue
        request_id, status, reason = row
        known: RequestStatus = status
        outcomes.append((True, RequestOutcome(request_id, known != "refund_due", reason, payment in seen_before,
                                              known)))
    return outcomes
