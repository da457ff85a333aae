"""Paid requests on a real hub: the reference's rules, atomic under concurrency, idempotent, refunds listed."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from djamms_edge.hub.config import LimitsConfig
from tests.hub.conftest import Hub, HubFactory, hub_config

SONG = {"videoId": "dQw4w9WgXcQ", "title": "Never Gonna Give You Up", "artist": "Rick Astley", "duration": 213}


def paid(song: dict | None = None, payment: str | None = None, **extra: object) -> dict:
    return {"song": song or SONG, "paymentId": payment or "pi_" + uuid.uuid4().hex, "requesterId": "user-456",
            **extra}


async def request(hub: Hub, venue: str, body: dict) -> tuple[int, dict]:
    return await hub.call("POST", f"/api/v1/venues/{venue}/requests", body)


async def full_queue(hub: Hub, venue: str) -> dict:
    return (await hub.call("GET", f"/api/v1/venues/{venue}/queue/full", headers=hub.staff(venue)))[1]


async def test_accepted_request_joins_the_priority_queue(hub: Hub) -> None:
    venue = await hub.venue()
    status, body = await request(hub, venue, paid(payment="pi_abc123"))
    assert status == 201
    assert body["success"] is True and body["status"] == "pending"
    queue = await full_queue(hub, venue)
    [entry] = queue["priorityQueue"]
    assert entry["videoId"] == "dQw4w9WgXcQ"
    assert entry["isRequest"] is True and entry["paidCredit"] == 0.5
    assert entry["requesterId"] == "user-456"
    assert entry["requestId"] == body["requestId"]
    assert queue["version"] == 1


async def test_priority_queue_is_first_in_first_out(hub: Hub) -> None:
    venue = await hub.venue()
    for i in range(5):
        await request(hub, venue, paid({**SONG, "artist": f"artist {i}", "title": f"t{i}"}))
    assert [e["title"] for e in (await full_queue(hub, venue))["priorityQueue"]] == [f"t{i}" for i in range(5)]


async def test_too_long_song_is_refused_and_refund_due(hub: Hub) -> None:
    venue = await hub.venue()
    status, body = await request(hub, venue, paid({**SONG, "duration": 301}))
    assert status == 422
    assert body["success"] is False
    assert body["error"] == "Song duration exceeds 5 minutes"
    assert (await full_queue(hub, venue))["priorityQueue"] == []
    _, listed = await hub.call("GET", f"/api/v1/venues/{venue}/requests?status=refund_due", headers=hub.staff(venue))
    [refund] = listed["requests"]
    assert (refund["status"], refund["reason"]) == ("refund_due", "Song duration exceeds 5 minutes")
    assert refund["paymentId"] == body.get("paymentId", refund["paymentId"])


async def test_fourth_request_for_an_artist_within_30_minutes_is_refused(hub: Hub) -> None:
    venue = await hub.venue()
    for _ in range(3):
        assert (await request(hub, venue, paid()))[0] == 201
    status, body = await request(hub, venue, paid({**SONG, "artist": "rick astley "}))  # same artist, loosely
    assert status == 422
    assert body["error"] == "Too many requests for this artist in the last 30 minutes"
    # Another artist, and another venue, are unaffected.
    assert (await request(hub, venue, paid({**SONG, "artist": "Someone Else"})))[0] == 201
    assert (await request(hub, await hub.venue(), paid()))[0] == 201
    hub.clock.advance(30 * 60 + 1)  # the window slides
    assert (await request(hub, venue, paid()))[0] == 201


async def test_refused_requests_do_not_count_against_the_artist(hub: Hub) -> None:
    venue = await hub.venue()
    for _ in range(3):
        await request(hub, venue, paid({**SONG, "duration": 999}))
    assert (await request(hub, venue, paid()))[0] == 201


async def test_payment_id_is_idempotent(hub: Hub) -> None:
    venue = await hub.venue()
    first = await request(hub, venue, paid(payment="pi_retry"))
    again = await request(hub, venue, paid(payment="pi_retry"))
    assert first[0] == 201 and again[0] == 200
    assert again[1]["replayed"] is True and again[1]["requestId"] == first[1]["requestId"]
    assert len((await full_queue(hub, venue))["priorityQueue"]) == 1
    # A refused payment stays refused on retry, with the same reason.
    await request(hub, venue, paid({**SONG, "duration": 400}, payment="pi_long"))
    status, body = await request(hub, venue, paid(payment="pi_long"))
    assert (status, body["error"]) == (422, "Song duration exceeds 5 minutes")


async def test_twenty_concurrent_same_artist_requests_accept_exactly_three(hub: Hub) -> None:
    venue = await hub.venue()
    answers = await asyncio.gather(*(request(hub, venue, paid()) for _ in range(20)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] * 3 + [422] * 17
    assert len((await full_queue(hub, venue))["priorityQueue"]) == 3
    _, refunds = await hub.call("GET", f"/api/v1/venues/{venue}/requests?status=refund_due", headers=hub.staff(venue))
    assert len(refunds["requests"]) == 17


async def test_concurrent_retries_of_one_payment_queue_once(hub: Hub) -> None:
    venue = await hub.venue()
    answers = await asyncio.gather(*(request(hub, venue, paid(payment="pi_same")) for _ in range(10)))
    assert sorted(s for s, _ in answers) == [200] * 9 + [201]
    assert len((await full_queue(hub, venue))["priorityQueue"]) == 1


async def test_requests_per_client_are_limited(start_hub: HubFactory) -> None:
    limits = dataclasses.replace(LimitsConfig(), requests_per_client=3, requests_window_s=60, requests_per_patron=100)
    async with start_hub(hub_config(limits=limits)) as hub:
        venue = await hub.venue()
        statuses = [(await request(hub, venue, paid({**SONG, "artist": f"a{i}"})))[0] for i in range(4)]
        assert statuses == [201, 201, 201, 429]
        hub.clock.advance(20)
        assert (await request(hub, venue, paid({**SONG, "artist": "late"})))[0] == 201


async def test_refund_list_is_for_the_venues_staff_only(hub: Hub) -> None:
    venue, other = await hub.venue(), await hub.venue()
    path = f"/api/v1/venues/{venue}/requests"
    assert (await hub.call("GET", path))[0] == 401
    assert (await hub.call("GET", path, headers=hub.staff(other)))[0] == 403
    assert (await hub.call("GET", path, headers=hub.admin()))[0] == 200


async def test_lookalike_artist_names_count_as_one_artist(hub: Hub) -> None:
    """Invisible and lookalike characters do not get around the artist limit (issue 13)."""
    venue = await hub.venue()
    for _ in range(3):
        assert (await request(hub, venue, paid({**SONG, "artist": "ABBA"})))[0] == 201
    for lookalike in ("A\u200bBBA", "AB\u00adBA", "\u202eABBA", "A\u0301BBA", "ＡＢＢＡ", "АВВА",
                      "\U0001d400\U0001d401\U0001d401\U0001d400"):
        status, body = await request(hub, venue, paid({**SONG, "artist": lookalike}))
        assert (status, body["error"]) == (422, "Too many requests for this artist in the last 30 minutes")
