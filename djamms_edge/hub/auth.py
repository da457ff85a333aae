"""JWTs (HS256 only) and who may do what.

Tokens are verified with ``algorithms=["HS256"]`` pinned, so ``alg: none`` and
algorithm-confusion tokens are refused; ``exp`` and ``iat`` are required.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.store.base import User

ALGORITHM = "HS256"
PrincipalRole = Literal["admin", "owner", "staff", "device"]
STAFF_ROLES = ("owner", "staff")  # people of one venue: an owner is staff who also runs the venue's team


@dataclass(frozen=True, slots=True)
class Principal:
    role: PrincipalRole
    subject: str  # userId, or deviceId for devices
    venue_id: str | None
    email: str | None = None
    token_version: int = 0  # checked against the user's or device's record on every request (credentials.py)

    @property
    def device_id(self) -> str | None:
        return self.subject if self.role == "device" else None

    @property
    def is_staff(self) -> bool:
        """A person of one venue (staff or its owner), not the hub's admin nor a box."""
        return self.role in STAFF_ROLES

    @property
    def label(self) -> str:
        return f"{self.role}:{self.subject}"


def issue_user_token(secret: str, user: User, now_s: float, ttl_s: float) -> str:
    claims: dict[str, Any] = {
        "userId": user.user_id,
        "email": user.email,
        "venueId": user.venue_id,
        "role": user.role,
        "ver": user.token_version,
        "sub": user.user_id,
        "iat": int(now_s),
        "exp": int(now_s + ttl_s),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def issue_device_token(secret: str, venue_id: str, device_id: str, now_s: float, ttl_s: float,
                       version: int = 0) -> str:
    """``version``: the device's token_version in the store (a token made before a re-issue or revocation
    carries an older one and is refused)."""
    claims: dict[str, Any] = {
        "role": "device",
        "venueId": venue_id,
        "deviceId": device_id,
        "ver": version,
        "sub": f"device:{device_id}",
        "iat": int(now_s),
        "exp": int(now_s + ttl_s),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class TokenVerifier:
    """Bearer tokens to principals, with a small cache of tokens already verified.

    PyJWT spends ~150 µs per decode; an edge sends the same token with every heartbeat.
    A cached token was verified against this process's (unchanging) secret; its expiry
    is still checked on every use."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time, size: int = 10_000) -> None:
        self.secret = secret
        self.clock = clock
        self.size = size
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, token: str) -> Principal:
        hit = self._cache.get(token)
        if hit is not None and hit[1] > self.clock():
            self._cache.move_to_end(token)
            return hit[0]
        principal, expires = _decode(self.secret, token)
        self._cache[token] = (principal, expires)
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return principal


FEED_TICKET_AUDIENCE = "djamms-feed"  # a ticket is no bearer token: _decode refuses tokens with an audience


def issue_feed_ticket(secret: str, who: Principal, venue_id: str, now_s: float, ttl_s: float) -> str:
    """A short-lived ticket a browser passes in the feed's URL (it cannot set an Authorization header on a
    WebSocket): good for ``venue_id``'s feed only, as ``who``."""
    claims: dict[str, Any] = {"aud": FEED_TICKET_AUDIENCE, "role": who.role, "sub": who.subject,
                              "venueId": who.venue_id, "feedVenue": venue_id, "iat": int(now_s),
                              "exp": int(now_s + ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_feed_ticket(secret: str, ticket: str, venue_id: str) -> Principal:
    """The principal a feed ticket was issued to; ApiError(401) if it is expired, forged or for another venue."""
    try:
        claims = jwt.decode(ticket, secret, algorithms=[ALGORITHM], audience=FEED_TICKET_AUDIENCE,
                            options={"require": ["exp", "iat", "sub", "aud"]})
    except jwt.InvalidTokenError:
        raise ApiError(401, "invalid or expired feed ticket; fetch a new one", "ticket") from None
    role, subject, venue = claims.get("role"), claims.get("sub"), claims.get("venueId")
    if claims.get("feedVenue") != venue_id or role not in ("admin", *STAFF_ROLES, "device") \
            or not isinstance(subject, str):
        raise ApiError(401, "this feed ticket is not for this venue", "ticket")
    return Principal(role, subject, venue if isinstance(venue, str) else None)


def _decode(secret: str, token: str) -> tuple[Principal, float]:
    """The principal of a bearer token and its expiry, or ApiError(401) naming why it was refused."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token expired", "Authorization") from None
    except jwt.InvalidTokenError as exc:
        raise ApiError(401, f"invalid token: {exc}", "Authorization") from None
    role = claims.get("role")
    venue = claims.get("venueId")
    if venue is not None and not isinstance(venue, str):
        raise ApiError(401, "invalid token: venueId", "Authorization")
    # Tokens made before versions existed carry none: version 0, which a re-issue or sign-out ends.
    version = claims.get("ver", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ApiError(401, "invalid token: ver", "Authorization")
    if role == "device":
        device = claims.get("deviceId")
        if not isinstance(device, str) or not venue:
            raise ApiError(401, "invalid token: device tokens name a venue and a device", "Authorization")
        return Principal("device", device, venue, token_version=version), float(claims["exp"])
    if role in ("admin", *STAFF_ROLES) and isinstance(claims.get("userId"), str):
        email = claims.get("email")
        principal = Principal(role, claims["userId"], venue, email if isinstance(email, str) else None, version)
        return principal, float(claims["exp"])
    raise ApiError(401, "invalid token: unknown role", "Authorization")


def require(principal: Principal | None) -> Principal:
    if principal is None:
        raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'", "Authorization")
    return principal


def require_staff(principal: Principal | None, venue_id: str) -> Principal:
    """Admins anywhere; staff (owners included) of this venue only."""
    who = require(principal)
    if who.role == "admin" or (who.is_staff and who.venue_id == venue_id):
        return who
    raise ApiError(403, f"{who.role} token may not manage venue {venue_id!r}", "venueId")


def require_owner(principal: Principal | None, venue_id: str) -> Principal:
    """Admins anywhere; the venue's owners for its team (staff may not change it)."""
    who = require_staff(principal, venue_id)
    if who.role in ("admin", "owner"):
        return who
    raise ApiError(403, "only the venue's owners and the hub's admin change its team", "Authorization")


def require_venue_member(principal: Principal | None, venue_id: str) -> Principal:
    """Staff/admin as above, or a device of this venue."""
    who = require(principal)
    if who.role == "device" and who.venue_id == venue_id:
        return who
    return require_staff(who, venue_id)


def require_player(principal: Principal | None, venue_id: str, device_id: str) -> Principal:
    """Who may act for a player: the device itself, or staff of the venue running a browser player."""
    who = require_venue_member(principal, venue_id)
    if who.role == "device" and who.device_id != device_id:
        raise ApiError(403, f"this device token is for device {who.device_id!r}, not {device_id!r}", "deviceId")
    return who


def require_admin(principal: Principal | None) -> Principal:
    who = require(principal)
    if who.role != "admin":
        raise ApiError(403, "admin token required", "Authorization")
    return who


def new_link_secret() -> tuple[str, str]:
    """A magic-link secret (32 random bytes, hex) and the only thing we store: its sha256."""
    secret = secrets.token_hex(32)
    return secret, hash_link_secret(secret)


def hash_link_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
