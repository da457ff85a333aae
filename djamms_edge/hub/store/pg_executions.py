"""Stored executions in the PostgreSQL store (a mixin of ``PostgresStore``; SQL in executions_sql): every hub
instance answers the ``GET`` of an execution another one ran."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from djamms_edge.hub.store import executions_sql as q
from djamms_edge.hub.store.base import StoredExecution
from djamms_edge.hub.store.payments_sql import numbered

Conn = Any  # an asyncpg connection (asyncpg ships no types)
INSERT, TRIM, GET = numbered(q.INSERT), numbered(q.TRIM), numbered(q.GET)


class PgExecutions:
    _tx: Callable[..., Awaitable[Any]]  # PostgresStore's transaction runner
    _one: Callable[..., Awaitable[Any]]  # ... and its single-statement one

    async def keep_execution(self, execution: StoredExecution, keep_per_reader: int) -> None:
        e = execution

        async def tx(conn: Conn) -> None:
            await conn.execute(INSERT, e.execution_id, e.function_id, e.reader, e.body, e.created_at_ms,
                               e.expires_at_ms)
            await conn.execute(TRIM, e.reader, e.reader, keep_per_reader - 1)

        await self._tx(tx)

    async def get_execution(self, function_id: str, execution_id: str, reader: str, now_ms: int) -> str | None:
        async def read(conn: Conn) -> str | None:
            body = await conn.fetchval(GET, execution_id, function_id, reader, now_ms)
            return None if body is None else str(body)

        return await self._one(read)
