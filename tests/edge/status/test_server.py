"""The status server over real HTTP on loopback: JSON, live events, metrics, controls, bad input."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from djamms_edge.edge.status import server as server_module
from djamms_edge.edge.status.config import StatusConfig
from djamms_edge.edge.status.fake import FakeStatusSource
from djamms_edge.edge.status.server import start_status_server
from tests.edge.status.conftest import ADMIN_TOKEN, Running

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _next_event(content: aiohttp.StreamReader) -> dict[str, str]:
    """Read one server-sent event (skipping comments and the retry hint)."""
    fields: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(content.readline(), 5)).decode().rstrip("\n")
        if not line:
            if "data" in fields:
                return fields
            continue
        if line.startswith(":"):
            fields.setdefault("comments", "")
            fields["comments"] += line
            continue
        key, _, value = line.partition(": ")
        fields[key] = value


# --- read-only routes --------------------------------------------------------------


async def test_status_json_has_the_whole_snapshot(running: Running) -> None:
    async with running.http.get(running.url("/api/status")) as response:
        assert response.status == 200
        body = await response.json()
    assert body["role"] == "master"
    assert body["hub"]["connected"] is True
    playing = body["now_playing"]
    assert (playing["title"], playing["artist"], playing["real_end"]) == ("First Song", "The Testers", 200.25)
    assert [item["title"] for item in body["priority_queue"]] == ["Paid Request"]
    assert [item["title"] for item in body["main_queue"]] == ["Next Up", "After That"]
    assert body["cache"] == {"bytes_used": 1_500_000_000, "bytes_cap": 8_000_000_000, "files": 120}
    assert body["analysis"] == {"done": 30, "total": 120, "running": False}
    assert body["recent_errors"][0]["message"].startswith("track zzzzzzzzzzz")
    assert (body["venue_id"], body["device_id"], body["software_version"]) == ("venue-1", "box-1", "0.1.0")
    assert abs(body["server_time"] - time.time()) < 5  # the box's clock, for advancing the position


async def test_the_page_and_its_files_are_served_with_a_strict_policy(running: Running) -> None:
    async with running.http.get(running.url("/")) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        page = await response.text()
    assert '<script src="/static/app.js"' in page
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        async with running.http.get(running.url(f"/static/{name}")) as response:
            assert (response.status, response.content_type) == (200, kind)
    async with running.http.get(running.url("/static/..%2Fserver.py")) as response:
        assert response.status == 404
        assert "error" in await response.json()


async def test_metrics_are_prometheus_text(running: Running) -> None:
    async with running.http.get(running.url("/metrics")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"djamms_edge_role", "djamms_edge_position_seconds", "djamms_edge_queue_length"} <= names
    assert "djamms_edge_errors" in names  # the counter family (samples are ..._total)


# --- live updates --------------------------------------------------------------------


async def test_events_send_the_snapshot_then_each_change(running: Running) -> None:
    async with running.http.get(running.url("/events")) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await _next_event(response.content)
        assert first["event"] == "status"
        assert json.loads(first["data"])["now_playing"]["title"] == "First Song"

        running.source.play("Second Song", artist="Band B")
        second = json.loads((await _next_event(response.content))["data"])
        assert second["now_playing"]["title"] == "Second Song"
        assert second["version"] > json.loads(first["data"])["version"]


async def test_a_burst_of_changes_arrives_as_the_newest_state(running: Running) -> None:
    async with running.http.get(running.url("/events")) as response:
        await _next_event(response.content)
        for n in range(20):
            running.source.play(f"Track {n}")
        seen = [json.loads((await _next_event(response.content))["data"])["now_playing"]["title"]]
        while seen[-1] != "Track 19":
            seen.append(json.loads((await _next_event(response.content))["data"])["now_playing"]["title"])
    assert len(seen) < 20  # collapsed, not one event per change


async def test_quiet_streams_get_keepalives(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "KEEPALIVE_SECONDS", 0.05)
    async with running.http.get(running.url("/events")) as response:
        await _next_event(response.content)
        line = await asyncio.wait_for(response.content.readline(), 2)
        assert line == b": keepalive\n"


async def test_too_many_live_pages_get_503_and_a_closed_one_frees_its_place(running: Running) -> None:
    open_streams = [await running.http.get(running.url("/events")) for _ in range(3)]  # the fixture allows 3
    for stream in open_streams:
        await _next_event(stream.content)
    async with running.http.get(running.url("/events")) as refused:
        assert refused.status == 503
        assert "too many" in (await refused.json())["error"]
    open_streams[0].close()
    running.source.play("wakes the handler so it notices the closed connection")

    async def admitted() -> bool:
        async with running.http.get(running.url("/metrics")) as response:
            return "djamms_edge_status_live_clients 2" in await response.text()

    for _ in range(100):
        if await admitted():
            break
        await asyncio.sleep(0.02)
    async with running.http.get(running.url("/events")) as response:
        assert response.status == 200
    for stream in open_streams[1:]:
        stream.close()


async def test_close_ends_open_streams_promptly() -> None:
    source = FakeStatusSource()
    server = await start_status_server(StatusConfig(port=0), source)
    async with aiohttp.ClientSession() as http, http.get(server.url + "/events") as response:
        await _next_event(response.content)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.close()
        assert loop.time() - started < 1.0  # not the keepalive interval, not aiohttp's grace period
        assert await asyncio.wait_for(response.content.read(), 2) == b""


# --- controls ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-0123456789"}, 401),
        ({"Authorization": f"Basic {ADMIN_TOKEN}"}, 401),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, 401),
        ({"Authorization": "Bearer "}, 401),
    ],
)
async def test_controls_refuse_without_the_admin_token(running: Running, headers: dict[str, str], status: int) -> None:
    async with running.http.post(running.url("/api/control/skip"), headers=headers) as response:
        assert response.status == status
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "admin token" in (await response.json())["error"]
    assert running.source.calls == []


async def test_controls_are_off_when_no_token_is_configured() -> None:
    source = FakeStatusSource()
    server = await start_status_server(StatusConfig(port=0, admin_token=""), source)
    try:
        async with aiohttp.ClientSession() as http:
            for header in ("", "Bearer "):
                async with http.post(server.url + "/api/control/pause", headers={"Authorization": header}) as r:
                    assert r.status == 403
                    assert "admin_token" in (await r.json())["error"]
    finally:
        await server.close()
    assert source.calls == []


async def test_controls_reach_the_source_and_show_up_live(running: Running) -> None:
    async with running.http.get(running.url("/events")) as stream:
        await _next_event(stream.content)
        for action, body in (("pause", None), ("volume", {"volume": 35}), ("resume", {}), ("skip", None)):
            async with running.http.post(running.url(f"/api/control/{action}"), headers=AUTH, json=body) as r:
                assert r.status == 200, await r.text()
                assert await r.json() == {"ok": True, "action": action}
        state = json.loads((await _next_event(stream.content))["data"])
        while state["now_playing"]["title"] != "Paid Request":
            state = json.loads((await _next_event(stream.content))["data"])
    assert running.source.calls == [("pause", None), ("volume", 35.0), ("resume", None), ("skip", None)]
    assert state["volume"] == 35.0
    assert state["priority_queue"] == []


@pytest.mark.parametrize(
    ("action", "body", "status", "message"),
    [
        ("volume", b"{not json", 400, "not valid JSON"),
        ("volume", b"\xff\xfe", 400, "not valid JSON"),
        ("volume", b"[1, 2]", 400, "JSON object"),
        ("volume", b"{}", 400, "volume"),
        ("volume", b'{"volume": "loud"}', 400, "volume"),
        ("volume", b'{"volume": true}', 400, "volume"),
        ("volume", b'{"volume": 101}', 422, "between 0 and 100"),
        ("volume", b'{"volume": -1}', 422, "between 0 and 100"),
        ("volume", b'{"volume": NaN}', 422, "between 0 and 100"),
        ("volume", b'{"volume": 1e999}', 422, "between 0 and 100"),
        ("skip", b"{" + b" " * 10_000 + b"}", 413, ""),
        ("volume", b"[" * 2000 + b"]" * 2000, 400, "nested too deeply"),  # fits in 4 KB; json.loads recurses
        ("reboot", b"{}", 404, "unknown control"),
    ],
)
async def test_bad_control_requests_get_a_clear_4xx(
    running: Running, action: str, body: bytes, status: int, message: str
) -> None:
    url = running.url(f"/api/control/{action}")
    async with running.http.post(url, headers=AUTH, data=body) as response:
        assert response.status == status
        assert message in (await response.json())["error"]
    assert running.source.calls == []


async def test_a_control_the_daemon_refuses_is_409_with_its_reason(running: Running) -> None:
    running.source.refuse_controls = "this box is a standby; skip on the master"
    async with running.http.post(running.url("/api/control/skip"), headers=AUTH) as response:
        assert response.status == 409
        assert (await response.json())["error"] == "this box is a standby; skip on the master"


async def test_wrong_method_is_json_405(running: Running) -> None:
    async with running.http.get(running.url("/api/control/skip")) as response:
        assert response.status == 405
        assert "error" in await response.json()
        assert "POST" in response.headers["Allow"]


# --- binding ---------------------------------------------------------------------------


def test_defaults_bind_to_localhost_with_controls_off() -> None:
    config = StatusConfig()
    assert (config.host, config.port, config.admin_token) == ("127.0.0.1", 8080, "")


async def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            await start_status_server(StatusConfig(port=port), FakeStatusSource())


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8080", 200),
        ("[::1]:8080", 200),
        ("192.168.1.50", 200),
        ("localhost:8080", 200),
        ("venue-box.local", 200),
        (f"{socket.gethostname()}:8080", 200),
        ("attacker.example:8080", 421),  # DNS rebinding: someone else's name pointing at this box
        ("127.0.0.1.attacker.example", 421),
    ],
)
async def test_only_local_host_names_are_served(running: Running, host: str, status: int) -> None:
    async with running.http.get(running.url("/api/status"), headers={"Host": host}) as response:
        assert response.status == status
        if status != 200:
            assert "Host" in (await response.json())["error"]


async def test_configured_host_names_are_served() -> None:
    server = await start_status_server(StatusConfig(port=0, host_names=("Venue-Box.lan",)), FakeStatusSource())
    try:
        async with aiohttp.ClientSession() as http:
            for host, status in (("venue-box.lan:8080", 200), ("other-box.lan", 421)):
                async with http.get(server.url + "/api/status", headers={"Host": host}) as response:
                    assert response.status == status
    finally:
        await server.close()


# --- bounded connections ------------------------------------------------------------------------


async def _connect(server_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server_url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def test_connections_over_the_cap_get_503_and_a_closed_one_frees_its_place() -> None:
    """Idle sockets from anywhere on the LAN cannot take the box's file descriptors: over the cap a newcomer
    gets a 503 at once (not a hang), and the page works again as soon as one goes."""
    server = await start_status_server(StatusConfig(port=0, max_connections=5), FakeStatusSource())
    idle = [await _connect(server.url) for _ in range(5)]
    try:
        reader, writer = await _connect(server.url)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503") and b"too many connections" in answer
        idle.pop()[1].close()
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # the server hears of the close a moment later
                try:
                    async with http.get(server.url + "/api/status") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the page did not answer after a connection closed")
    finally:
        for _, writer in idle:
            writer.close()
        await server.close()


async def test_an_idle_or_half_sent_connection_is_closed_but_a_live_stream_is_not() -> None:
    server = await start_status_server(StatusConfig(port=0, idle_timeout_s=1.0), FakeStatusSource())
    try:
        silent_reader, silent = await _connect(server.url)
        slow_reader, slow = await _connect(server.url)
        slow.write(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n")  # headers never finished
        async with aiohttp.ClientSession() as http, http.get(server.url + "/events") as stream:
            await _next_event(stream.content)
            started = time.monotonic()
            assert await asyncio.wait_for(silent_reader.read(), 5) == b""  # closed by the server
            assert await asyncio.wait_for(slow_reader.read(), 5) == b""
            assert 0.9 <= time.monotonic() - started <= 3.0
            await asyncio.sleep(1.5)  # the live stream, silent from the client's side, stays open
            assert stream.connection is not None and not stream.content.at_eof()
        silent.close()
        slow.close()
    finally:
        await server.close()
