"""REST endpoints of the console's accounts side: venues, users, boxes (revoke, re-issue, pairing) and the
venue dashboard. Every one checks role and venue; the rules themselves live in ``accounts`` and the store."""

from __future__ import annotations

import logging

from aiohttp import web

from djamms_edge.hub import accounts, pairing
from djamms_edge.hub.auth import (
    Principal,
    issue_device_token,
    require,
    require_admin,
    require_owner,
    require_staff,
)
from djamms_edge.hub.context import CREDENTIALS, SERVICE, client_address, principal_of
from djamms_edge.hub.dashboard import venue_dashboard
from djamms_edge.hub.errors import ApiError
from djamms_edge.hub.ratelimit import RateLimiter
from djamms_edge.hub.store.base import DeviceReport, Json
from djamms_edge.hub.web_input import Fields, check_id, read_json

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
API = "/api/v1"
VENUE = API + "/venues/{venueId}"
MAX_PROBLEMS = 20
MAX_PROBLEM_CHARS = 300
PAIRING_POLL_S = 2.0  # how often a box asks whether its code was entered


class PairingLimits:
    """Budgets shared by every hub instance on the store: codes asked per address, codes tried per venue."""

    def __init__(self, created: RateLimiter, claimed: RateLimiter) -> None:
        self.created = created
        self.claimed = claimed


PAIRING_LIMITS = web.AppKey("pairing_limits", PairingLimits)


def setup(app: web.Application) -> None:
    service = app[SERVICE]
    limits = service.config.limits
    app[PAIRING_LIMITS] = PairingLimits(
        service.store.rate_limiter("pairings_per_address", limits.pairings_per_address, limits.pairing_window_s),
        service.store.rate_limiter("pairing_claims_per_venue", limits.pairing_claims_per_venue,
                                   limits.pairing_window_s),
    )
    app.add_routes(routes)


def _venue(request: web.Request) -> str:
    return check_id(request.match_info["venueId"], "venueId")


async def _fields(request: web.Request) -> Fields:
    return Fields(await read_json(request))


# --- device reports (the fields a box sends with register and heartbeat) ---------------------------


def device_report(f: Fields, user_agent: str | None) -> DeviceReport:
    """The optional ``version``, ``nowPlaying`` and ``problems`` of a register/heartbeat body."""
    playing: Json | None = None
    if f.data.get("nowPlaying") is not None:
        p = f.obj("nowPlaying")
        playing = {
            "entryId": p.ident("entryId", required=False),
            "videoId": p.optional_text("videoId"),
            "title": p.optional_text("title"),
            "artist": p.optional_text("artist"),
            "position": p.number("position", required=False),
            "duration": p.number("duration", required=False),
        }
    problems = f.data.get("problems") or []
    if not isinstance(problems, list) or len(problems) > MAX_PROBLEMS:
        raise ApiError(400, f"must be a list of at most {MAX_PROBLEMS} strings", "problems")
    lines = Fields({str(i): p for i, p in enumerate(problems)}, "problems")
    return DeviceReport(f.optional_text("version", max_len=64), playing,
                        tuple(lines.text(str(i), max_len=MAX_PROBLEM_CHARS) for i in range(len(problems))),
                        user_agent)


# --- venues and users ------------------------------------------------------------------------------


@routes.get(API + "/venues")
async def list_venues(request: web.Request) -> web.Response:
    """Admins: every venue; staff: their own."""
    who = require(principal_of(request))
    if who.role == "device":
        raise ApiError(403, "staff or admin token required", "Authorization")
    venues = await request.app[SERVICE].store.list_venues()
    mine = [v for v in venues if who.role == "admin" or v.venue_id == who.venue_id]
    return web.json_response({"venues": [v.to_json() for v in mine]})


@routes.get(VENUE)
async def get_venue(request: web.Request) -> web.Response:
    venue_id = _venue(request)
    require_staff(principal_of(request), venue_id)
    return web.json_response((await accounts.require_venue(request.app[SERVICE].store, venue_id)).to_json())


@routes.get(API + "/users")
async def list_users(request: web.Request) -> web.Response:
    """Admins: every user, or one venue's (``?venueId=``); staff and owners: their venue's."""
    who = require(principal_of(request))
    named = request.query.get("venueId")
    venue_id = check_id(named, "venueId") if named is not None else None
    if who.role != "admin":
        venue_id = venue_id or who.venue_id
        if venue_id is None:
            raise ApiError(403, "admin token required", "Authorization")
        require_staff(who, venue_id)
    users = await request.app[SERVICE].store.list_users(venue_id)
    return web.json_response({"users": [u.to_json() for u in users]})


@routes.put(API + "/users")
async def put_user(request: web.Request) -> web.Response:
    """Admin: create a user or change an existing one's role and venue (keyed by email). A venue's owner: add
    someone to its staff (``role`` staff, ``venueId`` theirs or left out; see ``accounts.add_staff``). A change
    ends the user's old tokens."""
    who = require(principal_of(request))
    f = await _fields(request)
    email = f.email("email")
    role = accounts.check_role(f.text("role"))
    venue_id = f.ident("venueId", required=False)
    service = request.app[SERVICE]
    if who.role == "owner" and who.venue_id is not None:
        venue_id = venue_id or who.venue_id
        require_owner(who, venue_id)
        if role != "staff":
            raise ApiError(403, "an owner adds staff; only the hub's admin makes owners and admins", "role")
        before = await service.store.get_user_by_email(email)
        saved = await accounts.add_staff(service.store, email, venue_id, service.now_ms())
    else:
        require_admin(who)
        before = await service.store.get_user_by_email(email)
        saved = await accounts.set_user(service.store, email, role, venue_id, service.now_ms())
    request.app[CREDENTIALS].forget()  # a role or venue change ends the user's tokens now
    log.info("user %s set to %s of %s by %s", saved.user_id, saved.role, saved.venue_id, who.label)
    # Someone new to the venue's team (or to their role in it) is mailed where to sign in.
    invited = False
    joined = before is None or (before.venue_id, before.role) != (saved.venue_id, saved.role)
    venue = None if saved.venue_id is None or not joined else await service.store.get_venue(saved.venue_id)
    if venue is not None:
        invited = await service.mail_invitation(saved, venue, who.email or "The hub's admin")
    return web.json_response({**saved.to_json(), "invited": invited})


def _user_param(request: web.Request) -> str:
    return check_id(request.match_info["userId"], "userId")


async def _staff_of_theirs(request: web.Request, who: Principal, user_id: str) -> str | None:
    """Whose staff ``who`` may act on: None for the admin (anyone); an owner's venue, after refusing, in words,
    an owner of it (themself included: only the admin changes an owner). Anyone else may not."""
    if who.role == "admin":
        return None
    if who.role != "owner" or who.venue_id is None:
        raise ApiError(403, "only the venue's owners and the hub's admin change its team", "Authorization")
    target = await request.app[SERVICE].store.get_user(user_id)
    if target is not None and target.venue_id == who.venue_id and target.role == "owner":
        raise ApiError(403, "an owner of this venue: only the hub's admin changes an owner", "userId")
    return who.venue_id


def _no_such_person(user_id: str, venue_id: str | None) -> ApiError:
    # To an owner, someone of another venue is as unknown as nobody: a user id tells them nothing.
    where = "" if venue_id is None else f" on the staff of venue {venue_id!r}"
    return ApiError(404, f"unknown user {user_id!r}{where}", "userId")


@routes.delete(API + "/users/{userId}")
async def remove_user(request: web.Request) -> web.Response:
    """Admin: the user is gone and every token of theirs stops working. A venue's owner: the same for its staff."""
    who = require(principal_of(request))
    user_id = _user_param(request)
    staff_of = await _staff_of_theirs(request, who, user_id)
    if not await request.app[SERVICE].store.remove_user(user_id, only_staff_of=staff_of):
        raise _no_such_person(user_id, staff_of)
    request.app[CREDENTIALS].forget()
    log.info("user %s removed by %s", user_id, who.label)
    return web.json_response({"userId": user_id, "removed": True})


@routes.post(API + "/users/{userId}/sign-out")
async def sign_out_everywhere(request: web.Request) -> web.Response:
    """The user themself, their venue's owners (of its staff) or an admin: every token issued so far stops
    working (this one too, for the user themself)."""
    who = require(principal_of(request))
    user_id = _user_param(request)
    if who.role == "device":
        raise ApiError(403, "only the user themself, their venue's owners or an admin", "userId")
    staff_of = None if who.subject == user_id else await _staff_of_theirs(request, who, user_id)
    version = await request.app[SERVICE].store.bump_user_tokens(user_id, only_staff_of=staff_of)
    request.app[CREDENTIALS].forget()
    if version is None:
        raise _no_such_person(user_id, staff_of)
    log.info("user %s signed out everywhere by %s", user_id, who.label)
    return web.json_response({"userId": user_id, "signedOut": True})


# --- boxes -----------------------------------------------------------------------------------------


def _device_param(request: web.Request) -> str:
    return check_id(request.match_info["deviceId"], "deviceId")


@routes.get(VENUE + "/devices")
async def list_devices(request: web.Request) -> web.Response:
    venue_id = _venue(request)
    require_staff(principal_of(request), venue_id)
    dashboard = await venue_dashboard(request.app[SERVICE], venue_id)
    return web.json_response({"devices": dashboard["boxes"]})


@routes.get(VENUE + "/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    venue_id = _venue(request)
    require_staff(principal_of(request), venue_id)
    return web.json_response(await venue_dashboard(request.app[SERVICE], venue_id))


@routes.post(VENUE + "/devices/{deviceId}/revoke")
async def revoke_device(request: web.Request) -> web.Response:
    """Staff: the box's token stops working at once and its master lease ends (a standby takes over)."""
    venue_id, device_id = _venue(request), _device_param(request)
    who = require_staff(principal_of(request), venue_id)
    service = request.app[SERVICE]
    await accounts.require_venue(service.store, venue_id)
    if not await service.store.revoke_device(venue_id, device_id, service.now_ms()):
        raise ApiError(404, f"no box {device_id!r} is known at venue {venue_id!r}", "deviceId")
    request.app[CREDENTIALS].forget()
    log.info("venue %s: device %s revoked by %s", venue_id, device_id, who.label)
    return web.json_response({"venueId": venue_id, "deviceId": device_id, "revoked": True})


@routes.post(VENUE + "/devices/{deviceId}/token")
async def reissue_device_token(request: web.Request) -> web.Response:
    """Admin: a new token for the box (earlier ones stop working). Staff pair boxes instead."""
    venue_id, device_id = _venue(request), _device_param(request)
    require_admin(principal_of(request))
    service = request.app[SERVICE]
    token = await accounts.current_device_token(service.store, service.config, venue_id, device_id, service.clock(),
                                                reissue=True)
    request.app[CREDENTIALS].forget()
    return web.json_response({"venueId": venue_id, "deviceId": device_id, "deviceToken": token}, status=201)


# --- pairing ---------------------------------------------------------------------------------------


@routes.post(API + "/pairings")
async def start_pairing(request: web.Request) -> web.Response:
    """A box without a token asks for a code to show; no authentication (it has none yet), rate-limited."""
    f = await _fields(request)
    device_id = f.ident("deviceId")
    assert device_id is not None
    service = request.app[SERVICE]
    if not await request.app[PAIRING_LIMITS].created.take(client_address(request), service.clock()):
        raise ApiError(429, "Too many pairing codes from this address; try again later", "client")
    ttl_ms = service.config.auth.pairing_code_ttl_s * 1000
    secret = pairing.new_secret()
    for _ in range(5):  # a live code drawn twice: draw again
        code = pairing.new_code()
        now_ms = service.now_ms()
        if await service.store.create_pairing(pairing.code_hash(service.config.jwt_secret, code),
                                              pairing.secret_hash(secret), device_id, now_ms + ttl_ms, now_ms):
            return web.json_response({"code": pairing.display_code(code), "secret": secret, "deviceId": device_id,
                                      "expiresAt": now_ms + ttl_ms, "pollAfter": PAIRING_POLL_S}, status=201)
    raise ApiError(503, "could not draw a free pairing code; try again", "code")


@routes.post(API + "/pairings/collect")
async def collect_pairing(request: web.Request) -> web.Response:
    """The box polls with its secret: 202 while waiting, then (once) its venue and device token."""
    f = await _fields(request)
    secret = f.text("secret", max_len=128)
    service = request.app[SERVICE]
    state = await service.store.collect_pairing(pairing.secret_hash(secret), service.now_ms())
    if state.status == "pending":
        return web.json_response({"status": "pending", "expiresAt": state.expires_at_ms}, status=202)
    if state.status != "claimed" or state.venue_id is None or state.device_id is None:
        raise ApiError(404, "unknown, expired or already collected pairing: ask for a new code", "secret")
    token = issue_device_token(service.config.jwt_secret, state.venue_id, state.device_id, service.clock(),
                               service.config.auth.device_token_days * accounts.DAY_S, state.token_version or 0)
    log.info("venue %s: device %s paired", state.venue_id, state.device_id)
    return web.json_response({"status": "paired", "venueId": state.venue_id, "deviceId": state.device_id,
                              "deviceToken": token})


@routes.post(VENUE + "/pairings")
async def claim_pairing(request: web.Request) -> web.Response:
    """Staff enter the code a box shows: that box becomes one of this venue's (its token is collected next)."""
    venue_id = _venue(request)
    who: Principal = require_staff(principal_of(request), venue_id)
    f = await _fields(request)
    code = pairing.normalize_code(f.text("code", max_len=32))
    service = request.app[SERVICE]
    await accounts.require_venue(service.store, venue_id)
    if not await request.app[PAIRING_LIMITS].claimed.take(venue_id, service.clock()):
        raise ApiError(429, "Too many pairing attempts for this venue; wait a few minutes", "code")
    state = await service.store.claim_pairing(pairing.code_hash(service.config.jwt_secret, code), venue_id,
                                              who.label, service.now_ms())
    request.app[CREDENTIALS].forget()  # the box's earlier token (if any) ends with the new pairing
    if state.status != "claimed":
        raise ApiError(404, "no box shows this code (mistyped, expired or used): check the code on the box", "code")
    log.info("venue %s: %s paired device %s", venue_id, who.label, state.device_id)
    return web.json_response({"venueId": venue_id, "deviceId": state.device_id, "paired": True}, status=201)
