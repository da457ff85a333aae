"""Revocable tokens: every request's bearer token is checked against the store, once, in a middleware.

A JWT alone stays valid until it expires. Each of ours carries the ``ver`` of its user or device, and a
request is refused when that record has moved on: the user's role or venue changed, they signed out
everywhere or were removed; the device was revoked or re-issued (paired again). The answer is kept on
the request, so handlers go on calling ``principal_of(request)`` without awaiting anything.
"""

from __future__ import annotations

from djamms_edge.hub.auth import Principal
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.store.base import HubStore

SIGN_IN_AGAIN = "token no longer valid (signed out, or your role or venue changed): sign in again"
DEVICE_REVOKED = "device token revoked or replaced: pair the box again"


async def check_current(store: HubStore, principal: Principal) -> None:
    """ApiError(401) unless ``principal``'s token still matches its user's or device's record."""
    if principal.role == "device":
        assert principal.venue_id is not None  # auth._decode refuses device tokens without a venue
        current = await store.device_token_version(principal.venue_id, principal.subject)
        if current != principal.token_version:
            raise ApiError(401, DEVICE_REVOKED, "Authorization")
        return
    user = await store.get_user(principal.subject)
    if user is None or user.token_version != principal.token_version:
        raise ApiError(401, SIGN_IN_AGAIN, "Authorization")
