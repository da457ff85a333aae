"""Magic-link login through a real SMTP server, one-time consumption, rate limits, and JWT refusals."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email
import email.policy
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from aiosmtpd.smtp import SMTP, Envelope

from djamms_edge.hub.config import AuthConfig, LimitsConfig, SmtpConfig
from tests.hub.conftest import SECRET, Hub, HubFactory, hub_config, staff_id

REDIRECT = "https://www.djamms.app/auth/verify"


class MailBox:
    """An aiosmtpd handler that hands each received mail to the test."""

    def __init__(self) -> None:
        self.mails: asyncio.Queue[Envelope] = asyncio.Queue()

    async def handle_DATA(self, server: SMTP, session: object, envelope: Envelope) -> str:
        self.mails.put_nowait(envelope)
        return "250 OK"

    async def next_link(self) -> tuple[str, str, Envelope]:
        mail = await asyncio.wait_for(self.mails.get(), timeout=5)
        raw = mail.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["Subject"] == "Sign in to DJAMMS"
        text = message.get_content()
        link = re.search(r"https://\S+", text)
        assert link is not None, text
        query = parse_qs(urlsplit(link.group(0)).query)
        return query["secret"][0], query["userId"][0], mail


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[MailBox, int]]:
    box = MailBox()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(box, hostname="localhost"), "127.0.0.1", 0)
    try:
        yield box, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def smtp_config(port: int) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, starttls=False, sender="DJAMMS <noreply@djamms.test>")


async def create_link(hub: Hub, email: str = "user@example.com", redirect: str = REDIRECT) -> tuple[int, dict]:
    return await hub.call("POST", "/api/v1/auth/magic-link", {"email": email, "redirectUrl": redirect})


async def verify(hub: Hub, secret: str, user_id: str = "user@example.com") -> tuple[int, dict]:
    return await hub.call("POST", "/api/v1/auth/verify", {"secret": secret, "userId": user_id})


async def test_magic_link_is_mailed_and_signs_in_once(start_hub: HubFactory, smtp: tuple[MailBox, int],
                                                      tmp_path: Path, backend: str) -> None:
    box, port = smtp
    async with start_hub(hub_config(smtp=smtp_config(port))) as hub:
        assert await create_link(hub) == (200, {"success": True, "message": "Magic link sent to your email"})
        secret, user_id, mail = await box.next_link()
        assert mail.rcpt_tos == ["user@example.com"]
        assert re.fullmatch(r"[0-9a-f]{64}", secret)  # 32 random bytes
        assert user_id == "user@example.com"

        status, body = await verify(hub, secret)
        assert status == 200
        user = body["user"]
        assert (user["email"], user["role"], user["autoplay"], user["venueId"]) == (
            "user@example.com", "staff", True, None)
        claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
        assert {k: claims[k] for k in ("userId", "email", "venueId", "role")} == {
            "userId": user["userId"], "email": "user@example.com", "venueId": None, "role": "staff"}
        assert claims["exp"] - claims["iat"] == 7 * 86400

        assert await verify(hub, secret) == (401, {"error": "Invalid or expired magic link", "field": "secret"})

        # A second login finds the same user instead of creating another.
        await create_link(hub)
        secret2, _, _ = await box.next_link()
        assert (await verify(hub, secret2))[1]["user"]["userId"] == user["userId"]
    if backend == "sqlite":  # only the hash is stored: the secret appears nowhere in the database files
        stored = b"".join(path.read_bytes() for path in tmp_path.glob("hub.db*"))  # noqa: ASYNC240 (test)
        assert len(stored) > 0 and secret.encode() not in stored


async def test_concurrent_verifies_of_one_link_yield_one_token(start_hub: HubFactory, smtp: tuple[MailBox, int]
                                                               ) -> None:
    box, port = smtp
    async with start_hub(hub_config(smtp=smtp_config(port))) as hub:
        await create_link(hub)
        secret, _, _ = await box.next_link()
        answers = await asyncio.gather(*(verify(hub, secret) for _ in range(20)))
        assert sorted(status for status, _ in answers) == [200] + [401] * 19


async def test_link_expires_after_fifteen_minutes(start_hub: HubFactory, smtp: tuple[MailBox, int]) -> None:
    box, port = smtp
    async with start_hub(hub_config(smtp=smtp_config(port))) as hub:
        await create_link(hub)
        secret, _, _ = await box.next_link()
        hub.clock.advance(15 * 60 + 1)
        assert (await verify(hub, secret))[0] == 401


async def test_without_smtp_the_link_goes_to_the_log(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="djamms_edge.hub.mailer"):
        assert (await create_link(hub, "nosmtp@example.com"))[0] == 200
    match = re.search(r"secret=([0-9a-f]{64})", caplog.text)
    assert match is not None
    assert (await verify(hub, match.group(1)))[0] == 200


async def test_smtp_down_is_a_503_not_a_500(start_hub: HubFactory) -> None:
    async with start_hub(hub_config(smtp=smtp_config(1))) as hub:  # port 1: nothing listens there
        status, body = await create_link(hub)
        assert status == 503 and "try again" in body["error"]


async def test_auto_create_off_refuses_unknown_users_without_burning_the_link(
    start_hub: HubFactory, smtp: tuple[MailBox, int]
) -> None:
    box, port = smtp
    config = hub_config(smtp=smtp_config(port), auth=AuthConfig(auto_create_users=False))
    async with start_hub(config) as hub:
        await create_link(hub, "new@example.com")
        secret, _, _ = await box.next_link()
        status, body = await verify(hub, secret, "new@example.com")
        assert (status, body["error"]) == (403, "User not found and auto-creation is disabled")
        venue = await hub.venue()
        status, _ = await hub.call("PUT", "/api/v1/users", {"email": "new@example.com", "role": "staff",
                                                            "venueId": venue}, hub.admin())
        assert status == 200
        status, body = await verify(hub, secret, "new@example.com")
        assert status == 200 and body["user"]["venueId"] == venue


async def test_magic_links_are_rate_limited_per_email_and_per_address(start_hub: HubFactory) -> None:
    limits = LimitsConfig(magic_links_per_email=2, magic_links_per_address=4, magic_link_window_s=900)
    async with start_hub(hub_config(limits=limits)) as hub:
        assert [(await create_link(hub, "a@example.com"))[0] for _ in range(3)] == [200, 200, 429]
        # The refused third one spent the address's own budget (4): one more link from it, then 429.
        assert [(await create_link(hub, f"{n}@example.com"))[0] for n in "bcd"] == [200, 429, 429]
        _, body = await create_link(hub, "e@example.com")
        assert body["field"] == "client"


@pytest.mark.parametrize("redirect", [
    "https://evil.example/phish", "javascript:alert(1)", "ftp://www.djamms.app/x", "http://[::1",
    # free text in the official mail: spaces, line breaks, tabs, quotes, non-ASCII
    "https://www.djamms.app/ Your account is locked, call +1 555 0100",
    "https://www.djamms.app/x\r\n\r\nUrgent: reply with your password", "https://www.djamms.app/\tx",
    'https://www.djamms.app/"onclick', "https://www.djamms.app/é",
])
async def test_redirect_must_point_at_us(hub: Hub, redirect: str) -> None:
    status, body = await create_link(hub, redirect=redirect)
    assert (status, body["field"]) == (400, "redirectUrl")


async def test_bad_secrets_are_refused_alike(hub: Hub) -> None:
    for secret in ["abc123...", "0" * 64, "g" * 64]:
        assert await verify(hub, secret) == (401, {"error": "Invalid or expired magic link", "field": "secret"})


# --- JWT refusals ------------------------------------------------------------------------------------


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def staff_claims(venue: str, **changes: object) -> dict:
    now = int(time.time())
    return {"userId": staff_id(venue), "email": "s@example.com", "venueId": venue, "role": "staff",
            "sub": staff_id(venue), "iat": now, "exp": now + 3600, **changes}


async def create_playlist(hub: Hub, venue: str, token: str) -> tuple[int, dict]:
    return await hub.call("POST", f"/api/v1/venues/{venue}/playlists", {"name": "x"},
                          {"Authorization": f"Bearer {token}"})


async def test_valid_staff_token_is_accepted(hub: Hub) -> None:
    venue = await hub.venue()
    assert (await create_playlist(hub, venue, jwt.encode(staff_claims(venue), SECRET, algorithm="HS256")))[0] == 201


@pytest.mark.parametrize(
    ("name", "forge"),
    [
        ("wrong signature", lambda v: jwt.encode(staff_claims(v), "another-secret-0123456789abcdef-xyz", "HS256")),
        ("alg none", lambda v: _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(staff_claims(v)) + "."),
        ("HS512 not allowed", lambda v: jwt.encode(staff_claims(v), SECRET * 2, algorithm="HS512")),
        ("expired", lambda v: jwt.encode(staff_claims(v, exp=int(time.time()) - 10), SECRET, "HS256")),
        ("no expiry", lambda v: jwt.encode({k: c for k, c in staff_claims(v).items() if k != "exp"}, SECRET, "HS256")),
        ("unknown role", lambda v: jwt.encode(staff_claims(v, role="root"), SECRET, "HS256")),
        ("garbage", lambda v: "not.a.jwt"),
    ],
)
async def test_bad_tokens_are_refused(hub: Hub, name: str, forge: object) -> None:
    venue = await hub.venue()
    token = forge(venue)  # type: ignore[operator]
    status, body = await create_playlist(hub, venue, token)
    assert status == 401, name
    assert body["field"] == "Authorization"


async def test_tokens_for_another_venue_are_refused(hub: Hub) -> None:
    venue, other = await hub.venue(), await hub.venue()
    token = jwt.encode(staff_claims(other), SECRET, algorithm="HS256")
    status, body = await create_playlist(hub, venue, token)
    assert (status, body["field"]) == (403, "venueId")
    # Devices likewise, and a device may only speak for itself.
    path = f"/api/v1/venues/{venue}/players/register"
    assert (await hub.call("POST", path, {"deviceId": "box-a"}, hub.device(other, "box-a")))[0] == 403
    assert (await hub.call("POST", path, {"deviceId": "box-b"}, hub.device(venue, "box-a")))[0] == 403
    assert (await hub.call("POST", path, {"deviceId": "box-a"}))[0] == 401
    # Staff cannot do what only a device's master lease allows, and devices cannot manage playlists.
    assert (await create_playlist(hub, venue, hub.device_token(venue, "box-a")))[0] == 403


async def test_admin_manages_any_venue_and_staff_cannot_create_venues(hub: Hub) -> None:
    venue = await hub.venue()
    assert (await create_playlist(hub, venue, hub.user_token("admin", None)))[0] == 201
    status, _ = await hub.call("POST", "/api/v1/venues", {"venueId": "new-venue", "name": "New"}, hub.staff(venue))
    assert status == 403
    status, body = await hub.call("POST", "/api/v1/venues", {"venueId": "new-venue", "name": "New"}, hub.admin())
    assert (status, body["created"]) == (201, True)


async def test_authorization_header_must_be_bearer(hub: Hub) -> None:
    status, body = await hub.call("GET", "/api/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert (status, body["field"]) == (401, "Authorization")


def test_limits_config_is_a_dataclass() -> None:
    # hub_config() relies on replacing whole sections.
    assert dataclasses.is_dataclass(LimitsConfig)


async def test_an_admin_change_ends_the_old_token_and_a_new_sign_in_has_the_new_venue(
        start_hub: HubFactory, caplog: pytest.LogCaptureFixture) -> None:
    async with start_hub() as hub:
        async def sign_in() -> dict[str, str]:
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="djamms_edge.hub.mailer"):
                await create_link(hub, "me@example.com")
            secret = re.search(r"secret=([0-9a-f]{64})", caplog.text).group(1)  # type: ignore[union-attr]
            return {"Authorization": f"Bearer {(await verify(hub, secret, 'me@example.com'))[1]['token']}"}

        me = await sign_in()
        _, before = await hub.call("GET", "/api/v1/me", headers=me)
        assert (before["role"], before["venueId"], before["user"]["venueId"]) == ("staff", None, None)
        venue = await hub.venue()
        await hub.call("PUT", "/api/v1/users", {"email": "me@example.com", "role": "staff", "venueId": venue},
                       hub.admin())
        status, refused = await hub.call("GET", "/api/v1/me", headers=me)
        assert (status, refused["field"]) == (401, "Authorization")
        assert "sign in again" in refused["error"]
        _, after = await hub.call("GET", "/api/v1/me", headers=await sign_in())
        assert after["venueId"] == after["user"]["venueId"] == venue
        _, device = await hub.call("GET", "/api/v1/me", headers=hub.device(venue, "box-a"))
        assert (device["role"], device["subject"], device["user"]) == ("device", "box-a", None)


async def test_lookalike_emails_never_sign_in_as_someone_else(start_hub: HubFactory, smtp: tuple[MailBox, int]
                                                              ) -> None:
    """``boss@İcorp.com`` is another domain (its owner gets its own account); a Kelvin-sign ``kate@`` is
    kate@ herself, so the link goes to kate's real mailbox (issue 13: lower() in PostgreSQL folded both)."""
    box, port = smtp
    async with start_hub(hub_config(smtp=smtp_config(port))) as hub:
        for address in ("boss@icorp.com", "kate@icorp.com"):
            status, _ = await hub.call("PUT", "/api/v1/users", {"email": address, "role": "admin"}, hub.admin())
            assert status == 200
        assert (await create_link(hub, "boss@İcorp.com"))[0] == 200
        secret, user_id, mail = await box.next_link()
        assert mail.rcpt_tos == ["boss@xn--icorp-7fd.com"] and user_id == "boss@xn--icorp-7fd.com"
        _, body = await verify(hub, secret, user_id)
        assert (body["user"]["email"], body["user"]["role"]) == ("boss@xn--icorp-7fd.com", "staff")

        assert (await create_link(hub, "\u212aate@icorp.com"))[0] == 200
        _, _, mail = await box.next_link()
        assert mail.rcpt_tos == ["kate@icorp.com"]
        status, body = await hub.call("PUT", "/api/v1/users", {"email": "KATE@ICORP.COM", "role": "staff"},
                                      hub.admin())
        assert (status, body["email"]) == (200, "kate@icorp.com")  # the same person, not a second account


async def test_nobody_can_lock_a_person_out_of_signing_in(start_hub: HubFactory) -> None:
    """Issue 13: an address's refused requests spent the email's budget, and anyone's requests counted
    against the person's own sign-in."""
    limits = LimitsConfig(magic_links_per_email=3, magic_links_per_address=5, trust_forwarded_for=True)
    async with start_hub(hub_config(limits=limits)) as hub:
        attacker, victim = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "203.0.113.9"}
        body = {"email": "boss@icorp.com", "redirectUrl": REDIRECT}
        answers = [(await hub.call("POST", "/api/v1/auth/magic-link", body, attacker))[1].get("field")
                   for _ in range(12)]
        assert answers == [None] * 3 + ["email"] * 2 + ["client"] * 7  # the attacker's own budgets run out
        status, answer = await hub.call("POST", "/api/v1/auth/magic-link", body, victim)
        assert (status, answer["success"]) == (200, True)  # the person still signs in
