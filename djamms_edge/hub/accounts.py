"""Venues, people and boxes: the onboarding rules the CLI (``djamms-hub venue/admin/user/device``) and the
REST API share, so both refuse the same mistakes with the same words."""

from __future__ import annotations

import uuid
import zoneinfo

from djamms_edge.hub.auth import issue_device_token
from djamms_edge.hub.config import HubConfig
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.store.base import HubStore, Role, User, Venue

DAY_S = 86400
MAX_TEAM = 500  # people an owner may have on a venue's team: a bound, not a business rule (the admin is not held)
SIGN_IN_PATH = "/console/sign-in"  # the console's sign-in page, under hub.public_url


def check_timezone(name: str, field: str = "timezone") -> str:
    """``name`` if it is an IANA time zone this machine knows ("Europe/Berlin", "UTC")."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ApiError(400, f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)", field) from None
    return name


def check_role(value: object) -> Role:
    match value:
        case "admin" | "owner" | "staff" as role:
            return role
    raise ApiError(400, "must be admin, owner or staff", "role")


async def create_venue(store: HubStore, venue_id: str, name: str, timezone: str, now_ms: int) -> bool:
    """True when created; False when a venue with this id exists already (it is left as it is)."""
    if not name.strip():
        raise ApiError(400, "must not be empty", "name")
    return await store.create_venue(venue_id, name.strip(), now_ms, check_timezone(timezone))


async def require_venue(store: HubStore, venue_id: str) -> Venue:
    venue = await store.get_venue(venue_id)
    if venue is None:
        raise ApiError(404, f"unknown venue {venue_id!r}", "venueId")
    return venue


async def set_user(store: HubStore, email: str, role: Role, venue_id: str | None, now_ms: int) -> User:
    """The admin: create the user, or change the role and venue of the one with this email (their old tokens
    stop working when either changes). Staff without a venue (as a first sign-in makes them) see no venue; an
    owner always has one."""
    if role == "owner" and venue_id is None:
        raise ApiError(400, "an owner runs a venue: name it", "venueId")
    if venue_id is not None:
        await require_venue(store, venue_id)
    return await store.upsert_user(User("user-" + uuid.uuid4().hex, email, venue_id, role), now_ms)


async def add_staff(store: HubStore, email: str, venue_id: str, now_ms: int) -> User:
    """A venue's owner adds someone to its staff: a new person, someone with no venue yet (a first sign-in),
    or someone on its staff already (nothing changes). Anyone else is refused, in words, and left as they are
    (decided in the store's one statement, so a concurrent change by the admin is never overwritten): a person
    on another venue's team is not moved away from it (the hub's admin moves people), an owner is not made
    staff (only the admin changes an owner, so no owner locks themself or a partner out), the admin stays."""
    await require_venue(store, venue_id)
    known = await store.get_user_by_email(email)
    if (known is None or known.venue_id != venue_id) and len(await store.list_users(venue_id)) >= MAX_TEAM:
        raise ApiError(409, f"a venue's team holds at most {MAX_TEAM} people: remove someone first", "email")
    user = await store.upsert_user(User("user-" + uuid.uuid4().hex, email, venue_id, "staff"), now_ms,
                                   only_staff_of=venue_id)
    if user.role == "staff" and user.venue_id == venue_id:
        return user
    if user.role == "admin":
        raise ApiError(409, f"{email} is the hub's admin, not someone a venue adds", "email")
    if user.venue_id == venue_id:
        raise ApiError(409, f"{email} is an owner of this venue already; only the hub's admin changes an owner",
                       "email")
    raise ApiError(409, f"{email} is on another venue's team: the hub's admin can move them here", "email")


async def current_device_token(store: HubStore, config: HubConfig, venue_id: str, device_id: str, now_s: float,
                               *, reissue: bool) -> str:
    """A device token for a box of a known venue. ``reissue``: a new version, so every earlier token of the
    box stops working (and a revocation is lifted); otherwise the box's current version (a revoked box is
    re-issued)."""
    await require_venue(store, venue_id)
    version = None if reissue else await store.device_token_version(venue_id, device_id)
    if version is None:
        version = await store.reissue_device(venue_id, device_id, int(now_s * 1000))
    return issue_device_token(config.jwt_secret, venue_id, device_id, now_s, config.auth.device_token_days * DAY_S,
                              version)
