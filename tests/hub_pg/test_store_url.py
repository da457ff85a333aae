"""Choosing the store from hub.store.url, and logging that URL without its password."""

from __future__ import annotations

import pytest

from djamms_edge.hub.store import UnsupportedStoreUrl, redacted_url, store_from_url
from djamms_edge.hub.store.postgres import PostgresStore
from djamms_edge.hub.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("postgresql://hub@db.example/djamms", PostgresStore),
        ("postgres://hub@db.example/djamms", PostgresStore),
        ("sqlite:///var/lib/djamms/hub.db", SqliteStore),
    ],
)
def test_the_url_scheme_picks_the_backend(url: str, kind: type) -> None:
    assert isinstance(store_from_url(url, retain_changes=10), kind)


def test_an_unknown_scheme_names_both_choices() -> None:
    with pytest.raises(UnsupportedStoreUrl, match="postgresql://"):
        store_from_url("mysql://hub@db/djamms", retain_changes=10)


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("postgresql://hub:s3cret@db.example:5432/djamms", "postgresql://hub:***@db.example:5432/djamms"),
        ("postgresql://hub@db.example/djamms?password=s3cret&sslmode=require", "postgresql://hub@db.example/djamms"),
        ("postgresql://:s3cret@db.example/djamms", "postgresql://:***@db.example/djamms"),
        ("postgresql://hub@db.example/djamms", "postgresql://hub@db.example/djamms"),
        ("sqlite:///var/lib/djamms/hub.db", "sqlite:///var/lib/djamms/hub.db"),
    ],
)
def test_store_urls_are_logged_without_passwords(url: str, logged: str) -> None:
    assert redacted_url(url) == logged
    assert "s3cret" not in redacted_url(url)
