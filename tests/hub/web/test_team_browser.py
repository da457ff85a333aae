"""The Team page in real chromium, on a phone: the hub's admin makes someone the venue's owner; the owner adds
and removes its staff (and is told, in words, why someone on another venue cannot be added); staff only read
the list. One browser for the module; screenshots go to test-artifacts/."""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.async_api import Page, expect

from djamms_edge.hub.auth import issue_user_token
from djamms_edge.hub.store.base import User
from tests.browser import PageWatch, check_layout, chromium_page, save_screenshot
from tests.hub.conftest import SECRET, Hub

VENUE, OTHER = "the-lamb", "the-flag"


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the page adds nothing to the store: the API's table runs on both (tests/hub/test_team.py)


async def sign_in(hub: Hub, page: Page, user: User) -> None:
    """Signed in as the sign-in page leaves a browser: the user's token in the page's storage."""
    stored = await hub.store.get_user(user.user_id)
    assert stored is not None
    await page.goto(f"{hub.url}/v/{VENUE}")
    await page.evaluate("token => djamms.setToken(token)", issue_user_token(SECRET, stored, time.time(), 3600))
    await page.goto(f"{hub.url}/console/{VENUE}/team")


async def user(hub: Hub, email: str, role: str, venue: str | None) -> User:
    return await hub.store.upsert_user(User("user-" + uuid.uuid4().hex, email, venue, role),  # type: ignore[arg-type]
                                       int(time.time() * 1000))


async def add(page: Page, email: str) -> None:
    await page.get_by_label("Email address").fill(email)
    await page.get_by_role("button", name="Add to the team").click()


async def test_the_admin_makes_an_owner_who_runs_the_venues_staff(hub: Hub) -> None:
    await hub.venue(VENUE)  # with one staff member, staff-the-lamb@example.com
    await hub.venue(OTHER)
    admin = await user(hub, "boss@hub.example", "admin", None)
    elsewhere = await user(hub, "kim@flag.example", "staff", OTHER)
    async with chromium_page() as page:
        watch = PageWatch(page, hub.url)
        page.on("dialog", lambda dialog: dialog.accept())

        # The admin adds the owner, choosing the role.
        await sign_in(hub, page, admin)
        await add(page, "Pat@Lamb.example")  # staff, as the role select starts
        await expect(page.get_by_role("status")).to_contain_text("pat@lamb.example is on the team.")
        await page.get_by_role("button", name="Make owner: pat@lamb.example").click()
        await expect(page.get_by_role("status")).to_contain_text("pat@lamb.example is an owner now.")
        await page.get_by_label("Role").select_option("owner")
        await add(page, "jo@lamb.example")
        await expect(page.get_by_role("status")).to_contain_text("jo@lamb.example is on the team as an owner.")
        pat_row = page.locator("#people li", has_text="pat@lamb.example")
        await expect(pat_row.locator(".badge")).to_have_text("Owner")
        await save_screenshot(page, "console-team-admin-owners.png")
        pat = await hub.store.get_user_by_email("pat@lamb.example")
        assert pat is not None and (pat.role, pat.venue_id) == ("owner", VENUE)

        # The owner: adds staff (no role to choose), is refused someone of another venue, removes staff.
        await sign_in(hub, page, pat)
        await expect(page.locator("#people")).to_contain_text("pat@lamb.example (you)")
        await check_layout(page)
        await expect(page.get_by_label("Role")).to_be_hidden()
        await expect(page.locator("#person-hint")).to_contain_text("the hub's admin moves people between venues")
        await add(page, "sam@lamb.example")
        await expect(page.get_by_role("status")).to_have_text(  # this hub has no SMTP: the owner tells them
            f"sam@lamb.example is on the team. Tell them to sign in at {hub.url}/console/sign-in with that address.")
        await add(page, elsewhere.email)
        await expect(page.get_by_role("alert")).to_have_text(
            "kim@flag.example is on another venue's team: the hub's admin can move them here")
        assert await hub.store.get_user(elsewhere.user_id) == elsewhere
        await expect(page.get_by_label("Email address")).to_have_value(elsewhere.email)  # kept, to correct
        # Staff rows have the owner's buttons; owners' rows (their own, a partner's) have none.
        for owner_email in ("pat@lamb.example", "jo@lamb.example"):
            await expect(page.get_by_role("button", name=f"Remove {owner_email}")).to_have_count(0)
        await expect(page.get_by_role("button", name="Make owner: sam@lamb.example")).to_have_count(0)
        await save_screenshot(page, "console-team-owner.png")
        sam = await hub.store.get_user_by_email("sam@lamb.example")
        assert sam is not None
        await page.get_by_role("button", name="Sign sam@lamb.example out everywhere").click()
        await expect(page.get_by_role("status")).to_contain_text("sam@lamb.example is signed out on every device.")
        after = await hub.store.get_user(sam.user_id)
        assert after is not None and after.token_version == sam.token_version + 1
        await page.get_by_role("button", name="Remove sam@lamb.example").focus()
        await page.keyboard.press("Enter")  # by keyboard, as a screen-reader user would
        await expect(page.get_by_role("status")).to_contain_text("sam@lamb.example is removed.")
        await expect(page.locator("#people li", has_text="sam@lamb.example")).to_have_count(0)
        assert await hub.store.get_user(sam.user_id) is None

        # Staff read the team and are told who changes it.
        staff = await hub.store.get_user_by_email(f"staff-{VENUE}@example.com")
        assert staff is not None
        await sign_in(hub, page, staff)
        await expect(page.locator("#people")).to_contain_text(f"staff-{VENUE}@example.com (you)")
        await expect(page.get_by_text("Only the venue's owners and the hub's admin add or remove people.")) \
            .to_be_visible()
        await expect(page.get_by_label("Email address")).to_be_hidden()
        await expect(page.locator("#people button")).to_have_count(0)
        await save_screenshot(page, "console-team-staff-reads.png")
        watch.assert_clean(allow=("409 (Conflict)",))  # the refused add
