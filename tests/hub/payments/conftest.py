"""A real hub charging through the fake Stripe (the official stripe library pointed at it)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from djamms_edge.hub.config import PaymentsConfig, RequestRulesConfig
from tests.hub.conftest import Hub, HubFactory, hub_config
from tests.hub.fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, running_fake_stripe
from tests.ports import reserved_port

PRICE = 250  # 2.50
SONGS: list[dict[str, Any]] = [  # request bodies' songs (JSON)
    {"videoId": "aaaaaaaaaa1", "title": "Dancing Queen", "artist": "ABBA", "duration": 231},
    {"videoId": "bbbbbbbbbb2", "title": "Waterloo", "artist": "ABBA", "duration": 165},
    {"videoId": "ccccccccc03", "title": "Born to Run", "artist": "Bruce Springsteen", "duration": 270},
    {"videoId": "ddddddddd04", "title": "Too Long Song", "artist": "Long Band", "duration": 900},
]


@dataclasses.dataclass
class Paying:
    hub: Hub
    stripe: FakeStripe
    venue: str

    async def checkout(self, video_id: str, patron: str = "patron-1") -> tuple[int, Any]:
        return await self.hub.call("POST", f"/api/v1/venues/{self.venue}/checkout",
                                   {"song": {"videoId": video_id}, "requesterId": patron})

    async def status(self, request_id: str) -> dict[str, Any]:
        status, body = await self.hub.call("GET", f"/api/v1/venues/{self.venue}/requests/{request_id}/status")
        assert status == 200, body
        return dict(body)

    async def queue(self) -> list[dict[str, Any]]:
        status, body = await self.hub.call("GET", f"/api/v1/venues/{self.venue}/queue")
        assert status == 200
        return list(body["queue"])

    def session_of(self, checkout_url: str) -> str:
        return checkout_url.rsplit("/", 1)[1]


async def set_up_venue(hub: Hub, venue: str, price: int, songs: list[dict[str, Any]] = SONGS,
                       active: bool = False) -> None:
    """A venue with ``price`` and one requestable playlist of ``songs`` (the one it plays, if ``active``)."""
    await hub.venue(venue)
    status, body = await hub.call("PUT", f"/api/v1/venues/{venue}/price", {"price": price, "currency": "usd"},
                                  headers=hub.staff(venue))
    assert status == 200, body
    status, playlist = await hub.call("POST", f"/api/v1/venues/{venue}/playlists", {"name": "Requests"},
                                      headers=hub.staff(venue))
    assert status == 201
    playlist_id = playlist["playlistId"]
    for song in songs:
        status, _ = await hub.call("POST", f"/api/v1/venues/{venue}/playlists/{playlist_id}/tracks",
                                   {"song": song}, headers=hub.staff(venue))
        assert status == 201
    status, _ = await hub.call("PATCH", f"/api/v1/venues/{venue}/playlists/{playlist_id}",
                               {"requestable": True}, headers=hub.staff(venue))
    assert status == 200
    if active:
        status, _ = await hub.call("PUT", f"/api/v1/venues/{venue}/active-playlist", {"playlistId": playlist_id},
                                   headers=hub.staff(venue))
        assert status == 200


STAND_IN_BOX = "counter-box"


async def register_box(hub: Hub, venue: str, device: str) -> None:
    """``device`` registers as the venue's player, as a box does when it starts (it is master if none is)."""
    status, body = await hub.call("POST", f"/api/v1/venues/{venue}/players/register", {"deviceId": device},
                                  headers=hub.device(venue, device))
    assert status == 200, body


PayingFactory = Callable[..., Any]


@pytest.fixture
def start_paying(start_hub: HubFactory) -> PayingFactory:
    """``async with start_paying(price=250, artist_limit=3) as p`` — a hub on Stripe (fake), a venue with a
    requestable playlist of SONGS, refunds retried fast."""

    @asynccontextmanager
    async def start(price: int = PRICE, artist_limit: int = 3, songs: list[dict[str, Any]] = SONGS,
                    active: bool = False, playing: bool = True, **payments: Any) -> AsyncIterator[Paying]:
        # The hub's port is known before it starts: its public_url (Stripe's return address) names it.
        with reserved_port() as port:
            async with running_fake_stripe() as fake:
                settings = {"provider": "stripe", "stripe_secret_key": API_KEY,
                            "stripe_webhook_secret": WEBHOOK_SECRET, "stripe_api_base": fake.url,
                            "refund_interval_s": 0.2, "refund_retry_max_s": 0.5, **payments}
                # allow_urls: the browser test's songs are loopback media URLs a real edge fetches (loopback: allowed).
                rules = RequestRulesConfig(artist_limit=artist_limit, allow_urls=True, allowed_hosts=("127.0.0.1",))
                config = hub_config(public_url=f"http://127.0.0.1:{port}", payments=PaymentsConfig(**settings),
                                    requests=rules)
                async with start_hub(config=config, port=port) as hub:
                    fake.webhook_url = hub.url + "/api/v1/payments/stripe/webhook"
                    await set_up_venue(hub, "tavern", price, songs, active)
                    if playing:  # a box at the venue holds the lease (paid requests are closed while none does)
                        await register_box(hub, "tavern", STAND_IN_BOX)
                    yield Paying(hub, fake, "tavern")

    return start


@pytest.fixture
async def paying(start_paying: PayingFactory) -> AsyncIterator[Paying]:
    async with start_paying() as running:
        yield running
