"""``djamms-edge doctor``: real yt-dlp, ffmpeg, libmpv (ao=null) and a real hub on loopback; the sentences
from pure judgements, table-driven."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from djamms_edge.config import load_config
from djamms_edge.edge.config import EdgeConfig, EdgeHubLink
from djamms_edge.edge.doctor import (
    Finding,
    Report,
    examine_hub,
    judge_clock,
    judge_disk,
    judge_js_runtime,
    judge_ytdlp_age,
)
from djamms_edge.edge.media.config import FetchConfig
from djamms_edge.edge.media.ytdlp import ytdlp_environment
from djamms_edge.hub.app import create_app
from djamms_edge.hub.auth import issue_device_token
from tests.hub.conftest import SECRET, hub_config, make_store

PROGRAM = Path(sys.executable).with_name("djamms-edge")
VENUE = "doctor-venue"


@dataclass
class LiveHub:
    url: str

    def token(self, device: str, venue: str = VENUE, secret: str = SECRET) -> str:
        return issue_device_token(secret, venue, device, time.time(), 365 * 86400)


@pytest.fixture
async def live_hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    store = make_store("sqlite", tmp_path)
    server = TestServer(create_app(hub_config(), store), host="127.0.0.1", port=0)
    await server.start_server()
    await store.create_venue(VENUE, VENUE, int(time.time() * 1000))
    try:
        yield LiveHub(str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


def box(tmp_path: Path, hub: LiveHub | None, token: str = "", device: str = "box-b") -> EdgeConfig:
    text = f"""
[edge]
venue_id = "{VENUE}"
device_id = "{device}"
state_dir = "{tmp_path / "state"}"
cache_dir = "{tmp_path / "cache"}"
[edge.hub]
url = "{hub.url if hub else ""}"
device_token = "{token}"
[edge.player]
video = false
ao = "null"
"""
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path).edge


def finding(report: Report, check: str) -> Finding:
    return next(f for f in report.findings if f.check == check)


async def test_a_token_for_another_box_is_said_so_not_hub_unreachable(tmp_path: Path, live_hub: LiveHub) -> None:
    edge = box(tmp_path, live_hub, live_hub.token("box-a"), device="box-b")
    report = Report(await examine_hub(edge))
    wrong = finding(report, "device id")
    assert not wrong.ok and wrong.blocks_play
    assert "the device token is for box 'box-a' but this box is 'box-b'" in wrong.problem
    assert "djamms-hub device-token --venue doctor-venue --device box-b" in wrong.problem
    assert finding(report, "hub").ok  # it answered: reachable, and the token itself is genuine
    assert not report.can_play


async def test_a_token_the_hub_refuses_blocks_play(tmp_path: Path, live_hub: LiveHub) -> None:
    edge = box(tmp_path, live_hub, live_hub.token("box-b", secret="another-hubs-secret-0123456789abcdef"))
    report = Report(await examine_hub(edge))
    hub = finding(report, "hub")
    assert not hub.ok and hub.blocks_play and "refuses this box's device token (401" in hub.problem
    assert finding(report, "clock").ok


async def test_an_unreachable_hub_is_a_warning_the_box_plays_offline(tmp_path: Path, live_hub: LiveHub) -> None:
    edge = box(tmp_path, live_hub, live_hub.token("box-b"))
    edge = replace(edge, hub=EdgeHubLink(url="http://127.0.0.1:9", device_token=edge.hub.device_token))
    report = Report(await examine_hub(edge))
    hub = finding(report, "hub")
    assert not hub.ok and not hub.blocks_play and "does not answer" in hub.problem
    assert report.can_play


async def test_the_command_on_a_healthy_box_exits_0_and_reports_every_check(tmp_path: Path, live_hub: LiveHub) -> None:
    box(tmp_path, live_hub, live_hub.token("box-b"))
    proc = await asyncio.create_subprocess_exec(
        str(PROGRAM), "doctor", "--json", "--config", str(tmp_path / "config.toml"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    result = json.loads(out)
    assert proc.returncode == 0, (result, err)
    assert result["canPlay"] and result["problems"] == []
    checks = {f["check"]: f["detail"] for f in result["findings"]}
    assert set(checks) >= {"JavaScript runtime", "yt-dlp-ejs", "yt-dlp", "ffmpeg", "libmpv", "audio output",
                           "cache space", "device id", "hub", "clock"}
    assert re.match(r"deno \d+\.\d+\.\d+ at ", checks["JavaScript runtime"])
    assert checks["audio output"] == "null opens"
    assert "s from the hub" in checks["clock"]


async def test_the_command_exits_1_when_the_box_cannot_play(tmp_path: Path) -> None:
    edge = box(tmp_path, None)
    config = tmp_path / "config.toml"
    config.write_text(config.read_text().replace('ao = "null"', 'ao = "alsa"\naudio_device = "alsa/no-such-card"'))
    proc = await asyncio.create_subprocess_exec(str(PROGRAM), "doctor", "--config", str(config),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1
    assert "FAIL  audio output" in out.decode() and "the box CANNOT play" in out.decode()
    assert edge.hub.url == ""


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on this machine")
def test_debian_12s_node_is_reported_too_old_by_this_ytdlp() -> None:
    node = shutil.which("node") or "node"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) >= 22:
        pytest.skip(f"node {version} is new enough")
    judged = judge_js_runtime(ytdlp_environment(FetchConfig(js_runtime="node")))
    assert not judged.ok and judged.blocks_play
    assert "needs 22.0.0 or newer" in judged.problem and "deno" in judged.problem


TODAY = dt.date(2026, 11, 29)


@pytest.mark.parametrize(
    ("version", "ok", "words"),
    [("2026.10.26", True, "34 days old"), ("2026.9.1", False, "89 days old and YouTube changes often"),
     ("2026.10.26.232503", True, "34 days"), ("nightly", True, "release date unknown")],
)
def test_ytdlp_age(version: str, ok: bool, words: str) -> None:
    judged = judge_ytdlp_age(version, "/opt/djamms/venv", TODAY)
    assert judged.ok is ok and words in (judged.detail + judged.problem)
    assert ok or "djamms-edge update-ytdlp" in judged.problem


NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("now", "server", "ok", "blocks", "words"),
    [(NOW, NOW + 2, True, False, "-2s from the hub"), (NOW, None, True, False, "not compared"),
     (NOW, NOW - 600, False, False, "600s ahead of the hub's"), (NOW, NOW + 90, False, False, "90s behind"),
     (0.0, None, False, True, "the clock says 1970-01-01")],
)
def test_clock(now: float, server: float | None, ok: bool, blocks: bool, words: str) -> None:
    judged = judge_clock(now, server)
    assert (judged.ok, judged.blocks_play) == (ok, blocks) and words in (judged.detail + judged.problem)


@pytest.mark.parametrize(
    ("free", "writable", "ok", "blocks"),
    [(10**10, True, True, False), (100_000_000, True, False, False), (10**10, False, False, True),
     (None, False, False, True)],
)
def test_cache_space(free: int | None, writable: bool, ok: bool, blocks: bool) -> None:
    judged = judge_disk(Path("/var/cache/djamms-edge"), free, writable, cap=8 * 10**9)
    assert (judged.ok, judged.blocks_play) == (ok, blocks)
    assert ok or judged.problem.endswith(".")


def test_the_status_line_names_the_first_problem_and_counts_the_rest() -> None:
    report = Report((Finding("a", True, "fine"), Finding("b", False, "x", "b is broken: fix b.", blocks_play=True),
                     Finding("c", False, "y", "c is odd: fix c.")))
    assert report.status_line() == "cannot play: b is broken: fix b. (+1 more: djamms-edge doctor)"
    assert report.problems == ["b is broken: fix b.", "c is odd: fix c."]
