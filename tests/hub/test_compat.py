"""The reference's function endpoint, driven with the reference document's own request examples."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from tests.hub.conftest import Hub

# Verbatim request bodies from the reference (DJAMMS_IO_07, "Request/Response" sections).
CREATE = '{"action":"create","email":"user@example.com","redirectUrl":"https://www.djamms.app/auth/verify"}'
VERIFY = '{"action":"verify","secret":"abc123...","userId":"user@example.com"}'
REGISTER = '{"action":"register","venueId":"venue-123","deviceId":"device-456","userAgent":"Mozilla/5.0..."}'
HEARTBEAT = '{"action":"heartbeat","venueId":"venue-123","deviceId":"device-456"}'
PROCESS = ('{"venueId":"venue-123","song":{"videoId":"dQw4w9WgXcQ","title":"Song Title","artist":"Artist Name",'
           '"duration":213},"paymentId":"pi_abc123","requesterId":"user-456"}')
ADD_SONG = ('{"playlistId":"playlist-123","song":{"videoId":"dQw4w9WgXcQ","title":"Song","artist":"Artist",'
            '"duration":213}}')

MAGIC_LINK = "68e5a317003c42c8bb6a"
PLAYER_REGISTRY = "68e5a41f00222cab705b"
PROCESS_REQUEST = "68e5acf100104d806321"


async def execute(hub: Hub, function: str, body: str, headers: dict[str, str] | None = None
                  ) -> tuple[dict[str, Any], Any]:
    headers = {"X-Appwrite-Project": "68cc86c3002b27e13947", **(headers or {})}
    status, execution = await hub.call("POST", f"/v1/functions/{function}/executions", {"body": body}, headers)
    assert status == 201, execution
    for key in ("$id", "$createdAt", "functionId", "status", "responseStatusCode", "responseBody", "duration"):
        assert key in execution
    assert execution["functionId"] == function
    return execution, json.loads(execution["responseBody"])


@pytest.mark.parametrize("function", [PROCESS_REQUEST, "processRequest"])
async def test_process_request_example(hub: Hub, function: str) -> None:
    await hub.venue("venue-123")
    execution, body = await execute(hub, function, PROCESS)
    assert (execution["status"], execution["responseStatusCode"]) == ("completed", 200)
    assert body == {"success": True}  # exactly the reference's success body
    for n in range(3):  # same artist: two more accepted, then the reference's error
        payment = PROCESS.replace("pi_abc123", f"pi_{n}")
        _, body = await execute(hub, function, payment)
    assert body == {"success": False, "error": "Too many requests for this artist in the last 30 minutes"}
    _, body = await execute(hub, function, PROCESS.replace("213", "301").replace("pi_abc123", "pi_long"))
    assert body == {"success": False, "error": "Song duration exceeds 5 minutes"}


@pytest.mark.parametrize("function", [PLAYER_REGISTRY, "player-registry"])
async def test_player_registry_examples(hub: Hub, function: str) -> None:
    await hub.venue("venue-123")
    device = hub.device("venue-123", "device-456")
    _, body = await execute(hub, function, REGISTER, device)
    assert body["status"] == "registered" and re.fullmatch(r"[0-9a-f]{20}", body["playerId"])
    _, body = await execute(hub, function, HEARTBEAT, device)
    assert body["status"] == "updated"
    other = REGISTER.replace("device-456", "device-789")
    _, body = await execute(hub, function, other, hub.device("venue-123", "device-789"))
    assert body["status"] == "conflict"
    assert body["currentMaster"]["deviceId"] == "device-456"
    assert isinstance(body["currentMaster"]["lastHeartbeat"], int)


async def test_player_registry_needs_a_token_of_the_venue(hub: Hub) -> None:
    await hub.venue("venue-123")
    execution, body = await execute(hub, PLAYER_REGISTRY, REGISTER)
    assert (execution["status"], execution["responseStatusCode"]) == ("failed", 401)
    assert body["success"] is False


@pytest.mark.parametrize("function", [MAGIC_LINK, "magic-link"])
async def test_magic_link_examples(hub: Hub, function: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="djamms_edge.hub.mailer"):
        _, body = await execute(hub, function, CREATE)
    assert body == {"success": True, "message": "Magic link sent to your email"}
    # The reference's placeholder secret is refused with the reference's text ...
    execution, body = await execute(hub, function, VERIFY)
    assert execution["status"] == "failed" and execution["responseStatusCode"] == 401
    assert body["error"] == "Invalid or expired magic link"
    # ... and the real one from the (logged) mail signs in, once.
    secret = re.search(r"secret=([0-9a-f]{64})", caplog.text).group(1)  # type: ignore[union-attr]
    _, body = await execute(hub, function, VERIFY.replace("abc123...", secret))
    assert set(body) == {"token", "user"}
    assert set(body["user"]) == {"userId", "email", "venueId", "role", "autoplay"}
    assert body["user"]["role"] == "staff"
    _, body = await execute(hub, function, VERIFY.replace("abc123...", secret))
    assert body["error"] == "Invalid or expired magic link"


async def test_add_song_to_playlist_example(hub: Hub) -> None:
    venue = await hub.venue()
    _, playlist = await hub.call("POST", f"/api/v1/venues/{venue}/playlists", {"name": "p"}, hub.staff(venue))
    request = ADD_SONG.replace("playlist-123", playlist["playlistId"])
    execution, body = await execute(hub, "addSongToPlaylist", request, hub.staff(venue))
    assert execution["status"] == "completed"
    assert body == {"success": True, "realEndOffset": 213}  # nothing analysed yet: the full duration
    await hub.call("PUT", "/api/v1/catalog/override", {"videoId": "dQw4w9WgXcQ", "realEndOffset": 210.5},
                   hub.staff(venue))
    _, body = await execute(hub, "addSongToPlaylist", request, hub.staff(venue))
    assert body == {"success": True, "realEndOffset": 210.5}
    _, stored = await hub.call("GET", f"/api/v1/venues/{venue}/playlists/{playlist['playlistId']}",
                               headers=hub.staff(venue))
    assert len(stored["tracks"]) == 2
    # The reference's playlist id does not exist here: a clean failure, not a crash.
    execution, body = await execute(hub, "addSongToPlaylist", ADD_SONG, hub.staff(venue))
    assert (execution["responseStatusCode"], body["field"]) == (404, "playlistId")


@pytest.mark.parametrize(
    ("function", "envelope", "status", "mentions"),
    [
        ("no-such-function", {"body": "{}"}, 404, "no-such-function"),
        (PROCESS_REQUEST, {"body": {"venueId": "x"}}, 400, "body: "),
        (PROCESS_REQUEST, {"body": "{not json"}, 400, "body: "),
        (PROCESS_REQUEST, {"body": "[1, 2]"}, 400, "body: "),
        (PROCESS_REQUEST, ["body"], 400, "body: "),
    ],
)
async def test_bad_envelopes_are_4xx_in_appwrites_shape(hub: Hub, function: str, envelope: Any, status: int,
                                                         mentions: str) -> None:
    code, body = await hub.call("POST", f"/v1/functions/{function}/executions", envelope)
    assert set(body) == {"message", "code", "type", "version"}  # what Appwrite's SDKs read (issue 13)
    assert (code, body["code"]) == (status, status) and mentions in body["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"venueId":"venue-123","song":{"videoId":"bad id","title":"t","artist":"a","duration":1},"paymentId":"p"}',
         "song.videoId"),
        ('{"venueId":"venue-123","song":{"videoId":"dQw4w9WgXcQ","title":"t","artist":"a","duration":"long"},'
         '"paymentId":"p"}', "song.duration"),
        ('{"venueId":"venue-123","song":{"videoId":"dQw4w9WgXcQ","title":"t","artist":"a","duration":1}}',
         "paymentId"),
        ('{"action":"dance","venueId":"venue-123","deviceId":"d"}', "action"),
    ],
)
async def test_bad_function_input_fails_the_execution_naming_the_field(hub: Hub, body: str, field: str) -> None:
    await hub.venue("venue-123")
    function = PLAYER_REGISTRY if "dance" in body else PROCESS_REQUEST
    execution, response = await execute(hub, function, body, hub.device("venue-123", "d"))
    assert execution["status"] == "failed" and 400 <= execution["responseStatusCode"] < 500
    assert response["field"] == field
