"""The one error type handlers raise for a client's mistake: becomes ``{"error", "field"}`` with a 4xx."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, extra: dict[str, Any] | None = None,
                 *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra or {}
        self.headers = headers or {}  # e.g. Retry-After on a 503

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field, **self.extra}
