"""What every service shares: its runtime (database, broker, relay, consumers, clients, token
verifier) owned by the FastAPI lifespan, and the app factory that wires errors and observability.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request

from shared.auth import TokenVerifier
from shared.config import Settings
from shared.db import Database
from shared.errors import install_error_handlers
from shared.http import service_client
from shared.messaging import (
    Broker,
    Envelope,
    EventHandler,
    IdempotentConsumer,
    MessagingTables,
    Outbox,
    OutboxMetrics,
    OutboxRelay,
    OutboxStats,
    Subscription,
    create_broker,
)
from shared.migrations import upgrade
from shared.observability import Metrics, ReadyCheck, instrument, observability_router

log = logging.getLogger("lienthong.service")


class OutboxLagError(Exception):
    """The outbox has events waiting longer than ``outbox.ready_max_lag_seconds``."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class Consumer:
    """A message handler of a service: its queue name, the events it binds, its handler."""

    name: str
    bindings: tuple[str, ...]
    handler: EventHandler


@dataclass(frozen=True)
class Listener:
    """A handler every process of a service runs for matching events (cache invalidation)."""

    bindings: tuple[str, ...]
    handler: Callable[[Envelope], Awaitable[None]]


@dataclass
class ServiceRuntime:
    """Everything a running service owns; built in the lifespan, never at import time."""

    name: str
    settings: Settings
    tables: MessagingTables
    consumers: Sequence[Consumer] = ()
    listeners: Sequence[Listener] = ()
    broker: Broker | None = None
    transports: dict[str, httpx.AsyncBaseTransport] = field(default_factory=dict)
    database: Database | None = None
    relay: OutboxRelay | None = None
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    metrics: Metrics | None = None
    outbox_metrics: OutboxMetrics | None = None
    _owns_broker: bool = False

    @property
    def db(self) -> Database:
        if self.database is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.database

    def client(self, service: str) -> httpx.AsyncClient:
        """Return the pooled HTTP client to another service."""
        return self.clients[service]

    async def start(self) -> None:
        url = self.settings.database_url_for(self.name)
        if self.settings.auto_migrate:
            await upgrade(self.name, url)
        self.database = Database(url, self.name)
        if self.broker is None:
            self.broker = create_broker(self.settings.broker_url, self.settings.broker_prefix)
            self._owns_broker = True
            await self.broker.start()
        for consumer in self.consumers:
            handler = IdempotentConsumer(self.database, self.tables, f"{self.name}.{consumer.name}", consumer.handler)
            await self.broker.subscribe(Subscription(f"{self.name}.{consumer.name}", consumer.bindings, handler))
        for listener in self.listeners:
            await self.broker.subscribe_broadcast(listener.bindings, listener.handler)
        self.relay = OutboxRelay(
            self.database,
            self.tables,
            self.broker,
            self.name,
            policy=self.settings.outbox,
            metrics=self.outbox_metrics,
        )
        self.relay.start()
        timeout = self.settings.gateway.service_timeout_seconds
        for other in ("registry", "exchange", "signature", "archive"):
            transport = self.transports.get(other)
            base = f"http://{other}" if transport else self.settings.section(other).url
            self.clients[other] = service_client(base, transport=transport, timeout=timeout)

    async def stop(self) -> None:
        if self.relay is not None:
            await self.relay.stop()
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()
        if self.broker is not None and self._owns_broker:
            await self.broker.close()
        if self.database is not None:
            await self.database.dispose()

    def ready_checks(self) -> dict[str, ReadyCheck]:
        checks: dict[str, ReadyCheck] = {"database": self._ping_database}
        if self.broker is not None:
            checks["broker"] = self._ping_broker
        if self.database is not None:
            checks["outbox"] = self._outbox_lag
        return checks

    async def _ping_database(self) -> None:
        await self.db.ping()

    async def _ping_broker(self) -> None:
        if self.broker is None:
            raise RuntimeError(f"{self.name} is not started")
        await self.broker.ping()

    async def _outbox_lag(self) -> dict[str, Any]:
        """Fail when the oldest unpublished event is older than the configured lag."""
        stats = await self.outbox_stats()
        limit = self.settings.outbox.ready_max_lag_seconds
        details: dict[str, Any] = {
            "pending": stats.pending,
            "oldest_pending_seconds": round(stats.oldest_age_seconds, 1),
            "stuck": stats.stuck,
        }
        if self.relay is not None and self.relay.last_error and stats.pending:
            details["last_error"] = self.relay.last_error
        if stats.oldest_age_seconds > limit:
            raise OutboxLagError(
                f"{stats.pending} events unpublished, the oldest for {stats.oldest_age_seconds:.0f} s "
                f"(limit {limit:g} s); see `lienthong outbox list`",
                details,
            )
        return details

    async def outbox_stats(self) -> OutboxStats:
        stats = await Outbox(self.db, self.tables).stats(self.settings.outbox.stuck_after_attempts)
        if self.outbox_metrics is not None:
            self.outbox_metrics.observe(stats)
        return stats

    async def refresh_metrics(self) -> None:
        """Bring the gauges read from the database up to date (called on each scrape)."""
        if self.database is not None:
            await self.outbox_stats()


def load_verifier(settings: Settings) -> TokenVerifier:
    """Load the gateway's public key; fails start-up with a clear message when it is missing."""
    path = settings.public_key_file
    if not path.exists():
        raise RuntimeError(
            f"JWT public key {path} not found: run `lienthong keys generate` or set LIENTHONG_AUTH__PUBLIC_KEY_FILE"
        )
    return TokenVerifier(path.read_bytes(), settings.auth.issuer, settings.auth.audience)


def create_service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    on_start: Callable[[ServiceRuntime], Awaitable[None]] | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """Build a service's FastAPI app: lifespan owning the runtime, problem+json, /health /ready /metrics."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.token_verifier = load_verifier(runtime.settings)
        await runtime.start()
        app.state.database = runtime.database
        try:
            if on_start is not None:
                await on_start(runtime)
            log.info("%s started", runtime.name)
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan, **fastapi_kwargs)
    app.state.runtime = runtime
    metrics = runtime.metrics = Metrics(runtime.name)
    runtime.outbox_metrics = OutboxMetrics(metrics.registry, runtime.name)
    install_error_handlers(app)
    instrument(app, metrics)
    app.include_router(
        observability_router(runtime.name, runtime.ready_checks, metrics, refresh=runtime.refresh_metrics)
    )
    for router in routers:
        app.include_router(router)
    return app


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(_runtime)]
