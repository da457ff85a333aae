"""``djamms-hub backup``: copy the hub's SQLite store while it serves (``hub.backup``); run nightly by
``djamms-hub-backup.timer``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from djamms_edge.hub.backup import BackupFailed, backup_sqlite
from djamms_edge.hub.store import redacted_url, sqlite_path
from djamms_edge.shared.cli import add_config_option, load_or_exit

DEFAULT_KEEP = 7


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = sub.add_parser("backup", help="copy the hub's SQLite store, consistently, while the hub serves")
    add_config_option(backup)
    backup.add_argument("--dir", type=Path, required=True, help="directory the backups go to (created if missing)")
    backup.add_argument("--keep", type=int, default=DEFAULT_KEEP,
                        help=f"how many backups to keep there, newest first (default {DEFAULT_KEEP})")


def run(args: argparse.Namespace) -> int:
    url = load_or_exit(args.config).hub.store.url
    database = sqlite_path(url)
    if database is None:
        print(f"djamms-hub backup: the store is {redacted_url(url)}, not SQLite: back up PostgreSQL with its own "
              "tools (pg_dump, or its continuous archiving; docs/hub-postgres.md)", file=sys.stderr)
        return 2
    try:
        made = backup_sqlite(database, args.dir, args.keep, datetime.now(UTC))
    except BackupFailed as exc:
        print(f"djamms-hub backup: {exc}", file=sys.stderr)
        return 1
    print(f"{made.path} ({made.size} bytes)" + (f"; removed {len(made.removed)} older" if made.removed else ""))
    return 0
