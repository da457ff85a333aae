"""Which cached files to delete to get under the byte cap (pure)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resident:
    key: str
    size: int
    last_used: float  # last played, or fetched if never played


def choose_evictions(residents: Sequence[Resident], max_bytes: int, protected: Collection[str]) -> list[str]:
    """Least recently used first, never a protected key (the upcoming queue, what is playing).

    If the protected files alone exceed the cap, they all stay: an over-full cache is better
    than a queue that cannot play."""
    total = sum(r.size for r in residents)
    evict: list[str] = []
    for resident in sorted(residents, key=lambda r: (r.last_used, r.key)):
        if total <= max_bytes:
            break
        if resident.key in protected:
            continue
        evict.append(resident.key)
        total -= resident.size
    return evict
