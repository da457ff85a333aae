"""Stored executions in the SQLite store (a mixin of ``SqliteStore``; SQL in executions_sql)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from djamms_edge.hub.store import executions_sql as q
from djamms_edge.hub.store.base import StoredExecution

TRIM = q.TRIM.format(reader="?1", offset="?2")


class SqliteExecutions:
    _write: Callable[..., Awaitable[Any]]  # SqliteStore's batched write
    _read: Callable[..., Awaitable[Any]]

    async def keep_execution(self, execution: StoredExecution, keep_per_reader: int) -> None:
        e = execution

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(q.INSERT, (e.execution_id, e.function_id, e.reader, e.body, e.created_at_ms,
                                    e.expires_at_ms))
            conn.execute(TRIM, (e.reader, keep_per_reader - 1))  # the new row counts: keep - 1 older ones

        # Not durable: an execution lost to a power cut is only a later GET's 404.
        await self._write(tx, durable=False)

    async def get_execution(self, function_id: str, execution_id: str, reader: str, now_ms: int) -> str | None:
        row = await self._read(lambda conn: conn.execute(q.GET, (execution_id, function_id, reader, now_ms))
                               .fetchone())
        return None if row is None else str(row["body"])
