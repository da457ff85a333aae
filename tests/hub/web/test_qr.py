"""The venue's QR code: the CLI writes SVG and PNG of the patron page's address; the hub serves the same code
and a printable poster (in chromium)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from djamms_edge.hub.store.sqlite import SqliteStore
from tests.browser import PageWatch, check_layout, chromium_page, save_screenshot
from tests.hub.conftest import SECRET, Hub

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def backend() -> str:
    return "sqlite"


def _hub_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\njwt_secret = "{SECRET}"\npublic_url = "https://bar.example.com"\n'
                      f'[hub.store]\nurl = "sqlite:///{tmp_path / "cli.db"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")}
    return subprocess.run([sys.executable, "-m", "djamms_edge.hub.cli", "venue", "qr", "--config", str(config),
                           *args], capture_output=True, timeout=60, env=env, check=False)


async def test_the_cli_writes_the_patron_pages_qr_code(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "cli.db")
    await store.open()
    await store.create_venue("bar-7", "Bar Seven", 0)
    await store.close()
    svg = _hub_cli(tmp_path, "bar-7")
    assert svg.returncode == 0, svg.stderr
    assert svg.stdout.startswith(b"<svg") and b"<title>https://bar.example.com/v/bar-7</title>" in svg.stdout
    assert b"https://bar.example.com/v/bar-7" in svg.stderr
    out = tmp_path / "bar.png"
    png = _hub_cli(tmp_path, "bar-7", "--format", "png", "--output", str(out))
    assert png.returncode == 0, png.stderr
    assert out.read_bytes().startswith(PNG_MAGIC)
    missing = _hub_cli(tmp_path, "nowhere")
    assert missing.returncode == 1 and b"no venue 'nowhere'" in missing.stderr
    assert _hub_cli(tmp_path, "bad id!").returncode == 2


async def test_the_hub_serves_the_code_and_a_printable_poster(hub: Hub) -> None:
    await hub.store.create_venue("poster-bar", "The Poster Bar", 0)
    for kind, content_type in (("svg", "image/svg+xml"), ("png", "image/png")):
        async with hub.http.get(f"{hub.url}/v/poster-bar/qr.{kind}") as resp:
            assert resp.status == 200 and resp.content_type == content_type
            body = await resp.read()
            assert body.startswith(PNG_MAGIC if kind == "png" else b"<svg")
    async with hub.http.get(f"{hub.url}/v/nowhere/qr.svg") as resp:
        assert resp.status == 404
    async with chromium_page() as page:
        watch = PageWatch(page, hub.url)
        await page.goto(f"{hub.url}/v/poster-bar/poster")
        await check_layout(page)
        qr = page.get_by_role("img", name=f"QR code for {hub.config.public_url}/v/poster-bar")
        assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
        await save_screenshot(page, "poster-phone.png")
        await page.emulate_media(media="print")
        await page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        await save_screenshot(page, "poster-print-a4.png")
        watch.assert_clean()
