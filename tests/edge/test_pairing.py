"""Pairing from the box's side against a real hub: codes shown, an expired code replaced, the credentials
stored for the next start (and refused ones forgotten). The daemon end to end is in
tests/hub/web/test_console.py."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import jwt
import pytest

from djamms_edge.config import Config
from djamms_edge.edge.config import EdgeConfig, EdgeHubLink
from djamms_edge.edge.pairing import (
    Credentials,
    credentials_path,
    forget_credentials,
    load_credentials,
    pair,
    save_credentials,
    with_credentials,
)
from djamms_edge.edge.status.model import PairingCode
from tests.hub.conftest import SECRET, Hub
from tests.hub.conftest import hub as hub  # the fixtures: a real hub on loopback
from tests.hub.conftest import sqlite_template as sqlite_template
from tests.hub.conftest import start_hub as start_hub


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the box's side; both stores are covered by tests/hub/test_credentials.py


def box_config(tmp_path: Path, hub_url: str) -> EdgeConfig:
    return EdgeConfig(device_id="box-new", state_dir=tmp_path / "state", hub=EdgeHubLink(url=hub_url))


async def test_the_box_shows_codes_until_one_is_entered_and_a_stale_one_is_replaced(hub: Hub, tmp_path: Path
                                                                                    ) -> None:
    venue = await hub.venue()
    shown: asyncio.Queue[PairingCode | None] = asyncio.Queue()
    pairing = asyncio.create_task(pair(box_config(tmp_path, hub.url), shown.put_nowait, clock=hub.clock))
    try:
        first = await asyncio.wait_for(shown.get(), timeout=10)
        assert first is not None and first.console_url == hub.url + "/console/"
        hub.clock.advance(hub.config.auth.pairing_code_ttl_s + 1)  # nobody typed it in time: a new code
        second = await asyncio.wait_for(shown.get(), timeout=20)
        assert second is not None and second.code != first.code
        status, _ = await hub.call("POST", f"/api/v1/venues/{venue}/pairings", {"code": first.code}, hub.staff(venue))
        assert status == 404  # the old code is dead
        await hub.call("POST", f"/api/v1/venues/{venue}/pairings", {"code": second.code}, hub.staff(venue))
        credentials = await asyncio.wait_for(pairing, timeout=20)
    finally:
        pairing.cancel()
    assert shown.get_nowait() is None  # the code leaves the screen once paired
    assert (credentials.venue_id, credentials.device_id, credentials.hub_url) == (venue, "box-new", hub.url)
    # (The hub's clock was moved on, so its token's iat is in the future for a real-time check: read the claims.)
    claims = jwt.decode(credentials.device_token, SECRET, algorithms=["HS256"], options={"verify_iat": False})
    assert (claims["role"], claims["venueId"], claims["deviceId"], claims["ver"]) == ("device", venue, "box-new", 1)


def test_credentials_are_kept_for_this_hub_and_box_only(tmp_path: Path) -> None:
    edge = box_config(tmp_path, "http://hub.example:8700/")
    stored = Credentials("http://hub.example:8700", "bar-1", "box-new", "token-1")
    assert load_credentials(edge) is None
    save_credentials(edge.state_dir, stored)
    assert credentials_path(edge.state_dir).stat().st_mode & 0o777 == 0o600  # it holds a token
    assert load_credentials(edge) == stored
    config = with_credentials(Config(edge=edge), stored)
    assert (config.edge.venue_id, config.edge.hub.device_token) == ("bar-1", "token-1")
    assert load_credentials(dataclasses.replace(edge, device_id="box-other")) is None
    assert load_credentials(dataclasses.replace(edge, hub=EdgeHubLink(url="http://other:8700"))) is None
    credentials_path(edge.state_dir).write_text("{not json")
    assert load_credentials(edge) is None  # unreadable: pair again rather than fail to start
    assert forget_credentials(edge.state_dir) and not forget_credentials(edge.state_dir)
