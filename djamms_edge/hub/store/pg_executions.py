"""Stored executions in the PostgreSQL store (a mixin of ``PostgresStore``; SQL in executions_sql): every hub
instance answers the ``GET`` of an execution another one ran."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from djamms_edge.hub.store import executions_sql as q
from djamms_edge.hub.store.base import StoredExecution
from djamms_edge.hub.store.payments_sql import numbered

Conn = Any  # an asyncpg connection (asyncpg ships no types)
GET = numbered(q.GET)
# One statement, one round trip: the insert runs in a WITH (always, to completion); the DELETE's snapshot does
# not see the new row, so it keeps the newest ``keep - 1`` older ones (OFFSET keep - 2).
KEEP = f"WITH added AS ({numbered(q.INSERT)} RETURNING 1) " + q.TRIM.format(reader="$3", offset="$7")


class PgExecutions:
    _one: Callable[..., Awaitable[Any]]  # PostgresStore's single-statement runner

    async def keep_execution(self, execution: StoredExecution, keep_per_reader: int) -> None:
        e = execution

        async def statement(conn: Conn) -> None:
            await conn.execute(KEEP, e.execution_id, e.function_id, e.reader, e.body, e.created_at_ms,
                               e.expires_at_ms, max(0, keep_per_reader - 2))

        await self._one(statement)

    async def get_execution(self, function_id: str, execution_id: str, reader: str, now_ms: int) -> str | None:
        async def read(conn: Conn) -> str | None:
            body = await conn.fetchval(GET, execution_id, function_id, reader, now_ms)
            return None if body is None else str(body)

        return await self._one(read)
