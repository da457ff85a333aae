"""Onboarding a venue from the command line, with the real ``djamms-hub`` CLI against a real store and hub."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from djamms_edge.hub.credentials import CACHE_S
from tests.hub.served import hub_command, hub_config_file, serving


def ok(*args: str, config: Path) -> Any:
    result = hub_command(*args, "--config", str(config))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused(*args: str, config: Path) -> str:
    result = hub_command(*args, "--config", str(config))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


def test_a_venue_its_admin_and_staff_from_three_commands(tmp_path: Path) -> None:
    config = hub_config_file(tmp_path)
    assert "unknown time zone 'Mars/Olympus'" in refused("venue", "create", "bar-42", "--name", "The Bar",
                                                         "--timezone", "Mars/Olympus", config=config)
    venue = ok("venue", "create", "bar-42", "--name", "The Bar", "--timezone", "Europe/Berlin", config=config)
    assert venue == {"venueId": "bar-42", "name": "The Bar", "activePlaylistId": None, "timezone": "Europe/Berlin"}
    assert "exists already" in refused("venue", "create", "bar-42", "--name", "Again", config=config)
    assert "not a valid venue id" in refused("venue", "create", "bar 42;", "--name", "x", config=config)

    admin = ok("admin", "create", "--email", "owner@example.com", config=config)
    assert isinstance(admin, dict) and (admin["role"], admin["venueId"]) == ("admin", None)
    assert admin["signIn"].endswith("/console/sign-in")

    assert "unknown venue 'nowhere'" in refused("user", "set", "--email", "sam@example.com", "--role", "staff",
                                                "--venue", "nowhere", config=config)
    staff = ok("user", "set", "--email", "sam@example.com", "--role", "staff", "--venue", "bar-42", config=config)
    assert isinstance(staff, dict) and (staff["role"], staff["venueId"]) == ("staff", "bar-42")
    # The venue's owner: staff who also add and remove its staff; an owner always has a venue.
    assert "an owner runs a venue: name it" in refused("user", "set", "--email", "pat@example.com", "--role", "owner",
                                                       config=config)
    owner = ok("user", "set", "--email", "pat@example.com", "--role", "owner", "--venue", "bar-42", config=config)
    assert isinstance(owner, dict) and (owner["role"], owner["venueId"]) == ("owner", "bar-42")
    listed = ok("user", "list", "--venue", "bar-42", config=config)
    assert [(u["email"], u["role"]) for u in listed] == [
        ("pat@example.com", "owner"), ("sam@example.com", "staff")]
    assert "no user with email" in refused("user", "remove", "--email", "nobody@example.com", config=config)
    assert ok("user", "remove", "--email", "sam@example.com", config=config) == {"removed": True,
                                                                                  "userId": staff["userId"]}


async def test_device_tokens_are_reissued_and_revoked_from_the_command_line(tmp_path: Path) -> None:
    config = hub_config_file(tmp_path)
    await asyncio.to_thread(ok, "venue", "create", "bar-1", "--name", "Bar One", config=config)
    first = (await asyncio.to_thread(hub_command, "device-token", "--config", str(config), "--venue", "bar-1",
                                     "--device", "box-1")).stdout.strip()
    second = (await asyncio.to_thread(hub_command, "device-token", "--config", str(config), "--venue", "bar-1",
                                      "--device", "box-1")).stdout.strip()
    async with serving(config) as hub, aiohttp.ClientSession() as http:
        async def heartbeat(token: str) -> int:
            async with http.post(f"{hub.url}/api/v1/venues/bar-1/players/register", json={"deviceId": "box-1"},
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
                return resp.status

        assert (await heartbeat(first), await heartbeat(second)) == (401, 200)
        revoked = await asyncio.to_thread(ok, "device", "revoke", "--venue", "bar-1", "--device", "box-1",
                                          config=config)
        assert revoked == {"venueId": "bar-1", "deviceId": "box-1", "revoked": True}
        # The running hub refuses it within its version cache's life (another process revoked it: the CLI).
        deadline = time.monotonic() + CACHE_S + 1.0
        statuses = [await heartbeat(second)]
        while statuses[-1] != 401 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            statuses.append(await heartbeat(second))
        assert statuses[-1] == 401, statuses
    boxes = await asyncio.to_thread(ok, "device", "list", "--venue", "bar-1", config=config)
    assert [(b["deviceId"], b["revoked"]) for b in boxes] == [("box-1", True)]
