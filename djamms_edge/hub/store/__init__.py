"""Hub storage: the interface (``base``) and its backends, chosen by ``hub.store.url``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from djamms_edge.hub.store.base import HubStore


class UnsupportedStoreUrl(ValueError):
    pass


def sqlite_path(url: str) -> Path | None:
    """``sqlite:///abs/path`` → /abs/path; ``sqlite:rel/path`` → rel/path; anything else → None."""
    if url.startswith("sqlite:///"):
        return Path("/" + url.removeprefix("sqlite:///"))
    if url.startswith("sqlite:") and not url.startswith("sqlite://"):
        return Path(url.removeprefix("sqlite:"))
    return None


def redacted_url(url: str) -> str:
    """``url`` fit for logs: a password in it (or in its query) is never printed."""
    parts = urlsplit(url)
    if parts.password is None and not parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    return f"{parts.scheme}://{netloc}{parts.path}"  # the query may hold password=…


def store_from_url(url: str, *, retain_changes: int) -> HubStore:
    """The store backend named by ``url`` (not yet opened)."""
    path = sqlite_path(url)
    if path is not None and path.name:
        from djamms_edge.hub.store.sqlite import SqliteStore

        return SqliteStore(path, retain_changes=retain_changes)
    if url.startswith(("postgresql://", "postgres://")):
        from djamms_edge.hub.store.postgres import PostgresStore

        return PostgresStore(url, retain_changes=retain_changes)
    raise UnsupportedStoreUrl(
        f"hub.store.url: unsupported store URL {url!r} (expected sqlite:///ABSOLUTE/PATH or postgresql://…)"
    )
