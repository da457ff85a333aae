"""SQL of the payment tables, shared by both backends (written with ``?``; ``numbered`` makes ``$n``)."""

from __future__ import annotations

import re

from djamms_edge.hub.store.base import Payment, VenuePrice
from djamms_edge.hub.store.rows import Row, song_of

GET_PRICE = ("SELECT v.venue_id, p.price_minor, p.currency FROM venues v"
             " LEFT JOIN venue_prices p USING (venue_id) WHERE v.venue_id = ?")
SET_PRICE = ("INSERT INTO venue_prices (venue_id, price_minor, currency, updated_at_ms) VALUES (?, ?, ?, ?)"
             " ON CONFLICT (venue_id) DO UPDATE SET price_minor = excluded.price_minor,"
             " currency = excluded.currency, updated_at_ms = excluded.updated_at_ms")
INSERT_PAYMENT = (
    "INSERT INTO payments (request_id, venue_id, provider, amount_minor, currency, video_id, title, artist, duration,"
    " requester_id, client_address, status, checkout_ref, checkout_url, payment_ref, created_at_ms, updated_at_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SET_CHECKOUT = "UPDATE payments SET checkout_ref = ?, checkout_url = ? WHERE request_id = ?"
GET_PAYMENT = "SELECT * FROM payments WHERE request_id = ?"
BY_CHECKOUT = "SELECT * FROM payments WHERE checkout_ref = ?"
BY_PAYMENT_REF = "SELECT request_id FROM payments WHERE payment_ref = ?"
MARK_PAID = ("UPDATE payments SET status = 'paid', payment_ref = ?, updated_at_ms = ?"
             " WHERE request_id = ? AND status = 'awaiting_payment'")
REFUNDS_DUE = (
    "SELECT p.* FROM payments p JOIN requests r USING (request_id)"
    " WHERE r.status = 'refund_due' AND p.status = 'paid' AND p.amount_minor > 0"
    " AND (p.refund_status IS NULL OR p.refund_status = 'failed') AND COALESCE(p.refund_next_at_ms, 0) <= ?"
    " ORDER BY p.updated_at_ms LIMIT ?"
)
RECORD_REFUND = (
    "UPDATE payments SET refund_status = ?, refund_id = COALESCE(?, refund_id), refund_error = ?,"
    " refund_next_at_ms = ?, refund_attempts = refund_attempts + 1, updated_at_ms = ?"
    " WHERE request_id = ? AND (refund_status IS NULL OR refund_status = 'failed')"
)
REFUNDS = (
    "SELECT p.* FROM payments p JOIN requests r USING (request_id)"
    " WHERE p.venue_id = ? AND p.status = 'paid' AND (r.status = 'refund_due' OR p.refund_status IS NOT NULL)"
    " ORDER BY p.created_at_ms DESC LIMIT ?"
)
# Paid requests still waiting to be played that were queued before a moment (the venue has closed since).
UNPLAYED_PAID = (
    "SELECT r.venue_id, r.request_id FROM payments p JOIN requests r USING (request_id)"
    " WHERE r.status = 'pending' AND p.status = 'paid' AND p.amount_minor > 0 AND r.created_at_ms < ?"
    " ORDER BY r.created_at_ms LIMIT ?"
)
GET_REQUEST = "SELECT * FROM requests WHERE request_id = ?"
DROP_UNPAID = "DELETE FROM payments WHERE status = 'awaiting_payment' AND created_at_ms < ?"


def payments_for(count: int) -> str:
    return f"SELECT * FROM payments WHERE venue_id = ? AND request_id IN ({', '.join('?' * count)})"


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …`` (no ``?`` appears in these statements otherwise)."""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def payment_params(p: Payment) -> tuple[object, ...]:
    s = p.song
    return (p.request_id, p.venue_id, p.provider, p.amount_minor, p.currency, s.video_id, s.title, s.artist,
            s.duration, p.requester_id, p.client_address, p.status, p.checkout_ref, p.checkout_url, p.payment_ref,
            p.created_at_ms, p.created_at_ms)


def payment_of(row: Row) -> Payment:
    return Payment(
        row["request_id"], row["venue_id"], row["provider"], row["amount_minor"], row["currency"], song_of(row),
        row["requester_id"], row["client_address"], row["status"], row["created_at_ms"], row["checkout_ref"],
        row["checkout_url"], row["payment_ref"], row["refund_status"], row["refund_attempts"],
        row["refund_next_at_ms"], row["refund_error"], row["refund_id"],
    )


def price_of(row: Row) -> VenuePrice:
    if row["price_minor"] is None:
        return VenuePrice(0, "usd")  # never set: requests are free
    return VenuePrice(row["price_minor"], row["currency"])
