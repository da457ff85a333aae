"""Revocable credentials: token versions for people, revoke/re-issue and pairing for boxes, the dashboard,
and who may call each of these endpoints (both stores)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from djamms_edge.hub.auth import issue_user_token
from djamms_edge.hub.config import AuthConfig, LimitsConfig
from djamms_edge.hub.dashboard import box_role
from djamms_edge.hub.pairing import ALPHABET
from djamms_edge.hub.store.base import DeviceRecord, DeviceReport, MasterInfo
from tests.hub.conftest import SECRET, Hub, HubFactory, hub_config

REPORT = {"version": "0.9.1", "problems": ["deno missing: YouTube fetches will fail"],
          "nowPlaying": {"entryId": "e-1", "videoId": "dQw4w9WgXcQ", "title": "Song", "artist": "Band",
                         "position": 12.5, "duration": 200.0}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def signed_in(hub: Hub, email: str, role: str, venue: str | None) -> tuple[str, dict[str, str]]:
    """A user as the admin sets them up, and a token as a magic link would give it (their current version)."""
    status, user = await hub.call("PUT", "/api/v1/users", {"email": email, "role": role, "venueId": venue},
                                  hub.admin())
    assert status == 200, user
    stored = await hub.store.get_user(user["userId"])
    assert stored is not None
    return user["userId"], bearer(issue_user_token(SECRET, stored, time.time(), 3600))


async def test_a_role_or_venue_change_sign_out_or_removal_ends_a_users_tokens_at_once(hub: Hub) -> None:
    venue_a, venue_b = await hub.venue(), await hub.venue()
    user_id, token = await signed_in(hub, "sam@example.com", "staff", venue_a)
    assert (await hub.call("GET", f"/api/v1/venues/{venue_a}/dashboard", headers=token))[0] == 200
    # Moved to venue B: the old token (which still says venue A) is refused at once, for A and B alike.
    await signed_in(hub, "sam@example.com", "staff", venue_b)
    for venue in (venue_a, venue_b):
        status, body = await hub.call("GET", f"/api/v1/venues/{venue}/dashboard", headers=token)
        assert (status, body["field"]) == (401, "Authorization") and "sign in again" in body["error"]
    # Signs in again: B's dashboard, not A's.
    _, token = await signed_in(hub, "sam@example.com", "staff", venue_b)
    assert (await hub.call("GET", f"/api/v1/venues/{venue_b}/dashboard", headers=token))[0] == 200
    assert (await hub.call("GET", f"/api/v1/venues/{venue_a}/dashboard", headers=token))[0] == 403
    # Nothing changed: setting the same role and venue again keeps the token.
    await hub.call("PUT", "/api/v1/users", {"email": "sam@example.com", "role": "staff", "venueId": venue_b},
                   hub.admin())
    assert (await hub.call("GET", "/api/v1/me", headers=token))[0] == 200
    # Sign-out everywhere by the user themself ends this very token.
    assert (await hub.call("POST", f"/api/v1/users/{user_id}/sign-out", headers=token))[0] == 200
    assert (await hub.call("GET", "/api/v1/me", headers=token))[0] == 401
    # Removal by an admin.
    _, token = await signed_in(hub, "sam@example.com", "staff", venue_b)
    assert (await hub.call("DELETE", f"/api/v1/users/{user_id}", headers=hub.admin()))[0] == 200
    assert (await hub.call("GET", "/api/v1/me", headers=token))[0] == 401
    assert (await hub.call("DELETE", f"/api/v1/users/{user_id}", headers=hub.admin()))[0] == 404


async def test_staff_cannot_sign_out_or_remove_someone_else(hub: Hub) -> None:
    venue = await hub.venue()
    other_id, other = await signed_in(hub, "other@example.com", "staff", venue)
    assert (await hub.call("POST", f"/api/v1/users/{other_id}/sign-out", headers=hub.staff(venue)))[0] == 403
    assert (await hub.call("DELETE", f"/api/v1/users/{other_id}", headers=hub.staff(venue)))[0] == 403
    assert (await hub.call("GET", "/api/v1/me", headers=other))[0] == 200


async def test_a_revoked_box_is_refused_at_once_and_loses_its_lease(hub: Hub) -> None:
    venue = await hub.venue()
    box = hub.device(venue, "box-a")
    path = f"/api/v1/venues/{venue}/players"
    assert (await hub.call("POST", f"{path}/register", {"deviceId": "box-a"}, box))[1]["status"] == "registered"
    status, body = await hub.call("POST", f"/api/v1/venues/{venue}/devices/box-a/revoke", headers=hub.staff(venue))
    assert (status, body["revoked"]) == (200, True)
    status, body = await hub.call("POST", f"{path}/heartbeat", {"deviceId": "box-a"}, box)
    assert (status, body["field"]) == (401, "Authorization") and "revoked" in body["error"]
    assert (await hub.call("GET", f"/api/v1/venues/{venue}/master", headers=hub.staff(venue)))[1] == {"master": None}
    # A standby takes over at once, without waiting for the revoked master to go stale.
    standby = await hub.call("POST", f"{path}/register", {"deviceId": "box-b"}, hub.device(venue, "box-b"))
    assert standby[1]["status"] == "registered"
    # The dashboard says so.
    _, dashboard = await hub.call("GET", f"/api/v1/venues/{venue}/dashboard", headers=hub.staff(venue))
    assert {b["deviceId"]: b["role"] for b in dashboard["boxes"]} == {"box-a": "revoked", "box-b": "master"}
    # Re-issued by an admin: the new token works, the old one stays refused.
    status, issued = await hub.call("POST", f"/api/v1/venues/{venue}/devices/box-a/token", headers=hub.admin())
    assert status == 201
    assert (await hub.call("GET", f"/api/v1/venues/{venue}/queue/full", headers=box))[0] == 401
    assert (await hub.call("GET", f"/api/v1/venues/{venue}/queue/full", headers=bearer(issued["deviceToken"])))[0] \
        == 200
    # Unknown boxes cannot be revoked.
    assert (await hub.call("POST", f"/api/v1/venues/{venue}/devices/box-zz/revoke", headers=hub.staff(venue)))[0] \
        == 404


async def pair(hub: Hub, device_id: str) -> dict[str, Any]:
    status, started = await hub.call("POST", "/api/v1/pairings", {"deviceId": device_id})
    assert status == 201, started
    return dict(started)


async def test_a_box_pairs_by_its_code_once_and_then_plays_for_the_venue(hub: Hub) -> None:
    venue = await hub.venue()
    started = await pair(hub, "box-new")
    code = started["code"]
    assert len(code) == 7 and code[3] == "-" and all(ch in ALPHABET for ch in code.replace("-", ""))
    collect = {"secret": started["secret"]}
    assert (await hub.call("POST", "/api/v1/pairings/collect", collect))[0] == 202
    # Staff type it as they read it: any case, with spaces.
    typed = code.lower().replace("-", " ")
    status, claimed = await hub.call("POST", f"/api/v1/venues/{venue}/pairings", {"code": typed}, hub.staff(venue))
    assert (status, claimed["deviceId"]) == (201, "box-new")
    assert (await hub.call("POST", f"/api/v1/venues/{venue}/pairings", {"code": code}, hub.staff(venue)))[0] == 404
    status, paired = await hub.call("POST", "/api/v1/pairings/collect", collect)
    assert (status, paired["status"], paired["venueId"], paired["deviceId"]) == (200, "paired", venue, "box-new")
    assert (await hub.call("POST", "/api/v1/pairings/collect", collect))[0] == 404  # handed out once
    box = bearer(paired["deviceToken"])
    status, registered = await hub.call("POST", f"/api/v1/venues/{venue}/players/register", {"deviceId": "box-new"},
                                        box)
    assert (status, registered["status"]) == (200, "registered")
    # Pairing the same box again (its storage was wiped) ends the first token.
    again = await pair(hub, "box-new")
    await hub.call("POST", f"/api/v1/venues/{venue}/pairings", {"code": again["code"]}, hub.staff(venue))
    assert (await hub.call("POST", f"/api/v1/venues/{venue}/players/heartbeat", {"deviceId": "box-new"}, box))[0] \
        == 401


async def test_pairing_codes_expire_and_belong_to_the_venue_that_enters_them(hub: Hub) -> None:
    venue_a, venue_b = await hub.venue(), await hub.venue()
    started = await pair(hub, "box-x")
    # Staff of B cannot claim for A; a device cannot claim at all.
    assert (await hub.call("POST", f"/api/v1/venues/{venue_a}/pairings", {"code": started["code"]},
                           hub.staff(venue_b)))[0] == 403
    assert (await hub.call("POST", f"/api/v1/venues/{venue_a}/pairings", {"code": started["code"]},
                           hub.device(venue_a, "box-a")))[0] == 403
    hub.clock.advance(hub.config.auth.pairing_code_ttl_s + 1)
    status, body = await hub.call("POST", f"/api/v1/venues/{venue_a}/pairings", {"code": started["code"]},
                                  hub.staff(venue_a))
    assert (status, body["field"]) == (404, "code")
    assert (await hub.call("POST", "/api/v1/pairings/collect", {"secret": started["secret"]}))[0] == 404
    status, body = await hub.call("POST", f"/api/v1/venues/{venue_a}/pairings", {"code": "0O1-IL0"},
                                  hub.staff(venue_a))
    assert (status, body["field"]) == (400, "code")


async def test_pairing_is_rate_limited(start_hub: HubFactory) -> None:
    limits = dataclasses.replace(hub_config().limits, pairings_per_address=2, pairing_claims_per_venue=3)
    async with start_hub(hub_config(limits=limits, auth=AuthConfig())) as hub:
        venue = await hub.venue()
        assert [(await hub.call("POST", "/api/v1/pairings", {"deviceId": "b"}))[0] for _ in range(3)] == [201, 201, 429]
        tries = [(await hub.call("POST", f"/api/v1/venues/{venue}/pairings", {"code": "ABC-DEF"}, hub.staff(venue)))[0]
                 for _ in range(4)]
        assert tries == [404, 404, 404, 429]
    assert LimitsConfig().pairings_per_address == 10


async def test_the_dashboard_shows_each_box_as_it_reports_itself(hub: Hub) -> None:
    venue = await hub.venue()
    players = f"/api/v1/venues/{venue}/players"
    await hub.call("POST", f"{players}/register", {"deviceId": "box-a", **REPORT}, hub.device(venue, "box-a"))
    await hub.call("POST", f"{players}/register", {"deviceId": "box-b", "version": "0.9.0"},
                   hub.device(venue, "box-b"))
    await hub.call("POST", f"{players}/heartbeat", {"deviceId": "box-a", **REPORT}, hub.device(venue, "box-a"))
    await hub.call("POST", f"/api/v1/venues/{venue}/device-errors",
                   {"deviceId": "box-b", "message": "download failed: HTTP 403", "idempotencyKey": "k1"},
                   hub.device(venue, "box-b"))
    song = {"videoId": "kJQP7kiw5Fk", "title": "Paid", "artist": "Someone", "duration": 200}
    await hub.call("POST", f"/api/v1/venues/{venue}/requests", {"song": song, "paymentId": "pay-1"})
    await hub.call("POST", f"/api/v1/venues/{venue}/requests", {"song": {**song, "duration": 900},
                                                                 "paymentId": "pay-2"})
    hub.clock.advance(2)
    status, board = await hub.call("GET", f"/api/v1/venues/{venue}/dashboard", headers=hub.staff(venue))
    assert status == 200
    boxes = {b["deviceId"]: b for b in board["boxes"]}
    master, standby = boxes["box-a"], boxes["box-b"]
    assert (master["role"], master["version"], master["problems"]) == ("master", "0.9.1", REPORT["problems"])
    assert master["epoch"] == board["master"]["epoch"] == 1
    assert master["nowPlaying"]["title"] == "Song"
    assert 14.0 <= master["nowPlaying"]["position"] <= 20.0  # 12.5 s when reported, 2 s and a bit ago
    assert (standby["role"], standby["version"], standby["nowPlaying"], standby["epoch"]) == \
        ("standby", "0.9.0", None, None)
    assert [e["message"] for e in board["deviceErrors"]] == ["download failed: HTTP 403"]
    assert (board["today"]["requests"], board["today"]["refunds"]) == (2, 1)
    assert board["venue"]["timezone"] == "UTC"
    hub.clock.advance(hub.config.registry.stale_after_s + 1)
    _, later = await hub.call("GET", f"/api/v1/venues/{venue}/dashboard", headers=hub.staff(venue))
    assert {b["deviceId"]: b["role"] for b in later["boxes"]} == {"box-a": "offline", "box-b": "offline"}


async def test_staff_see_their_venue_and_admins_every_venue(hub: Hub) -> None:
    venue_a, venue_b = await hub.venue(), await hub.venue()
    _, venues = await hub.call("GET", "/api/v1/venues", headers=hub.staff(venue_a))
    assert [v["venueId"] for v in venues["venues"]] == [venue_a]
    _, venues = await hub.call("GET", "/api/v1/venues", headers=hub.admin())
    assert {venue_a, venue_b} <= {v["venueId"] for v in venues["venues"]}
    _, users = await hub.call("GET", "/api/v1/users", headers=hub.staff(venue_a))
    assert {u["venueId"] for u in users["users"]} == {venue_a}
    assert (await hub.call("GET", f"/api/v1/users?venueId={venue_b}", headers=hub.staff(venue_a)))[0] == 403


STAFF_ENDPOINTS = [
    ("GET", "/api/v1/venues/{venue}", None),
    ("GET", "/api/v1/venues/{venue}/dashboard", None),
    ("GET", "/api/v1/venues/{venue}/devices", None),
    ("POST", "/api/v1/venues/{venue}/devices/box-a/revoke", None),
    ("POST", "/api/v1/venues/{venue}/pairings", {"code": "ABC-DEF"}),
]


@pytest.mark.parametrize(("method", "path", "body"), STAFF_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in STAFF_ENDPOINTS])
async def test_staff_of_one_venue_cannot_touch_another(hub: Hub, method: str, path: str, body: Any) -> None:
    venue_a, venue_b = await hub.venue(), await hub.venue()
    target = path.format(venue=venue_a)
    assert (await hub.call(method, target, body))[0] == 401
    for headers in (hub.staff(venue_b), hub.device(venue_a, "box-a")):
        status, answer = await hub.call(method, target, body, headers)
        assert status == 403, answer
    admin_only = f"/api/v1/venues/{venue_a}/devices/box-a/token"
    assert (await hub.call("POST", admin_only, headers=hub.staff(venue_a)))[0] == 403


def _box(revoked: bool = False, reported_at: int | None = 1_000) -> DeviceRecord:
    return DeviceRecord("v", "box-a", 0, revoked, DeviceReport(), reported_at)


@pytest.mark.parametrize(("device", "master", "now", "role"), [
    (_box(), MasterInfo("box-a", 3, 1_000, "p"), 5_000, "master"),
    (_box(), MasterInfo("box-a", 3, 1_000, "p"), 30_000, "offline"),  # holds a lease it no longer beats for
    (_box(), MasterInfo("box-b", 3, 1_000, "p"), 5_000, "standby"),
    (_box(), None, 5_000, "standby"),
    (_box(reported_at=None), None, 5_000, "offline"),
    (_box(revoked=True), MasterInfo("box-a", 3, 1_000, "p"), 5_000, "revoked"),
])
def test_a_boxs_role_on_the_dashboard(device: DeviceRecord, master: MasterInfo | None, now: int, role: str) -> None:
    assert box_role(device, master, now, stale_ms=20_000) == role
