"""A small in-process cache with a time-to-live, emptied by events (see ``ServiceRuntime.listeners``).

Answers from another service are cached for ``ttl`` seconds at most; the events that change them
(``client.revoked.v1``, ``agency.status_changed.v1`` …) empty the cache at once, so a change takes
effect within the event's delivery time, and within ``ttl`` even if an event is lost.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_seconds: float, max_items: int = 10000) -> None:
        self.ttl = ttl_seconds
        self.max_items = max_items
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._items.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        self._items.move_to_end(key)
        return entry[1]

    def set(self, key: K, value: V) -> None:
        self._items[key] = (time.monotonic() + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def invalidate(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
