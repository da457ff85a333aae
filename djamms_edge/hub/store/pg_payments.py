"""The payment part of the PostgreSQL store (a mixin of ``PostgresStore``; SQL in payments_sql)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from djamms_edge.hub.store import payments_sql as q
from djamms_edge.hub.store.base import (
    Payment,
    PaymentReused,
    RefundStatus,
    RequestRecord,
    UnknownVenue,
    VenuePrice,
)
from djamms_edge.hub.store.rows import request_of

Conn = Any  # an asyncpg connection (asyncpg ships no types)


class PgPayments:
    _tx: Callable[..., Awaitable[Any]]  # PostgresStore's transaction runner
    _one: Callable[..., Awaitable[Any]]  # ... and its single-statement one
    _rules_changed: Callable[[str], None]  # ... and its news of a venue's rules or price
    _announce_rules: Callable[[Conn, str], Awaitable[None]]  # ... to the other instances, at commit

    async def _row(self, sql: str, *args: object) -> Any:
        async def read(conn: Conn) -> Any:
            return await conn.fetchrow(q.numbered(sql), *args)

        return await self._one(read)

    async def _rows(self, sql: str, *args: object) -> list[Any]:
        async def read(conn: Conn) -> list[Any]:
            return list(await conn.fetch(q.numbered(sql), *args))

        return list(await self._one(read))

    async def _execute(self, sql: str, *args: object) -> str:
        async def run(conn: Conn) -> str:
            return str(await conn.execute(q.numbered(sql), *args))

        return str(await self._one(run))

    async def get_venue_price(self, venue_id: str) -> VenuePrice | None:
        row = await self._row(q.GET_PRICE, venue_id)
        return None if row is None else q.price_of(row)

    async def set_venue_price(self, venue_id: str, price: VenuePrice, now_ms: int) -> None:
        async def tx(conn: Conn) -> None:
            await conn.execute(q.numbered(q.SET_PRICE), venue_id, price.price_minor, price.currency, now_ms)
            await self._announce_rules(conn, venue_id)

        try:
            await self._tx(tx)
        except asyncpg.ForeignKeyViolationError:
            raise UnknownVenue(f"unknown venue {venue_id!r}") from None
        self._rules_changed(venue_id)

    async def create_payment(self, payment: Payment) -> None:
        try:
            await self._execute(q.INSERT_PAYMENT, *q.payment_params(payment))
        except asyncpg.UniqueViolationError:
            raise PaymentReused("this payment was already used for a request") from None

    async def set_checkout(self, request_id: str, checkout_ref: str, checkout_url: str) -> None:
        await self._execute(q.SET_CHECKOUT, checkout_ref, checkout_url, request_id)

    async def get_payment(self, request_id: str) -> Payment | None:
        row = await self._row(q.GET_PAYMENT, request_id)
        return None if row is None else q.payment_of(row)

    async def payment_by_checkout(self, checkout_ref: str) -> Payment | None:
        row = await self._row(q.BY_CHECKOUT, checkout_ref)
        return None if row is None else q.payment_of(row)

    async def mark_payment_paid(self, request_id: str, payment_ref: str, now_ms: int) -> bool:
        try:
            status = await self._execute(q.MARK_PAID, payment_ref, now_ms, request_id)
        except asyncpg.UniqueViolationError:
            raise PaymentReused("this payment was already used for another request") from None
        return status == "UPDATE 1"

    async def refunds_due(self, now_ms: int, limit: int) -> list[Payment]:
        return [q.payment_of(r) for r in await self._rows(q.REFUNDS_DUE, now_ms, limit)]

    async def record_refund(self, request_id: str, status: RefundStatus, refund_id: str | None, error: str | None,
                            next_at_ms: int | None, now_ms: int) -> None:
        await self._execute(q.RECORD_REFUND, status, refund_id, error, next_at_ms, now_ms, request_id)

    async def payments_for(self, venue_id: str, request_ids: list[str]) -> dict[str, Payment]:
        if not request_ids:
            return {}
        rows = await self._rows(q.payments_for(len(request_ids)), venue_id, *request_ids)
        return {r["request_id"]: q.payment_of(r) for r in rows}

    async def refunds(self, venue_id: str, limit: int) -> list[Payment]:
        return [q.payment_of(r) for r in await self._rows(q.REFUNDS, venue_id, limit)]

    async def drop_unpaid(self, before_ms: int) -> int:
        status = await self._execute(q.DROP_UNPAID, before_ms)  # "DELETE <count>"
        return int(status.rsplit(" ", 1)[1])

    async def unplayed_paid(self, queued_before_ms: int, limit: int) -> list[tuple[str, str]]:
        return [(r["venue_id"], r["request_id"]) for r in await self._rows(q.UNPLAYED_PAID, queued_before_ms, limit)]

    async def get_request(self, request_id: str) -> RequestRecord | None:
        row = await self._row(q.GET_REQUEST, request_id)
        return None if row is None else request_of(row)
