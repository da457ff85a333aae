"""Revocable tokens: every request's bearer token is checked against the store, once, in a middleware.

A JWT alone stays valid until it expires. Each of ours carries the ``ver`` of its user or device, and a
request is refused when that record has moved on: the user's role or venue changed, they signed out
everywhere or were removed; the device was revoked or re-issued (paired again). The answer is kept on
the request, so handlers go on calling ``principal_of(request)`` without awaiting anything.

A heartbeat every few seconds from every box would otherwise read the store twice per beat, so versions
read are kept ``CACHE_S``; any change this process makes drops them at once (``forget``). A change made
by another hub instance (PostgreSQL) or by the ``djamms-hub`` CLI is seen within ``CACHE_S``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from djamms_edge.hub.auth import Principal
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.store.base import HubStore

SIGN_IN_AGAIN = "token no longer valid (signed out, or your role or venue changed): sign in again"
DEVICE_REVOKED = "device token revoked or replaced: pair the box again"
CACHE_S = 1.0
CACHE_MAX = 10_000  # principals remembered; beyond, the cache starts afresh

_Key = tuple[str, str, str | None]


class CredentialCheck:
    def __init__(self, store: HubStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._seen: dict[_Key, tuple[int | None, float]] = {}

    def forget(self) -> None:
        """A credential changed here: read every version afresh."""
        self._seen.clear()

    async def check(self, principal: Principal) -> None:
        """ApiError(401) unless ``principal``'s token still matches its user's or device's record."""
        device = principal.role == "device"
        current = await self._version(("device" if device else "user", principal.subject,
                                       principal.venue_id if device else None))
        if current != principal.token_version:
            raise ApiError(401, DEVICE_REVOKED if device else SIGN_IN_AGAIN, "Authorization")

    async def _version(self, key: _Key) -> int | None:
        now = self.clock()
        hit = self._seen.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        kind, subject, venue_id = key
        if kind == "device":
            assert venue_id is not None  # auth._decode refuses device tokens without a venue
            version = await self.store.device_token_version(venue_id, subject)
        else:
            user = await self.store.get_user(subject)
            version = None if user is None else user.token_version
        if len(self._seen) >= CACHE_MAX:
            self._seen.clear()
        self._seen[key] = (version, now + CACHE_S)
        return version
