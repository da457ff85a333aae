"""choose_evictions: least recently used first, never a protected key, stop once under the cap."""

from __future__ import annotations

import pytest

from djamms_edge.edge.media.eviction import Resident, choose_evictions

A, B, C = Resident("a", 100, 1.0), Resident("b", 100, 2.0), Resident("c", 100, 3.0)


@pytest.mark.parametrize(
    ("residents", "cap", "protected", "evicted"),
    [
        ([A, B, C], 300, set(), []),  # at the cap: nothing to do
        ([A, B, C], 250, set(), ["a"]),  # the least recently used goes first
        ([C, B, A], 150, set(), ["a", "b"]),  # order of the input does not matter
        ([A, B, C], 250, {"a"}, ["b"]),  # a protected file is skipped even if it is the oldest
        ([A, B, C], 0, {"a", "b", "c"}, []),  # everything protected: over the cap rather than break the queue
        ([A, B, C], 0, {"c"}, ["a", "b"]),
        ([], 0, set(), []),
    ],
    ids=["at-cap", "lru-first", "input-order", "protected-skipped", "all-protected", "all-but-protected", "empty"],
)
def test_choose_evictions(residents: list[Resident], cap: int, protected: set[str], evicted: list[str]) -> None:
    assert choose_evictions(residents, cap, protected) == evicted
