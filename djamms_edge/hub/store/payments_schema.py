"""The payment tables (issue 11), one text for both backends' migrations (types both accept)."""

from __future__ import annotations

TABLES = [
    """CREATE TABLE venue_prices (
        venue_id TEXT PRIMARY KEY REFERENCES venues(venue_id),
        price_minor BIGINT NOT NULL CHECK (price_minor >= 0),   -- smallest currency unit; 0 = free
        currency TEXT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    )""",
    # One row per request that went through a payment provider. The request row (requests) appears only
    # once the payment is verified; refunds of refused paid requests are tracked here.
    """CREATE TABLE payments (
        request_id TEXT PRIMARY KEY,
        venue_id TEXT NOT NULL REFERENCES venues(venue_id),
        provider TEXT NOT NULL,
        amount_minor BIGINT NOT NULL,
        currency TEXT NOT NULL,
        video_id TEXT NOT NULL,
        title TEXT NOT NULL,
        artist TEXT NOT NULL,
        duration DOUBLE PRECISION NOT NULL,
        requester_id TEXT,
        client_address TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('awaiting_payment', 'paid')),
        checkout_ref TEXT UNIQUE,
        checkout_url TEXT,
        payment_ref TEXT UNIQUE,                 -- a provider payment is used once
        refund_status TEXT CHECK (refund_status IN ('refunded', 'failed')),
        refund_attempts INTEGER NOT NULL DEFAULT 0,
        refund_next_at_ms BIGINT,
        refund_error TEXT,
        refund_id TEXT,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    )""",
    "CREATE INDEX payments_by_venue ON payments (venue_id, created_at_ms)",
]
