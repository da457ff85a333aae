"""A fresh sync database (real SQLite under tmp_path) for the outbox and replica tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from djamms_edge.edge.sync.store import open_sync_db
from djamms_edge.shared.sqlite import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = open_sync_db(tmp_path)
    await database.open()
    yield database
    await database.close()
