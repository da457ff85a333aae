"""``djamms-hub backup`` while a real hub takes paid requests: the copy holds every request acknowledged before
the backup began, it restores as docs/hub-deploy.md says, old backups are pruned, and a failed backup leaves
nothing that looks like one."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import aiohttp

from djamms_edge.hub.backup import backups_in
from tests.hub.served import hub_command, hub_config_file, serving

VENUE = "backed-up"
UNLIMITED = "[hub.limits]\nrequests_per_client = 1000000\nrequests_per_patron = 1000000\n"


def seeded_hub(directory: Path) -> tuple[Path, str]:
    """A hub config on SQLite in ``directory`` with a seeded venue; its staff token."""
    directory.mkdir(parents=True, exist_ok=True)
    config = hub_config_file(directory, UNLIMITED)
    seeded = hub_command("seed-demo", "--config", str(config), "--venue", VENUE)
    assert seeded.returncode == 0, seeded.stderr
    return config, json.loads(seeded.stdout)["staffToken"]


async def pay(http: aiohttp.ClientSession, url: str) -> str:
    payment_id = f"pi-{uuid.uuid4().hex}"
    body = {"song": {"videoId": "dQw4w9WgXcQ", "title": "Kept", "artist": f"artist-{uuid.uuid4().hex[:8]}",
                     "duration": 200}, "paymentId": payment_id, "requesterId": "patron"}
    async with http.post(f"{url}/api/v1/venues/{VENUE}/requests", json=body) as resp:
        assert resp.status == 201, await resp.text()
    return payment_id


async def test_a_backup_taken_while_patrons_pay_restores_every_request_acknowledged_before_it(tmp_path: Path) -> None:
    config, staff = seeded_hub(tmp_path / "live")
    backups = tmp_path / "backups"
    acknowledged: list[tuple[float, str]] = []  # (when the hub answered 201, paymentId)
    async with serving(config) as hub, aiohttp.ClientSession() as http:
        stop = asyncio.Event()

        async def patrons() -> None:
            # A few requests a second, as a bar has: they stay in the write-ahead log (SQLite moves it into
            # hub.db after ~1,000 pages), so a copy of hub.db alone would miss them.
            while not stop.is_set():
                payment_id = await pay(http, hub.url)
                acknowledged.append((time.monotonic(), payment_id))
                await asyncio.sleep(0.02)

        paying = asyncio.create_task(patrons())
        await asyncio.sleep(0.5)
        started = time.monotonic()
        made = await asyncio.to_thread(hub_command, "backup", "--config", str(config), "--dir", str(backups))
        finished = time.monotonic()
        stop.set()
        await paying
    assert made.returncode == 0, made.stderr
    before = {payment_id for at, payment_id in acknowledged if at < started}
    assert len(before) >= 5
    assert any(started <= at <= finished for at, _ in acknowledged)  # the hub kept taking requests meanwhile
    [backup] = backups_in(backups)
    assert str(backup) in made.stdout
    assert not list(backup.parent.glob(backup.name + "-*"))  # one file: no WAL beside it to copy along

    # Restore as docs/hub-deploy.md says: the backup becomes hub.db (nothing of the old WAL beside it).
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    shutil.copyfile(backup, restored_dir / "hub.db")
    restored = hub_config_file(restored_dir, UNLIMITED)
    async with serving(restored) as hub, aiohttp.ClientSession() as http, \
            http.get(f"{hub.url}/api/v1/venues/{VENUE}/requests?limit=1000",
                     headers={"Authorization": f"Bearer {staff}"}) as resp:
        assert resp.status == 200
        kept = {r["paymentId"] for r in (await resp.json())["requests"]}
    assert before <= kept


def test_older_backups_beyond_keep_are_removed_and_a_failed_one_leaves_nothing(tmp_path: Path) -> None:
    config, _ = seeded_hub(tmp_path / "live")
    backups = tmp_path / "backups"
    made = [hub_command("backup", "--config", str(config), "--dir", str(backups), "--keep", "2") for _ in range(3)]
    assert [m.returncode for m in made] == [0, 0, 0], [m.stderr for m in made]
    kept = backups_in(backups)
    assert len(kept) == 2 and all(str(path) in out.stdout for path, out in zip(kept, made[1:], strict=True))
    assert "removed 1 older" in made[2].stdout
    with sqlite3.connect(kept[-1]) as copy:
        assert copy.execute("SELECT count(*) FROM venues WHERE venue_id = ?", (VENUE,)).fetchone() == (1,)

    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    failed = hub_command("backup", "--config", str(config), "--dir", str(blocked / "backups"))
    assert failed.returncode == 1 and "cannot create the backup directory" in failed.stderr
    assert "Traceback" not in failed.stderr

    (tmp_path / "live" / "hub.db").write_bytes(b"this is not a database" * 100)  # a damaged store
    damaged = hub_command("backup", "--config", str(config), "--dir", str(backups), "--keep", "2")
    assert damaged.returncode == 1 and "failed" in damaged.stderr and "Traceback" not in damaged.stderr
    assert backups_in(backups) == kept and not list(backups.glob(".*"))  # no partial file left behind


def test_a_postgresql_store_is_pointed_to_its_own_tools(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[hub]\njwt_secret = "0123456789abcdef0123456789abcdef"\n'
                      '[hub.store]\nurl = "postgresql://hub:secret@db.example/hub"\n')
    refused = hub_command("backup", "--config", str(config), "--dir", str(tmp_path / "backups"))
    assert refused.returncode == 2 and "pg_dump" in refused.stderr
    assert "secret" not in refused.stderr  # the password is not printed
    assert not (tmp_path / "backups").exists()
