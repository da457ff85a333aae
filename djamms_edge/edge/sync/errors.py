"""How talking to the hub can fail, in the terms the rest of the edge acts on."""

from __future__ import annotations


class HubUnavailable(Exception):
    """No usable answer (connection refused, timeout, 5xx, garbage): try again later."""


class HubRefused(Exception):
    """The hub answered and said no (4xx): retrying the same request cannot help."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(f"{status} {message}")


class StaleEpoch(HubRefused):
    """A master-only write carried an epoch that no longer holds the venue's lease."""

    def __init__(self, message: str, current_epoch: int | None) -> None:
        self.current_epoch = current_epoch
        super().__init__(409, message, "stale_epoch")


class CredentialsRefused(Exception):
    """The hub refuses this box's token (revoked, replaced by a new pairing, or never valid): the box stops
    rather than play on as if the hub were merely unreachable."""
