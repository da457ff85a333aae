"""The payment part of the SQLite store (a mixin of ``SqliteStore``; SQL in payments_sql)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

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
from djamms_edge.shared.sqlite import Database


class SqlitePayments:
    _db: Database
    _write: Callable[..., Awaitable[Any]]  # SqliteStore's batched write
    _rules_changed: Callable[[str], None]  # ... and its news of a venue's rules or price

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return await self._db.read(fn)

    async def get_venue_price(self, venue_id: str) -> VenuePrice | None:
        row = await self._read(lambda conn: conn.execute(q.GET_PRICE, (venue_id,)).fetchone())
        return None if row is None else q.price_of(row)

    async def set_venue_price(self, venue_id: str, price: VenuePrice, now_ms: int) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM venues WHERE venue_id = ?", (venue_id,)).fetchone() is None:
                raise UnknownVenue(f"unknown venue {venue_id!r}")
            conn.execute(q.SET_PRICE, (venue_id, price.price_minor, price.currency, now_ms))

        await self._write(tx)
        self._rules_changed(venue_id)

    async def create_payment(self, payment: Payment) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(q.INSERT_PAYMENT, q.payment_params(payment))
            except sqlite3.IntegrityError:
                raise PaymentReused("this payment was already used for a request") from None

        await self._write(tx)

    async def set_checkout(self, request_id: str, checkout_ref: str, checkout_url: str) -> None:
        await self._write(lambda conn: conn.execute(q.SET_CHECKOUT, (checkout_ref, checkout_url, request_id)))

    async def get_payment(self, request_id: str) -> Payment | None:
        row = await self._read(lambda conn: conn.execute(q.GET_PAYMENT, (request_id,)).fetchone())
        return None if row is None else q.payment_of(row)

    async def payment_by_checkout(self, checkout_ref: str) -> Payment | None:
        row = await self._read(lambda conn: conn.execute(q.BY_CHECKOUT, (checkout_ref,)).fetchone())
        return None if row is None else q.payment_of(row)

    async def mark_payment_paid(self, request_id: str, payment_ref: str, now_ms: int) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            owner = conn.execute(q.BY_PAYMENT_REF, (payment_ref,)).fetchone()
            if owner is not None and owner["request_id"] != request_id:
                raise PaymentReused("this payment was already used for another request")
            return conn.execute(q.MARK_PAID, (payment_ref, now_ms, request_id)).rowcount == 1

        return bool(await self._write(tx))

    async def refunds_due(self, now_ms: int, limit: int) -> list[Payment]:
        rows = await self._read(lambda conn: conn.execute(q.REFUNDS_DUE, (now_ms, limit)).fetchall())
        return [q.payment_of(r) for r in rows]

    async def record_refund(self, request_id: str, status: RefundStatus, refund_id: str | None, error: str | None,
                            next_at_ms: int | None, now_ms: int) -> None:
        await self._write(lambda conn: conn.execute(
            q.RECORD_REFUND, (status, refund_id, error, next_at_ms, now_ms, request_id)))

    async def payments_for(self, venue_id: str, request_ids: list[str]) -> dict[str, Payment]:
        if not request_ids:
            return {}
        rows = await self._read(lambda conn: conn.execute(
            q.payments_for(len(request_ids)), (venue_id, *request_ids)).fetchall())
        return {r["request_id"]: q.payment_of(r) for r in rows}

    async def refunds(self, venue_id: str, limit: int) -> list[Payment]:
        rows = await self._read(lambda conn: conn.execute(q.REFUNDS, (venue_id, limit)).fetchall())
        return [q.payment_of(r) for r in rows]

    async def drop_unpaid(self, before_ms: int) -> int:
        return int(await self._write(lambda conn: conn.execute(q.DROP_UNPAID, (before_ms,)).rowcount))

    async def unplayed_paid(self, queued_before_ms: int, limit: int) -> list[tuple[str, str]]:
        rows = await self._read(lambda conn: conn.execute(q.UNPLAYED_PAID, (queued_before_ms, limit)).fetchall())
        return [(r["venue_id"], r["request_id"]) for r in rows]

    async def get_request(self, request_id: str) -> RequestRecord | None:
        row = await self._read(lambda conn: conn.execute(q.GET_REQUEST, (request_id,)).fetchone())
        return None if row is None else request_of(row)
