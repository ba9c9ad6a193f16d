"""Rate limits at the gateway: a token bucket per client and route class, in this process's memory.

The client is the access token's ``sub`` once the proxy's credential check has verified it (the
token is verified once per request, by that check); a request without a valid token is counted
against its source address. The token endpoint is counted per source address (its callers have
no token yet). Every answer of a limited route carries ``RateLimit-Limit`` (the bucket's size),
``RateLimit-Remaining`` (requests left now) and ``RateLimit-Reset`` (seconds until the bucket is
full again); a refused request is ``429 rate_limited`` with ``Retry-After`` (seconds until one
request is allowed).

Each gateway process counts on its own: with N workers or replicas a client may make up to N times
the limit, as the connections spread (docs/security.md, "Limits and resilience").
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.circuit import STATE_VALUES, Circuit
from gateway.config import GatewaySection, RateBucket, RateLimitSection
from gateway.errors import RateLimitedError
from gateway.routes import service_for
from shared.config import SERVICE_NAMES

if TYPE_CHECKING:
    from shared.observability import Metrics

ROUTE_CLASSES = ("token", "send", "write", "read", "search", "admin")
TOKEN_PATH = "/v1/auth/token"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_REGISTRY_READS_BY_POST = frozenset({"/v1/agencies/lookup", "/v1/agencies/resolve"})
_ADMIN_PREFIXES = ("/v1/clients", "/v1/transfers", "/v1/users")


def route_class(method: str, path: str) -> str:
    """The route class of a public request (docs/security.md lists them)."""
    if path == TOKEN_PATH:
        return "token"
    if path == "/v1/documents" and method == "POST":
        return "send"
    if path == "/v1/archive/search":
        return "search"
    if path.startswith(_ADMIN_PREFIXES) or (path.startswith("/v1/agencies/") and path.endswith("/clients")):
        return "admin"  # API clients and their secrets, console users, failed transfers: any method
    if method in _READ_METHODS or path in _REGISTRY_READS_BY_POST:
        return "read"
    if service_for(path) == "registry" or path.startswith("/v1/signatures/trust-store"):
        return "admin"  # the directory and the trust store change
    return "write"  # status reports, recalls, signature verification, other POSTs


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until one request is allowed (0 when allowed)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset).encode()),
        ]


class RateLimiter:
    """Token buckets keyed by (route class, client); classes without a bucket are not limited."""

    def __init__(
        self,
        buckets: dict[str, RateBucket],
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buckets = buckets
        self.max_keys = max_keys
        self.clock = clock
        self._state: dict[tuple[str, str], list[float]] = {}  # [tokens, when]

    @classmethod
    def from_settings(cls, section: RateLimitSection) -> RateLimiter:
        if not section.enabled:
            return cls({})
        return cls({name: getattr(section, name) for name in ROUTE_CLASSES}, max_keys=section.max_keys)

    def take(self, route_class: str, client: str) -> Decision | None:
        """Take one request from the client's bucket of this class; None when the class is not limited."""
        bucket = self.buckets.get(route_class)
        if bucket is None:
            return None
        rate, burst = bucket.per_second, bucket.burst
        now = self.clock()
        key = (route_class, client)
        state = self._state.get(key)
        if state is None:
            if len(self._state) >= self.max_keys:
                self._prune(now)
            state = self._state[key] = [float(burst), now]
            tokens = float(burst)
        else:
            tokens = min(float(burst), state[0] + (now - state[1]) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        state[0], state[1] = tokens, now
        return Decision(
            allowed=allowed,
            limit=burst,
            remaining=int(tokens),
            reset=math.ceil((burst - tokens) / rate),
            retry_after=0 if allowed else max(1, math.ceil((1.0 - tokens) / rate)),
        )

    def _prune(self, now: float) -> None:
        """Forget the buckets that are full again (idle long enough), then, if still too many, the
        oldest half."""
        for key in [k for k, (tokens, when) in self._state.items() if self._full(k[0], tokens, when, now)]:
            del self._state[key]
        if len(self._state) >= self.max_keys:
            for key in list(self._state)[: self.max_keys // 2]:
                del self._state[key]

    def _full(self, route_class: str, tokens: float, when: float, now: float) -> bool:
        bucket = self.buckets.get(route_class)
        return bucket is None or tokens + (now - when) * bucket.per_second >= bucket.burst

    def __len__(self) -> int:
        return len(self._state)


def refusal(decision: Decision, route_class: str) -> RateLimitedError:
    return RateLimitedError(
        f"Too many {route_class} requests from this client; try again in {decision.retry_after} s",
        retry_after=decision.retry_after,
        route_class=route_class,
    )


class GatewayLimits:
    """What the gateway applies to every request: the rate limiter, each service's circuit and
    the route classes' timeouts; made by ``create_app``, found by the proxy with :func:`limits_of`."""

    def __init__(self, settings: GatewaySection, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.limiter = RateLimiter.from_settings(settings.rate_limits)
        self.circuits = {
            name: Circuit(
                name,
                failures=settings.circuit_failures,
                cooldown=settings.circuit_cooldown_seconds,
                on_change=self._circuit_changed,
                on_failure=self.upstream_failed,
            )
            for name in SERVICE_NAMES
        }
        timeouts = settings.timeouts
        self.timeouts = {
            name: getattr(timeouts, name, None) or settings.service_timeout_seconds for name in ROUTE_CLASSES
        }
        if metrics is not None:
            for name in SERVICE_NAMES:
                metrics.circuit_state.labels(metrics.service, name).set(0)

    def _circuit_changed(self, service: str, state: str) -> None:
        if self.metrics is not None:
            self.metrics.circuit_state.labels(self.metrics.service, service).set(STATE_VALUES[state])

    def take(self, route_class: str, client: str) -> Decision | None:
        """Count a request; raise ``RateLimitedError`` when the client has none left in this class."""
        decision = self.limiter.take(route_class, client)
        if decision is not None and not decision.allowed and self.metrics is not None:
            self.metrics.rate_limited.labels(self.metrics.service, route_class).inc()
        return decision

    def upstream_failed(self, service: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream_failures.labels(self.metrics.service, service, reason).inc()


_limits: weakref.WeakKeyDictionary[object, GatewayLimits] = weakref.WeakKeyDictionary()


def attach_limits(runtime: object, limits: GatewayLimits) -> None:
    _limits[runtime] = limits


def limits_of(runtime: object) -> GatewayLimits | None:
    """The limits of a gateway runtime (None for a gateway built without them)."""
    return _limits.get(runtime)


def client_key(principal_client_id: str | None, address: str | None) -> str:
    """The key a request is counted under: its token's client, else its source address."""
    if principal_client_id is not None:
        return "client:" + principal_client_id
    return "address:" + (address or "unknown")
