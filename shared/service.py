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
    OutboxRelay,
    Subscription,
    create_broker,
)
from shared.migrations import upgrade
from shared.observability import Metrics, instrument, observability_router

log = logging.getLogger("lienthong.service")


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
            self.database, self.tables, self.broker, self.name, poll_seconds=self.settings.relay_poll_seconds
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

    def ready_checks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        checks: dict[str, Callable[[], Awaitable[None]]] = {"database": self.db.ping}
        if self.broker is not None:
            checks["broker"] = self.broker.ping
        return checks


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
    metrics = Metrics(runtime.name)
    install_error_handlers(app)
    instrument(app, metrics)
    app.include_router(observability_router(runtime.name, runtime.ready_checks, metrics))
    for router in routers:
        app.include_router(router)
    return app


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(_runtime)]
