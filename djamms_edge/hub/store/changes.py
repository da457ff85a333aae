"""How a store tells this hub process that a venue changed: feed waiters, the lease table and rule caches.

Both stores call ``_announce_change`` after a venue's write commits (PostgreSQL also when another instance's
NOTIFY arrives) and ``_rules_changed`` when a venue's rules or price changed; ``_announce_everything`` when
what changed is unknown (PostgreSQL's change listener reconnected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

ChangeListener = Callable[[str | None], None]  # a venue id, or None: any venue may have changed


class ChangeNews:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._change_listeners: list[ChangeListener] = []
        self._rules_listeners: list[ChangeListener] = []

    def change_event(self, venue_id: str) -> asyncio.Event:
        event = self._events.get(venue_id)
        if event is None:
            event = self._events[venue_id] = asyncio.Event()
        return event

    def on_change(self, listener: ChangeListener) -> None:
        self._change_listeners.append(listener)

    def on_rules_change(self, listener: ChangeListener) -> None:
        self._rules_listeners.append(listener)

    def _rules_changed(self, venue_id: str) -> None:
        for listener in self._rules_listeners:
            listener(venue_id)

    def _announce_change(self, venue_id: str) -> None:
        for listener in self._change_listeners:
            listener(venue_id)
        event = self._events.pop(venue_id, None)
        if event is not None:
            event.set()

    def _announce_everything(self) -> None:
        for listener in (*self._change_listeners, *self._rules_listeners):
            listener(None)
        events, self._events = self._events, {}
        for event in events.values():
            event.set()
