"""Edges report errors to the hub: stored once per idempotency key, only by the device itself, read by staff."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from djamms_edge.hub.config import LimitsConfig
from tests.hub.conftest import Hub, HubFactory, hub_config

PATH = "/api/v1/venues/{}/device-errors"


def _report(**fields: object) -> dict[str, object]:
    return {"deviceId": "box-a", "videoId": "dQw4w9WgXcQ", "message": "download failed: HTTP 403", "at": 1_000,
            **fields}


def _key(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_a_reported_error_is_listed_for_staff_newest_first(hub: Hub) -> None:
    venue = await hub.venue()
    device = hub.device(venue, "box-a")
    status, first = await hub.call("POST", PATH.format(venue), _report(), device | _key("err-1"))
    assert status == 201 and first["recorded"] and not first["replayed"]
    status, _ = await hub.call("POST", PATH.format(venue), {"deviceId": "box-a", "message": "player died"},
                               device | _key("err-2"))
    assert status == 201
    status, listed = await hub.call("GET", PATH.format(venue), headers=hub.staff(venue))
    assert status == 200
    newest, oldest = listed["errors"]
    assert (newest["message"], newest["videoId"], newest["deviceId"]) == ("player died", None, "box-a")
    assert newest["at"] == newest["receivedAt"]  # no "at": the hub's receipt time
    assert oldest == {"errorId": first["errorId"], "deviceId": "box-a", "videoId": "dQw4w9WgXcQ",
                      "message": "download failed: HTTP 403", "at": 1_000, "receivedAt": oldest["receivedAt"]}
    status, limited = await hub.call("GET", PATH.format(venue) + "?limit=1", headers=hub.admin())
    assert status == 200 and [e["message"] for e in limited["errors"]] == ["player died"]


async def test_a_resent_report_is_stored_once(hub: Hub) -> None:
    venue = await hub.venue()
    device = hub.device(venue, "box-a")
    # The outbox resends after a lost answer, possibly while the first attempt is still in flight.
    answers = await asyncio.gather(*(hub.call("POST", PATH.format(venue), _report(), device | _key("k"))
                                     for _ in range(5)))
    assert sorted(status for status, _ in answers) == [200, 200, 200, 200, 201]
    assert len({body["errorId"] for _, body in answers}) == 1
    assert [body["replayed"] for status, body in answers if status == 200] == [True] * 4
    # The key may come in the body too; another device's same key is its own report.
    status, _ = await hub.call("POST", PATH.format(venue), _report(idempotencyKey="k"), device)
    assert status == 200
    status, _ = await hub.call("POST", PATH.format(venue), _report(deviceId="box-b"),
                               hub.device(venue, "box-b") | _key("k"))
    assert status == 201
    _, listed = await hub.call("GET", PATH.format(venue), headers=hub.staff(venue))
    assert sorted(e["deviceId"] for e in listed["errors"]) == ["box-a", "box-b"]


@pytest.mark.parametrize(
    ("body", "key", "status", "field"),
    [
        (_report(), None, 400, "idempotencyKey"),
        (_report(message="x" * 1001), "k", 400, "message"),
        (_report(message=""), "k", 400, "message"),
        (_report(message=None), "k", 400, "message"),
        (_report(videoId="$(reboot)"), "k", 400, "videoId"),
        (_report(at="yesterday"), "k", 400, "at"),
        (_report(deviceId="box b"), "k", 400, "deviceId"),
    ],
)
async def test_bad_reports_are_refused_and_nothing_is_stored(hub: Hub, body: dict, key: str | None, status: int,
                                                             field: str) -> None:
    venue = await hub.venue()
    code, answer = await hub.call("POST", PATH.format(venue), body,
                                  hub.device(venue, "box-a") | ({} if key is None else _key(key)))
    assert (code, answer["field"]) == (status, field)
    _, listed = await hub.call("GET", PATH.format(venue), headers=hub.admin())
    assert listed["errors"] == []


async def test_a_message_of_1000_characters_is_kept_whole(hub: Hub) -> None:
    venue = await hub.venue()
    status, _ = await hub.call("POST", PATH.format(venue), _report(message="é" * 1000),
                               hub.device(venue, "box-a") | _key("k"))
    assert status == 201
    _, listed = await hub.call("GET", PATH.format(venue), headers=hub.staff(venue))
    assert listed["errors"][0]["message"] == "é" * 1000


async def test_only_the_device_itself_reports_and_only_staff_read(hub: Hub) -> None:
    venue, other = await hub.venue(), await hub.venue()
    post = PATH.format(venue)
    for headers, status in [
        ({}, 401),
        (hub.device(venue, "box-b"), 403),  # another device of the venue, naming box-a
        (hub.device(other, "box-a"), 403),  # box-a's namesake at another venue
        (hub.staff(venue), 403),
        (hub.admin(), 403),
    ]:
        code, answer = await hub.call("POST", post, _report(), headers | _key("k"))
        assert code == status, (headers, answer)
    for headers, status in [({}, 401), (hub.device(venue, "box-a"), 403), (hub.staff(other), 403)]:
        code, _ = await hub.call("GET", post, headers=headers)
        assert code == status
    _, listed = await hub.call("GET", post, headers=hub.staff(venue))
    assert listed["errors"] == []
    code, answer = await hub.call("POST", PATH.format("no-such-venue"), _report(),
                                  hub.device("no-such-venue", "box-a") | _key("k"))
    assert (code, answer["field"]) == (404, "venueId")


async def test_a_device_in_a_failure_loop_is_cut_off_without_silencing_the_others(start_hub: HubFactory) -> None:
    limits = dataclasses.replace(LimitsConfig(), device_errors_per_device=3, device_errors_window_s=3600)
    async with start_hub(hub_config(limits=limits)) as hub:
        venue = await hub.venue()
        looping, other = hub.device(venue, "box-a"), hub.device(venue, "box-b")
        statuses = [(await hub.call("POST", PATH.format(venue), _report(), looping | _key(f"k{i}")))[0]
                    for i in range(5)]
        assert statuses == [201, 201, 201, 429, 429]
        status, answer = await hub.call("POST", PATH.format(venue), _report(deviceId="box-b"), other | _key("k0"))
        assert status == 201, answer
        _, listed = await hub.call("GET", PATH.format(venue), headers=hub.staff(venue))
        assert sorted(e["deviceId"] for e in listed["errors"]) == ["box-a"] * 3 + ["box-b"]
        hub.clock.advance(1200)  # a third of the window: one more report's worth
        assert (await hub.call("POST", PATH.format(venue), _report(), looping | _key("k9")))[0] == 201
