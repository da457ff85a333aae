"""A paid request refused after it was accepted: pending -> refund_due, its entry leaves the queue, once.

Store-level (both backends through the ``backend`` fixture) and through the device's over-limit endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from djamms_edge.hub.store.base import (
    HubStore,
    MasterWrite,
    PaidRequest,
    PlayReport,
    RegistryTimings,
    RequestRules,
    Song,
    StaleEpoch,
    UnknownRequest,
    VenueSettings,
)
from tests.hub.conftest import Hub, make_store
from tests.hub.test_queue_feed import master_of, snapshot
from tests.hub.test_requests import SONG, paid, request

TIMINGS = RegistryTimings(stale_ms=120_000, expire_ms=86_400_000)
RULES = RequestRules(max_duration_s=300, artist_limit=3, artist_window_ms=1_800_000)
NOW = 1_800_000_000_000
LONG = Song("bbbbbbbbbb1", "Long one", "Slow band", 30.0)  # declares 30 s; the box will measure 280 s


@pytest.fixture
async def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[HubStore]:
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    opened = make_store(backend, tmp_path, pg_url=pg_url)
    await opened.open()
    try:
        await opened.create_venue("v", "Venue", NOW)
        await opened.create_venue("w", "Other venue", NOW)
        yield opened
    finally:
        await opened.close()


async def _accepted(store: HubStore, payment: str = "pi_1", song: Song = LONG) -> str:
    outcome = await store.submit_paid_request(PaidRequest("v", song, payment, "patron", "1.2.3.4"), RULES, NOW)
    assert outcome.accepted
    return outcome.request_id


async def test_refusing_a_queued_request_makes_it_refund_due_and_drops_its_entry(store: HubStore) -> None:
    kept = await _accepted(store, "pi_0", Song("cccccccccc1", "Kept", "Other band", 100.0))
    request_id = await _accepted(store)
    before = await store.queue_snapshot("v")
    (entry,) = [e for e in before.priority if e.request_id == request_id]

    refusal = await store.refuse_request("v", request_id, "Song duration exceeds 5 minutes", NOW + 1)

    assert refusal.changed and refusal.removed_entry_ids == (entry.entry_id,)
    assert (refusal.request.status, refusal.request.reason) == ("refund_due", "Song duration exceeds 5 minutes")
    after = await store.queue_snapshot("v")
    assert [e.request_id for e in after.priority] == [kept]
    batch = await store.changes_since("v", before.version, 100)
    assert [c.data for c in batch.changes] == [{"type": "entry_removed", "entryId": entry.entry_id}]
    (listed,) = await store.list_requests("v", "refund_due", 10)
    assert listed.request_id == request_id


async def test_a_second_refusal_changes_nothing(store: HubStore) -> None:
    request_id = await _accepted(store)
    await store.refuse_request("v", request_id, "first reason", NOW + 1)
    version = (await store.queue_snapshot("v")).version

    again = await store.refuse_request("v", request_id, "second reason", NOW + 2)

    assert not again.changed and again.removed_entry_ids == ()
    assert (again.request.status, again.request.reason) == ("refund_due", "first reason")
    assert (await store.queue_snapshot("v")).version == version  # no change for edges either


async def test_a_played_request_is_not_refused(store: HubStore) -> None:
    request_id = await _accepted(store)
    epoch = (await store.register_player("v", "box", "ua", NOW, TIMINGS)).epoch
    write = MasterWrite("v", "box", epoch, "k1")
    await store.advance_queue(write, None, NOW + 1)
    await store.report_played(MasterWrite("v", "box", epoch, "k2"), PlayReport(None, LONG, NOW + 2, request_id),
                              NOW + 2)

    refusal = await store.refuse_request("v", request_id, "too late", NOW + 3)

    assert not refusal.changed and refusal.request.status == "played"


async def test_only_a_request_of_that_venue_can_be_refused(store: HubStore) -> None:
    request_id = await _accepted(store)
    for venue, rid in (("w", request_id), ("v", "no-such-request"), ("nowhere", request_id)):
        with pytest.raises(UnknownRequest):
            await store.refuse_request(venue, rid, "r", NOW + 1)
    assert (await store.list_requests("v", "pending", 10))[0].request_id == request_id


async def test_a_fenced_refusal_needs_the_current_master(store: HubStore) -> None:
    request_id = await _accepted(store)
    old = (await store.register_player("v", "box-a", "ua", NOW, TIMINGS)).epoch
    new = (await store.register_player("v", "box-b", "ua", NOW + TIMINGS.stale_ms + 1, TIMINGS)).epoch

    with pytest.raises(StaleEpoch):
        await store.refuse_request("v", request_id, "r", NOW + TIMINGS.stale_ms + 2,
                                   fence=MasterWrite("v", "box-a", old))
    assert (await store.list_requests("v", "pending", 10))[0].request_id == request_id

    refusal = await store.refuse_request("v", request_id, "r", NOW + TIMINGS.stale_ms + 3,
                                         fence=MasterWrite("v", "box-b", new))
    assert refusal.changed


# --- the device's report -----------------------------------------------------------------------------


async def over_limit(hub: Hub, venue: str, request_id: str, body: dict, device: str = "box-a") -> tuple[int, dict]:
    return await hub.call("POST", f"/api/v1/venues/{venue}/requests/{request_id}/over-limit", body,
                          hub.device(venue, device))


async def test_the_master_reports_a_measured_over_limit_request_and_it_is_refunded(hub: Hub) -> None:
    venue = await hub.venue()
    epoch = await master_of(hub, venue)
    status, accepted = await request(hub, venue, paid({**SONG, "duration": 30}))
    assert status == 201
    request_id = accepted["requestId"]

    status, body = await over_limit(hub, venue, request_id, {"deviceId": "box-a", "epoch": epoch, "duration": 340.4})

    assert status == 200, body
    assert body["changed"] and body["request"]["status"] == "refund_due"
    assert body["request"]["reason"] == "Song duration exceeds 5 minutes (measured 340 seconds)"
    assert (await snapshot(hub, venue))["priorityQueue"] == []
    # A resend (the outbox retries) answers the same and changes nothing.
    status, again = await over_limit(hub, venue, request_id, {"deviceId": "box-a", "epoch": epoch, "duration": 340.4})
    assert (status, again["changed"], again["request"]["status"]) == (200, False, "refund_due")


async def test_the_hub_applies_its_own_limit_to_the_measured_length(hub: Hub) -> None:
    venue = await hub.venue()
    epoch = await master_of(hub, venue)
    _, accepted = await request(hub, venue, paid())
    status, body = await over_limit(hub, venue, accepted["requestId"],
                                    {"deviceId": "box-a", "epoch": epoch, "duration": 299})
    assert (status, body["field"]) == (422, "duration")
    assert len((await snapshot(hub, venue))["priorityQueue"]) == 1


async def test_only_the_venues_master_may_report_over_limit(hub: Hub) -> None:
    venue = await hub.venue()
    epoch = await master_of(hub, venue)
    _, accepted = await request(hub, venue, paid())
    rid = accepted["requestId"]
    body = {"deviceId": "box-a", "epoch": epoch, "duration": 400}
    path = f"/api/v1/venues/{venue}/requests/{rid}/over-limit"
    assert (await hub.call("POST", path, body))[0] == 401
    assert (await hub.call("POST", path, body, hub.device(venue, "box-b")))[0] == 403
    assert (await hub.call("POST", path, body, hub.device("elsewhere", "box-a")))[0] == 403
    assert (await over_limit(hub, venue, rid, {**body, "deviceId": "box-b"}, device="box-b"))[0] == 409
    assert (await over_limit(hub, venue, rid, {**body, "epoch": epoch + 1}))[0] == 409
    assert (await over_limit(hub, venue, "nope", body))[0] == 404
    assert len((await snapshot(hub, venue))["priorityQueue"]) == 1


async def test_a_venues_own_limit_is_the_one_the_measured_length_is_held_to(hub: Hub) -> None:
    venue = await hub.venue()
    await hub.store.set_venue_settings(venue, VenueSettings(max_duration_s=240), int(hub.clock() * 1000))
    epoch = await master_of(hub, venue)
    _, accepted = await request(hub, venue, paid({**SONG, "duration": 30}))
    status, body = await over_limit(hub, venue, accepted["requestId"],
                                    {"deviceId": "box-a", "epoch": epoch, "duration": 280})
    assert status == 200 and body["request"]["reason"] == "Song duration exceeds 4 minutes (measured 280 seconds)"
