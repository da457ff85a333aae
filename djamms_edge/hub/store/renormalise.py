"""Bringing stored identities to today's normal forms (``hub.identity``): what to change, as plain data.

Both stores run this once, in a migration (SQLite m008, PostgreSQL 10): stored emails re-normalised, and
artist keys (paid requests' ``artist_key``, ban-list marks' ``value_key``) re-folded, so lookalike artists
already in the window or on a ban list count as one from the upgrade on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from djamms_edge.hub.identity import artist_key, email_updates, normalize_email

log = logging.getLogger(__name__)


@dataclass
class Renormalisation:
    users: list[tuple[str, str]] = field(default_factory=list)  # (user_id, email)
    links: list[tuple[str, str]] = field(default_factory=list)  # (token_hash, email)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (request_id, artist_key)
    marks: list[tuple[str, str]] = field(default_factory=list)  # (mark_id, value_key)
    drop_marks: list[str] = field(default_factory=list)  # a second mark of an artist that now folds to one


def plan(users: Iterable[tuple[str, str]], links: Iterable[tuple[str, str]],
         requests: Iterable[tuple[str, str, str]], marks: Iterable[tuple[str, str, str, str]]) -> Renormalisation:
    """``requests``: (request_id, artist, artist_key); ``marks``: ban_artist (mark_id, venue_id, value, value_key)."""
    out = Renormalisation()
    out.users, problems = email_updates(users)
    for problem in problems:
        log.warning("re-normalising user emails: %s", problem)
    for token_hash, email in links:
        try:
            normal = normalize_email(email)
        except ValueError:
            continue  # it could never have been mailed; it expires on its own
        if normal != email:
            out.links.append((token_hash, normal))
    out.requests = [(rid, key) for rid, artist, old in requests if (key := artist_key(artist)) != old]
    seen: set[tuple[str, str]] = set()
    for mark_id, venue_id, value, old in sorted(marks):
        key = artist_key(value)
        if (venue_id, key) in seen:
            out.drop_marks.append(mark_id)
            continue
        seen.add((venue_id, key))
        if key != old:
            out.marks.append((mark_id, key))
    return out
