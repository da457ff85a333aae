"""A demo venue in one call: the venue, an admin, its owner and a staff user, an active playlist.

Idempotent (running it twice changes nothing), so ``scripts/demo.sh`` can call it on every start.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from djamms_edge.hub.store.base import HubStore, Song, User

DEMO_PLAYLIST = "Demo rotation"
DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_TRACKS = (
    Song("dQw4w9WgXcQ", "Never Gonna Give You Up", "Rick Astley", 213.0),
    Song("kJQP7kiw5Fk", "Despacito", "Luis Fonsi", 282.0),
    Song("9bZkp7q19f0", "Gangnam Style", "PSY", 253.0),
)


def demo_staff_email(venue_id: str) -> str:
    return f"staff@{venue_id}.example"


def demo_owner_email(venue_id: str) -> str:
    return f"owner@{venue_id}.example"


@dataclass(frozen=True)
class DemoVenue:
    venue_id: str
    playlist_id: str
    admin: User
    owner: User
    staff: User


async def seed_demo(store: HubStore, venue_id: str, now_ms: int, *, tracks: Sequence[Song] = DEMO_TRACKS,
                    admin_email: str = DEMO_ADMIN_EMAIL, staff_email: str | None = None) -> DemoVenue:
    """Create (or find) the demo venue; the store must be open."""
    await store.create_venue(venue_id, f"Demo venue {venue_id}", now_ms)
    admin = await store.upsert_user(User("user-" + uuid.uuid4().hex, admin_email, None, "admin"), now_ms)
    owner = await store.upsert_user(User("user-" + uuid.uuid4().hex, demo_owner_email(venue_id), venue_id, "owner"),
                                    now_ms)
    staff = await store.upsert_user(
        User("user-" + uuid.uuid4().hex, staff_email or demo_staff_email(venue_id), venue_id, "staff"), now_ms
    )
    playlist = next((p for p in await store.list_playlists(venue_id) if p.name == DEMO_PLAYLIST), None)
    if playlist is None:
        playlist = await store.create_playlist(venue_id, DEMO_PLAYLIST, now_ms)
        for song in tracks:
            playlist = await store.add_track(playlist.playlist_id, song, now_ms)
    if not playlist.active:
        await store.activate_playlist(venue_id, playlist.playlist_id, now_ms)
    return DemoVenue(venue_id, playlist.playlist_id, admin, owner, staff)
