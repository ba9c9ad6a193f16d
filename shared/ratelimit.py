"""Slowing down whoever guesses credentials, not everyone: failed authentications counted per key
(a client id, a source address) in a sliding window, in memory (one process; each gateway worker
counts its own).

An attempt is counted when it starts (so a burst sent in parallel is counted before any of it is
checked) and forgiven when it succeeds. Past the threshold a key is refused until its oldest
counted failure leaves the window: the caller answers 429 with ``Retry-After`` without checking
the secret at all.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Window:
    stamps: deque[float] = field(default_factory=deque)


class FailureWindow:
    """Failures of each key within ``window_seconds``; at most ``limit`` of them are allowed."""

    def __init__(
        self, limit: int, window_seconds: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self.max_keys = max_keys
        self._keys: dict[str, _Window] = {}

    def _current(self, key: str, now: float) -> _Window:
        entry = self._keys.get(key)
        if entry is None:
            if len(self._keys) >= self.max_keys:
                self._prune(now)
            entry = self._keys[key] = _Window()
        while entry.stamps and entry.stamps[0] <= now - self.window:
            entry.stamps.popleft()
        return entry

    def _prune(self, now: float) -> None:
        for key in [k for k, w in self._keys.items() if not w.stamps or w.stamps[-1] <= now - self.window]:
            del self._keys[key]
        if len(self._keys) >= self.max_keys:  # still full: forget the oldest half rather than grow
            for key in list(self._keys)[: self.max_keys // 2]:
                del self._keys[key]

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None when it may try now."""
        now = self.clock()
        entry = self._current(key, now)
        if len(entry.stamps) < self.limit:
            return None
        return max(entry.stamps[0] + self.window - now, 0.001)

    def attempt(self, key: str) -> float:
        """Count an attempt of ``key`` as a failure until :meth:`forgive`; return its stamp."""
        now = self.clock()
        self._current(key, now).stamps.append(now)
        return now

    def forgive(self, key: str, stamp: float) -> None:
        """An attempt succeeded: it no longer counts."""
        entry = self._keys.get(key)
        if entry is not None:
            with contextlib.suppress(ValueError):
                entry.stamps.remove(stamp)


class AuthThrottle:
    """Failed client authentication, per client id and per source address."""

    def __init__(self, per_client: int, per_address: int, window_seconds: float) -> None:
        self.clients = FailureWindow(per_client, window_seconds)
        self.addresses = FailureWindow(per_address, window_seconds)

    def refused(self, client_id: str, address: str) -> tuple[str, int] | None:
        """``(what, seconds)`` when this client id or address must wait, else None."""
        for what, window, key in (("client", self.clients, client_id), ("address", self.addresses, address)):
            wait = window.retry_after(key)
            if wait is not None:
                return what, max(1, math.ceil(wait))
        return None

    def attempt(self, client_id: str, address: str) -> Callable[[], None]:
        """Count an attempt; call the returned function when it succeeded."""
        client_stamp = self.clients.attempt(client_id)
        address_stamp = self.addresses.attempt(address)

        def succeeded() -> None:
            self.clients.forgive(client_id, client_stamp)
            self.addresses.forgive(address, address_stamp)

        return succeeded
