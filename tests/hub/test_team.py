"""A venue's team: the hub's admin manages everyone; a venue's owner adds, signs out and removes its staff,
and nothing more; staff and boxes change nobody. Who may do what is one table, checked on both stores, and
every change a person's tokens depend on ends them at once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from djamms_edge.hub import accounts
from djamms_edge.hub.auth import issue_user_token
from djamms_edge.hub.store.base import User
from tests.hub.conftest import SECRET, Hub, HubFactory, hub_config
from tests.hub.test_auth import MailBox, smtp_config

A, B = "venue-a", "venue-b"
WHO = ("admin", "owner of A", "staff of A", "owner of B", "device of A")
OK = 200


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def person(hub: Hub, role: str, venue: str | None, email: str | None = None) -> tuple[User, dict[str, str]]:
    """A user as the store has them, and a token as their magic link would give it."""
    email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    user = await hub.store.upsert_user(User("user-" + uuid.uuid4().hex, email, venue, role),  # type: ignore[arg-type]
                                       int(time.time() * 1000))
    return user, bearer(issue_user_token(SECRET, user, time.time(), 3600))


async def signed_in(hub: Hub, headers: dict[str, str]) -> bool:
    status, _ = await hub.call("GET", "/api/v1/me", headers=headers)
    assert status in (200, 401)
    return status == 200


@dataclass
class Team:
    hub: Hub
    tokens: dict[str, dict[str, str]]
    owner_a: User


@pytest.fixture
async def team(hub: Hub) -> Team:
    await hub.venue(A)
    await hub.venue(B)
    owner_a, owner_a_token = await person(hub, "owner", A)
    _, owner_b_token = await person(hub, "owner", B)
    _, staff_a_token = await person(hub, "staff", A)
    tokens = {"admin": hub.admin(), "owner of A": owner_a_token, "staff of A": staff_a_token,
              "owner of B": owner_b_token, "device of A": hub.device(A, "box-a")}
    return Team(hub, tokens, owner_a)


# A cell of the table: the call, and the person it acts on (their token shows whether it took effect).
Call = tuple[str, str, dict[str, Any] | None, dict[str, str] | None]
Case = Callable[[Hub], Awaitable[Call]]


def _new_email() -> str:
    return f"new-{uuid.uuid4().hex[:8]}@example.com"


async def _list(hub: Hub) -> Call:
    return "GET", f"/api/v1/users?venueId={A}", None, None


def _add(role: str, venue: str | None) -> Case:
    async def case(hub: Hub) -> Call:
        return "PUT", "/api/v1/users", {"email": _new_email(), "role": role, "venueId": venue}, None
    return case


def _act_on(role: str, venue: str, action: str) -> Case:
    async def case(hub: Hub) -> Call:
        user, token = await person(hub, role, venue)
        if action == "remove":
            return "DELETE", f"/api/v1/users/{user.user_id}", None, token
        return "POST", f"/api/v1/users/{user.user_id}/sign-out", None, token
    return case


# Each row: what is tried, and the answer for each of WHO (admin, owner of A, staff of A, owner of B, device of A).
TABLE: list[tuple[str, Case, tuple[int, ...]]] = [
    ("list A's team", _list, (OK, OK, OK, 403, 403)),
    ("add staff to A", _add("staff", A), (OK, OK, 403, 403, 403)),
    ("add staff to B", _add("staff", B), (OK, 403, 403, OK, 403)),
    ("add an owner to A", _add("owner", A), (OK, 403, 403, 403, 403)),
    ("add an admin", _add("admin", None), (OK, 403, 403, 403, 403)),
    ("sign out staff of A", _act_on("staff", A, "sign-out"), (OK, OK, 403, 404, 403)),
    ("remove staff of A", _act_on("staff", A, "remove"), (OK, OK, 403, 404, 403)),
    ("sign out an owner of A", _act_on("owner", A, "sign-out"), (OK, 403, 403, 404, 403)),
    ("remove an owner of A", _act_on("owner", A, "remove"), (OK, 403, 403, 404, 403)),
    ("remove staff of B", _act_on("staff", B, "remove"), (OK, 404, 403, OK, 403)),
]


async def test_who_may_change_a_venues_team(team: Team) -> None:
    """Every cell with fresh people: the answer, and that a refused call changed nothing while an allowed
    sign-out or removal ended the person's tokens at once."""
    hub = team.hub
    found: dict[str, tuple[int, ...]] = {}
    for name, case, _ in TABLE:
        row = []
        for who in WHO:
            method, path, body, target = await case(hub)
            status, answer = await hub.call(method, path, body, team.tokens[who])
            assert status == OK or answer["error"], answer
            row.append(status)
            if target is not None:  # removed or signed out: ends at once; refused: still signed in
                assert await signed_in(hub, target) == (status != OK), (name, who, status)
        found[name] = tuple(row)
    assert found == {name: expected for name, _, expected in TABLE}
    # Every refusal left each principal's own sign-in alone.
    for who in ("admin", "owner of A", "staff of A", "owner of B"):
        assert await signed_in(hub, team.tokens[who]), who


async def test_an_owner_adds_only_people_free_to_join_their_venue(team: Team) -> None:
    hub, owner = team.hub, team.tokens["owner of A"]

    async def add(email: str, **extra: Any) -> tuple[int, Any]:
        return await hub.call("PUT", "/api/v1/users", {"email": email, "role": "staff", **extra}, owner)

    # Someone new: staff of the owner's venue (the venue may be left out).
    status, added = await add("Bar.Tender@Example.com")
    assert (status, added["email"], added["role"], added["venueId"]) == (OK, "bar.tender@example.com", "staff", A)
    assert added["invited"] is False  # a hub without SMTP has its mails in the log only: the owner tells them
    # Someone who signed in once and has no venue yet joins; someone on the staff already stays as they are.
    loose, loose_token = await person(hub, "staff", None)
    assert (await add(loose.email))[1]["venueId"] == A
    assert not await signed_in(hub, loose_token)  # their venue changed: sign in again, to see it
    here, here_token = await person(hub, "staff", A)
    assert (await add(here.email, venueId=A))[0] == OK
    assert await signed_in(hub, here_token)  # nothing changed, nothing ended

    # Anyone else is refused in words and left exactly as they were.
    elsewhere, elsewhere_token = await person(hub, "staff", B)
    co_owner, co_owner_token = await person(hub, "owner", A)
    admin, admin_token = await person(hub, "admin", None)
    refusals = {
        elsewhere.email: f"{elsewhere.email} is on another venue's team: the hub's admin can move them here",
        co_owner.email: f"{co_owner.email} is an owner of this venue already; only the hub's admin changes an owner",
        team.owner_a.email: f"{team.owner_a.email} is an owner of this venue already; only the hub's admin changes"
                            " an owner",
        admin.email: f"{admin.email} is the hub's admin, not someone a venue adds",
    }
    for address, why in refusals.items():
        status, body = await add(address)
        assert (status, body["field"], body["error"]) == (409, "email", why)
    for user, token in ((elsewhere, elsewhere_token), (co_owner, co_owner_token), (admin, admin_token),
                        (team.owner_a, owner)):
        assert await hub.store.get_user(user.user_id) == user
        assert await signed_in(hub, token)

    # Only staff, only here.
    status, body = await add(_new_email(), role="owner")
    assert (status, body["field"]) == (403, "role")
    status, body = await add(_new_email(), venueId=B)
    assert (status, body["field"]) == (403, "venueId")


async def test_an_owner_cannot_lock_themself_or_a_partner_out(team: Team) -> None:
    hub, owner, me = team.hub, team.tokens["owner of A"], team.owner_a.user_id
    co_owner, co_owner_token = await person(hub, "owner", A)
    for target in (me, co_owner.user_id):
        status, body = await hub.call("DELETE", f"/api/v1/users/{target}", headers=owner)
        assert (status, body["field"], body["error"]) == (
            403, "userId", "an owner of this venue: only the hub's admin changes an owner")
    assert (await hub.call("POST", f"/api/v1/users/{co_owner.user_id}/sign-out", headers=owner))[0] == 403
    assert await signed_in(hub, owner) and await signed_in(hub, co_owner_token)
    assert [u.role for u in await hub.store.list_users(A)].count("owner") == 2
    # Signing themself out everywhere is theirs to do (a lost phone): it ends this token too.
    assert (await hub.call("POST", f"/api/v1/users/{me}/sign-out", headers=owner))[0] == OK
    assert not await signed_in(hub, owner)


async def test_the_admin_makes_and_unmakes_owners_and_tokens_follow_at_once(team: Team) -> None:
    hub = team.hub
    status, body = await hub.call("PUT", "/api/v1/users", {"email": "pat@example.com", "role": "owner"},
                                  hub.admin())
    assert (status, body["field"], body["error"]) == (400, "venueId", "an owner runs a venue: name it")
    pat, pat_staff = await person(hub, "staff", A, "pat@example.com")
    assert (await hub.call("PUT", "/api/v1/users", {"email": _new_email(), "role": "staff"}, pat_staff))[0] == 403

    status, body = await hub.call("PUT", "/api/v1/users", {"email": pat.email, "role": "owner", "venueId": A},
                                  hub.admin())
    assert (status, body["role"], body["venueId"]) == (OK, "owner", A)
    assert not await signed_in(hub, pat_staff)  # the staff token ends with the promotion
    promoted = await hub.store.get_user(pat.user_id)
    assert promoted is not None
    pat_owner = bearer(issue_user_token(SECRET, promoted, time.time(), 3600))
    assert (await hub.call("PUT", "/api/v1/users", {"email": _new_email(), "role": "staff"}, pat_owner))[0] == OK
    # An owner runs the venue as its staff do.
    assert (await hub.call("GET", f"/api/v1/venues/{A}/dashboard", headers=pat_owner))[0] == OK
    assert (await hub.call("POST", f"/api/v1/venues/{A}/playlists", {"name": "Friday"}, pat_owner))[0] == 201
    assert (await hub.call("GET", f"/api/v1/venues/{B}/dashboard", headers=pat_owner))[0] == 403

    status, _ = await hub.call("PUT", "/api/v1/users", {"email": pat.email, "role": "staff", "venueId": A},
                               hub.admin())
    assert status == OK and not await signed_in(hub, pat_owner)  # demoted: the owner's token ends at once


async def test_an_owner_adding_someone_the_admin_moves_meanwhile_never_takes_them(team: Team) -> None:
    """The store decides "free to join?" and the change in one statement: whichever comes first, someone the
    admin moves to venue B ends up at B, never taken to A by an owner's add that checked a moment before."""
    hub = team.hub
    for _ in range(10):
        loose, _ = await person(hub, "staff", None)
        await asyncio.gather(
            hub.call("PUT", "/api/v1/users", {"email": loose.email, "role": "staff"}, team.tokens["owner of A"]),
            hub.call("PUT", "/api/v1/users", {"email": loose.email, "role": "staff", "venueId": B}, hub.admin()),
        )
        after = await hub.store.get_user(loose.user_id)
        assert after is not None and after.venue_id == B


async def test_an_owners_team_is_bounded(team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    """An owner's account adds at most MAX_TEAM people to the venue (one row each); the admin is not held."""
    hub, owner = team.hub, team.tokens["owner of A"]
    monkeypatch.setattr(accounts, "MAX_TEAM", len(await hub.store.list_users(A)) + 1)
    assert (await hub.call("PUT", "/api/v1/users", {"email": "one@example.com", "role": "staff"}, owner))[0] == OK
    status, body = await hub.call("PUT", "/api/v1/users", {"email": "two@example.com", "role": "staff"}, owner)
    assert (status, body["field"]) == (409, "email") and "at most" in body["error"]
    assert await hub.store.get_user_by_email("two@example.com") is None
    assert (await hub.call("PUT", "/api/v1/users", {"email": "one@example.com", "role": "staff"}, owner))[0] == OK
    assert (await hub.call("PUT", "/api/v1/users", {"email": "two@example.com", "role": "staff", "venueId": A},
                           hub.admin()))[0] == OK


@pytest.mark.parametrize("backend", ["sqlite"])  # about the mail, not the store
async def test_someone_added_to_a_team_is_mailed_where_to_sign_in(start_hub: HubFactory) -> None:
    """Whoever adds them, someone new to a venue's team (or to their role in it) gets one mail saying who added
    them, to which venue, and where to sign in; no sign-in secret (it may be read tomorrow). Nothing changed,
    nothing refused, nothing mailed; a mail server that is down costs the mail, not the addition."""
    box = MailBox()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(box, hostname="localhost"), "127.0.0.1", 0)
    config = hub_config(smtp=smtp_config(server.sockets[0].getsockname()[1]))
    config = dataclasses.replace(config, public_url="https://hub.example",  # 4 mails per venue's team per window
                                 limits=dataclasses.replace(config.limits, magic_links_per_address=4))
    try:
        async with start_hub(config=config) as hub:
            await hub.venue(A)
            await hub.venue(B)
            owner, owner_token = await person(hub, "owner", A)
            elsewhere, _ = await person(hub, "staff", B)

            async def add(email_address: str, role: str, token: dict[str, str], venue: str = A) -> Any:
                status, body = await hub.call("PUT", "/api/v1/users",
                                              {"email": email_address, "role": role, "venueId": venue}, token)
                assert status in (OK, 409), body
                return body

            def mailed() -> list[tuple[str, str, str]]:
                mails = []
                while not box.mails.empty():  # the hub answers after the server took the mail
                    message = message_from_bytes(box.mails.get_nowait().original_content or b"",
                                                 policy=policy.default)
                    mails.append((str(message["To"]), str(message["Subject"]),
                                  message.get_content().replace("\r\n", "\n")))
                return mails

            assert (await add("sam@example.com", "staff", owner_token))["invited"] is True
            [(to, subject, text)] = mailed()
            assert (to, subject) == ("sam@example.com", "You are on a venue's team on DJAMMS")
            assert text.startswith(f"{owner.email} added you to the team of {A} on DJAMMS, as staff.\n")
            assert "Sign in at https://hub.example/console/sign-in with this address, sam@example.com" in text
            assert "secret" not in text and "?" not in text
            assert (await add("sam@example.com", "staff", owner_token))["invited"] is False  # nothing changed
            assert (await add(elsewhere.email, "staff", owner_token))["field"] == "email"  # refused
            assert mailed() == []
            assert (await add("sam@example.com", "owner", hub.admin()))["invited"] is True  # a new role
            assert ", as an owner (you add and remove its staff too).\n" in mailed()[0][2]
            # Two more mails for this venue's team in the window, then none: an owner's account in the wrong hands
            # cannot make the hub mail the world. The people are on the team all the same.
            assert [(await add(f"{n}@example.com", "staff", owner_token))["invited"] for n in ("ann", "bob", "cy")] \
                == [True, True, False]
            assert [to for to, _, _ in mailed()] == ["ann@example.com", "bob@example.com"]
            assert {u.email for u in await hub.store.list_users(A)} >= {"ann@example.com", "cy@example.com"}

            server.close()
            await server.wait_closed()
            body = await add("tom@example.com", "staff", hub.admin(), venue=B)
            assert (body["venueId"], body["invited"]) == (B, False)  # on the team; told on the page to say so
    finally:
        server.close()


async def test_stores_from_before_owners_keep_their_people_and_refuse_an_owner_without_a_venue(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The migration to owners, on a database of the version before it: every user keeps id, role, venue and
    token version (so their tokens keep working); then an owner needs a venue, in the database itself."""
    rows = [
        "INSERT INTO venues (venue_id, name, created_at_ms) VALUES ('v1', 'v1', 0)",
        "INSERT INTO users (user_id, email, venue_id, role, created_at_ms, token_version)"
        " VALUES ('u-admin', 'admin@example.com', NULL, 'admin', 0, 3)",
        "INSERT INTO users (user_id, email, venue_id, role, created_at_ms, token_version)"
        " VALUES ('u-staff', 'staff@example.com', 'v1', 'staff', 0, 7)",
    ]
    owner_row = ("INSERT INTO users (user_id, email, venue_id, role, created_at_ms)"
                 " VALUES ('u-owner', 'owner@example.com', {venue}, 'owner', 0)")
    query = "SELECT user_id, venue_id, role, token_version FROM users ORDER BY user_id"
    expected = [("u-admin", None, "admin", 3), ("u-owner", "v1", "owner", 0), ("u-staff", "v1", "staff", 7)]
    if backend == "sqlite":
        import sqlite3

        import sqlite_utils

        from djamms_edge.hub.store.sqlite_schema import m014_owner_role, migrations

        db = sqlite_utils.Database(tmp_path / "old.db")
        migrations.as_sqlite_utils().apply(db, stop_before=m014_owner_role.__name__)
        for row in rows:
            db.execute(row)
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(owner_row.format(venue="'v1'"))  # before: no such role
        migrations.apply(db.conn)
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(owner_row.format(venue="NULL"))
        db.execute(owner_row.format(venue="'v1'"))
        found = [tuple(r) for r in db.execute(query).fetchall()]
        db.close()
    else:
        import asyncpg

        from djamms_edge.hub.store.pg_migrations import apply_migrations
        from djamms_edge.hub.store.pg_schema import _OWNER_ROLE, MIGRATIONS

        owners = next(m for m in MIGRATIONS if m.sql == _OWNER_ROLE)
        conn = await asyncpg.connect(request.getfixturevalue("pg_empty_url"))
        try:
            await apply_migrations(conn, tuple(m for m in MIGRATIONS if m.version < owners.version))
            for row in rows:
                await conn.execute(row)
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(owner_row.format(venue="'v1'"))
            await apply_migrations(conn, MIGRATIONS)
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(owner_row.format(venue="NULL"))
            await conn.execute(owner_row.format(venue="'v1'"))
            found = [tuple(r) for r in await conn.fetch(query)]
        finally:
            await conn.close()
    assert found == expected
