"""The player registry on a real hub: the reference's answers, atomic election, strictly increasing epochs."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from djamms_edge.edge.sync.hub_client import HubClient
from djamms_edge.edge.sync.lease import Granted, HeartbeatOk
from djamms_edge.hub.config import RegistryConfig
from tests.hub.conftest import Hub, HubFactory, hub_config


async def register(hub: Hub, venue: str, device: str, ua: str = "edge/1") -> tuple[int, dict]:
    return await hub.call("POST", f"/api/v1/venues/{venue}/players/register",
                          {"deviceId": device, "userAgent": ua}, hub.device(venue, device))


async def heartbeat(hub: Hub, venue: str, device: str) -> tuple[int, dict]:
    return await hub.call("POST", f"/api/v1/venues/{venue}/players/heartbeat", {"deviceId": device},
                          hub.device(venue, device))


async def test_first_register_wins_and_others_conflict(hub: Hub) -> None:
    venue = await hub.venue()
    status, first = await register(hub, venue, "box-a")
    assert status == 200
    assert first["status"] == "registered"
    assert len(first["playerId"]) == 20
    assert first["epoch"] == 1

    _, other = await register(hub, venue, "box-b")
    assert other["status"] == "conflict"
    assert other["currentMaster"]["deviceId"] == "box-a"
    assert other["currentMaster"]["epoch"] == 1
    assert abs(other["currentMaster"]["lastHeartbeat"] - hub.clock() * 1000) < 5000  # epoch milliseconds
    assert "playerId" not in other


async def test_same_device_reconnects_with_its_epoch(hub: Hub) -> None:
    venue = await hub.venue()
    _, first = await register(hub, venue, "box-a")
    _, again = await register(hub, venue, "box-a")
    assert again["status"] == "reconnected"
    assert again["playerId"] == first["playerId"]
    assert again["currentMaster"]["deviceId"] == "box-a"
    assert again["epoch"] == first["epoch"]


async def test_stale_master_is_taken_over_with_a_higher_epoch(hub: Hub) -> None:
    venue = await hub.venue()
    await register(hub, venue, "box-a")
    hub.clock.advance(119)
    assert (await register(hub, venue, "box-b"))[1]["status"] == "conflict"
    hub.clock.advance(2)  # 121 s without a heartbeat: stale
    _, taken = await register(hub, venue, "box-b")
    assert taken["status"] == "registered"
    assert taken["epoch"] == 2
    # The old master learns it lost the lease at its next heartbeat.
    _, beat = await heartbeat(hub, venue, "box-a")
    assert beat == {"status": "not_found", "epoch": 2, "maxRequestDuration": 300}


async def test_heartbeats_keep_the_lease(hub: Hub) -> None:
    venue = await hub.venue()
    await register(hub, venue, "box-a")
    for _ in range(3):
        hub.clock.advance(100)
        assert (await heartbeat(hub, venue, "box-a"))[1] == {"status": "updated", "epoch": 1, "maxRequestDuration": 300}
    assert (await register(hub, venue, "box-b"))[1]["status"] == "conflict"
    assert (await heartbeat(hub, venue, "box-b"))[1]["status"] == "not_found"


async def test_lease_expires_after_a_day_without_heartbeat(hub: Hub) -> None:
    venue = await hub.venue()
    await register(hub, venue, "box-a")
    hub.clock.advance(86_401)
    assert (await heartbeat(hub, venue, "box-a"))[1]["status"] == "not_found"
    _, again = await register(hub, venue, "box-a")
    assert again["status"] == "registered"  # a new lease, not a reconnect
    assert again["epoch"] == 2


async def test_release_hands_over_at_once(hub: Hub) -> None:
    venue = await hub.venue()
    await register(hub, venue, "box-a")
    status, released = await hub.call("POST", f"/api/v1/venues/{venue}/players/release", {"deviceId": "box-a"},
                                      hub.device(venue, "box-a"))
    assert (status, released) == (200, {"status": "released", "epoch": 1})
    _, taken = await register(hub, venue, "box-b")
    assert (taken["status"], taken["epoch"]) == ("registered", 2)
    _, master = await hub.call("GET", f"/api/v1/venues/{venue}/master", headers=hub.staff(venue))
    assert master["master"]["deviceId"] == "box-b"
    assert master["master"]["stale"] is False


async def test_fifty_concurrent_registers_yield_exactly_one_master(hub: Hub) -> None:
    venue = await hub.venue()
    answers = await asyncio.gather(*(register(hub, venue, f"box-{i:02d}") for i in range(50)))
    statuses = [body["status"] for _, body in answers]
    assert statuses.count("registered") == 1
    assert statuses.count("conflict") == 49
    winner = next(body for _, body in answers if body["status"] == "registered")
    device = statuses.index("registered")
    assert all(body["currentMaster"]["deviceId"] == f"box-{device:02d}" for _, body in answers
               if body["status"] == "conflict")
    assert winner["epoch"] == 1


async def test_concurrent_takeovers_of_a_stale_master_yield_one_new_master(hub: Hub) -> None:
    venue = await hub.venue()
    await register(hub, venue, "old")
    hub.clock.advance(200)
    answers = await asyncio.gather(*(register(hub, venue, f"box-{i}") for i in range(20)))
    registered = [body for _, body in answers if body["status"] == "registered"]
    assert len(registered) == 1
    assert registered[0]["epoch"] == 2


async def test_epochs_strictly_increase_across_many_handovers(hub: Hub) -> None:
    venue = await hub.venue()
    epochs = []
    for i in range(6):
        _, body = await register(hub, venue, f"box-{i}")
        epochs.append(body["epoch"])
        await hub.call("POST", f"/api/v1/venues/{venue}/players/release", {"deviceId": f"box-{i}"},
                       hub.device(venue, f"box-{i}"))
    assert epochs == sorted(set(epochs))
    assert epochs[0] == 1


async def test_staff_may_register_a_browser_player_of_their_venue(hub: Hub) -> None:
    venue = await hub.venue()
    status, body = await hub.call("POST", f"/api/v1/venues/{venue}/players/register",
                                  {"deviceId": "browser-1", "userAgent": "Mozilla/5.0"}, hub.staff(venue))
    assert (status, body["status"]) == (200, "registered")


async def test_unknown_venue_is_a_404(hub: Hub) -> None:
    status, body = await register(hub, "no-such-venue", "box-a")
    assert status == 404
    assert body["field"] == "venueId"


async def test_a_second_process_with_the_same_device_token_is_refused(hub: Hub) -> None:
    """A copied device token: the box keeps its lease, the copy is refused and staff see it once (issue 13)."""
    venue = await hub.venue()
    box, copy = {"deviceId": "box-a", "instanceId": "proc-box"}, {"deviceId": "box-a", "instanceId": "proc-copy"}
    players, token = f"/api/v1/venues/{venue}/players", hub.device(venue, "box-a")
    assert (await hub.call("POST", players + "/register", box, token))[1]["status"] == "registered"
    for action in ("register", "heartbeat", "register"):
        status, refused = await hub.call("POST", f"{players}/{action}", copy, token)
        assert status == 200 and refused["status"] == "conflict" and refused["reason"] == "second_process"
        assert refused["currentMaster"]["deviceId"] == "box-a"
    _, beat = await hub.call("POST", players + "/heartbeat", box, token)
    assert beat["status"] == "updated"
    _, errors = await hub.call("GET", f"/api/v1/venues/{venue}/device-errors", headers=hub.staff(venue))
    assert [e["message"] for e in errors["errors"]] == [
        "a second process (instance proc-copy) used this device's token while the box held the lease; it was "
        "refused. A copied token? Revoke and re-issue the device token."]
    # The box's daemon restarted (a new process) after going quiet: it takes its own lease back, same epoch,
    # and the process before it is now the one refused.
    hub.clock.advance(16)
    _, back = await hub.call("POST", players + "/register", copy, token)
    assert (back["status"], back["epoch"]) == ("reconnected", 1)
    _, old = await hub.call("POST", players + "/heartbeat", box, token)
    assert old["status"] == "conflict"


async def test_a_second_process_cannot_release_the_lease_while_the_holder_beats(hub: Hub) -> None:
    """A copied device token run by another process (the edge's own client, another instance id): its release
    leaves the box's lease alone, staff see the copy once; the holder's own release still hands over."""
    venue = await hub.venue()
    token = hub.device_token(venue, "box-a")
    box = HubClient(hub.url, token, venue, "box-a", instance_id="proc-box")
    copy = HubClient(hub.url, token, venue, "box-a", instance_id="proc-copy")
    try:
        assert isinstance(await box.register(), Granted)
        hub.clock.advance(10)
        assert isinstance(await box.heartbeat(), HeartbeatOk)
        hub.clock.advance(10)
        await copy.release()  # 10 s after the holder's beat: within the grace
        _, master = await hub.call("GET", f"/api/v1/venues/{venue}/master", headers=hub.staff(venue))
        assert (master["master"]["deviceId"], master["master"]["epoch"]) == ("box-a", 1)
        assert isinstance(await box.heartbeat(), HeartbeatOk)  # the box still holds its lease
        assert isinstance(await box.register(), Granted)
        # Another device cannot take it either: the lease is alive.
        _, other = await register(hub, venue, "box-b")
        assert other["status"] == "conflict"
        _, errors = await hub.call("GET", f"/api/v1/venues/{venue}/device-errors", headers=hub.staff(venue))
        assert [e["message"] for e in errors["errors"]] == [
            "a second process (instance proc-copy) used this device's token while the box held the lease; it was "
            "refused. A copied token? Revoke and re-issue the device token."]
        # The refused answer as a client sees it, on REST and on the reference's function endpoint.
        status, refused = await hub.call("POST", f"/api/v1/venues/{venue}/players/release",
                                         {"deviceId": "box-a", "instanceId": "proc-copy"}, hub.device(venue, "box-a"))
        assert (status, refused["status"], refused["reason"]) == (200, "conflict", "second_process")
        status, execution = await hub.call(
            "POST", "/v1/functions/player-registry/executions",
            {"body": json.dumps({"action": "release", "venueId": venue, "deviceId": "box-a",
                                 "instanceId": "proc-copy"})}, hub.device(venue, "box-a"))
        assert status == 201 and json.loads(execution["responseBody"])["reason"] == "second_process"
        await box.release()
        _, master = await hub.call("GET", f"/api/v1/venues/{venue}/master", headers=hub.staff(venue))
        assert master["master"] is None
    finally:
        await box.close()
        await copy.close()


async def test_a_restarted_process_may_release_the_lease_of_a_holder_gone_quiet(hub: Hub) -> None:
    venue = await hub.venue()
    players, token = f"/api/v1/venues/{venue}/players", hub.device(venue, "box-a")
    await hub.call("POST", players + "/register", {"deviceId": "box-a", "instanceId": "proc-old"}, token)
    hub.clock.advance(16)  # the old process crashed: no beat for longer than the grace
    _, released = await hub.call("POST", players + "/release", {"deviceId": "box-a", "instanceId": "proc-new"}, token)
    assert released == {"status": "released", "epoch": 1}


async def test_a_process_that_names_none_is_named_by_the_hub_and_checked_once_it_echoes(hub: Hub) -> None:
    """Browser players and older edges send no instanceId. The register answer names the process; a client that
    echoes the name is checked like an edge: a second copy of it is refused and staff are told once."""
    venue = await hub.venue()
    players, staff = f"/api/v1/venues/{venue}/players", hub.staff(venue)  # a browser player, on a staff token
    _, first = await hub.call("POST", players + "/register", {"deviceId": "browser-1", "userAgent": "Mozilla/5.0"},
                              staff)
    assert first["status"] == "registered" and re.fullmatch(r"hub-[0-9a-f]{16}", first["instanceId"])
    mine = {"deviceId": "browser-1", "instanceId": first["instanceId"]}
    assert (await hub.call("POST", players + "/heartbeat", mine, staff))[1]["status"] == "updated"
    for _ in range(3):  # the same player opened in a second browser while the first plays
        _, copy = await hub.call("POST", players + "/register", {"deviceId": "browser-1"}, staff)
        assert (copy["status"], copy["reason"], copy["currentMaster"]["deviceId"]) == (
            "conflict", "second_process", "browser-1")
        assert copy["instanceId"] not in (first["instanceId"], None)
        _, beat = await hub.call("POST", players + "/heartbeat", {"deviceId": "browser-1",
                                                                 "instanceId": copy["instanceId"]}, staff)
        assert beat["status"] == "conflict"
    _, errors = await hub.call("GET", f"/api/v1/venues/{venue}/device-errors", headers=staff)
    assert [e["message"] for e in errors["errors"]] == [
        "a process that names no instance (a browser player or an older edge) used this device's token while the "
        "box held the lease; it was refused. A copied token? Revoke and re-issue the device token."]
    assert (await hub.call("POST", players + "/heartbeat", mine, staff))[1]["status"] == "updated"
    _, released = await hub.call("POST", players + "/release", mine, staff)
    assert released["status"] == "released"


async def test_a_client_that_never_echoes_the_name_works_as_before(hub: Hub) -> None:
    """The reference's own player sends no instanceId and ignores the name: a page reload still reconnects."""
    venue = await hub.venue()
    players, staff, body = f"/api/v1/venues/{venue}/players", hub.staff(venue), {"deviceId": "browser-1"}
    _, first = await hub.call("POST", players + "/register", body, staff)
    assert (await hub.call("POST", players + "/heartbeat", body, staff))[1]["status"] == "updated"
    hub.clock.advance(5)
    _, again = await hub.call("POST", players + "/register", body, staff)  # the page reloaded within the grace
    assert (again["status"], again["epoch"]) == ("reconnected", first["epoch"])
    assert (await hub.call("POST", players + "/heartbeat", body, staff))[1]["status"] == "updated"
    assert (await hub.call("POST", players + "/release", body, staff))[1]["status"] == "released"


async def test_require_instance_id_checks_every_process(start_hub: HubFactory) -> None:
    """``hub.registry.require_instance_id``: heartbeats and releases must name their process, so a copy of any
    player's token is refused, on REST and on the reference's function endpoint alike."""
    async with start_hub(config=hub_config(registry=RegistryConfig(require_instance_id=True))) as hub:
        venue = await hub.venue()
        players, token = f"/api/v1/venues/{venue}/players", hub.device(venue, "box-a")
        _, first = await hub.call("POST", players + "/register", {"deviceId": "box-a"}, token)
        assert first["status"] == "registered"
        for action in ("heartbeat", "release"):
            status, refused = await hub.call("POST", f"{players}/{action}", {"deviceId": "box-a"}, token)
            assert (status, refused["field"]) == (400, "instanceId")
        execution = await execute(hub, "player-registry", {"action": "heartbeat", "venueId": venue,
                                                           "deviceId": "box-a"}, token)
        assert (execution["status"], execution["responseStatusCode"]) == ("failed", 400)
        # A process that names none is named and checked at once: this one is refused while the box beats.
        copy = await execute(hub, "player-registry", {"action": "register", "venueId": venue, "deviceId": "box-a"},
                             token)
        answer = json.loads(copy["responseBody"])
        assert (answer["status"], answer["reason"]) == ("conflict", "second_process")
        assert answer["instanceId"].startswith("hub-")
        mine = {"deviceId": "box-a", "instanceId": first["instanceId"]}
        assert (await hub.call("POST", players + "/heartbeat", mine, token))[1]["status"] == "updated"
        assert (await hub.call("POST", players + "/release", mine, token))[1]["status"] == "released"


async def execute(hub: Hub, function: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    status, execution = await hub.call("POST", f"/v1/functions/{function}/executions", {"body": json.dumps(body)},
                                       headers)
    assert status == 201, execution
    return dict(execution)
