"""What every service shares: its runtime (database, broker, relay, consumers, clients, token
verifier) owned by the FastAPI lifespan, and the app factory that wires errors and observability.

A service's ``app.py`` builds a :class:`ServiceRuntime` (or its own subclass holding what the
service adds: a blob store, an index, a cache), registers its hooks, and calls
:func:`create_service_app`. The runtime starts everything in order and, when a step fails, closes
what it had opened before raising: no half-started service is left behind. Stopping closes
everything in reverse order, the service's own shutdown hooks first.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request

from shared.auth import Scope, TokenIssuer, TokenVerifier, load_issuer
from shared.config import SERVICE_NAMES, CoreSettings
from shared.db import Database
from shared.errors import install_error_handlers
from shared.http import service_client
from shared.keyring import KeyRing, http_jwks_fetcher
from shared.limits import install_request_limits
from shared.messaging import (
    BatchEventHandler,
    Batching,
    Broker,
    Envelope,
    EventHandler,
    IdempotentBatchConsumer,
    IdempotentConsumer,
    MessagingTables,
    Outbox,
    OutboxMetrics,
    OutboxRelay,
    OutboxStats,
    RetryPolicy,
    Subscription,
    create_broker,
)
from shared.migrations import upgrade
from shared.observability import Metrics, ReadyCheck, install_operations, instrument
from shared.runtime import AppRuntime, attach_runtime, runtime_of

INTERNAL_TOKEN_SECONDS = 300  # lifetime of a token a service signs for its own internal call

log = logging.getLogger("lienthong.service")

RuntimeT = TypeVar("RuntimeT", bound="ServiceRuntime")
Hook = Callable[[], Awaitable[None]]


class OutboxLagError(Exception):
    """The outbox has events waiting longer than ``outbox.ready_max_lag_seconds``."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class Consumer:
    """A message handler of a service: its queue name, the events it binds, its handler.

    The handler runs in a transaction with the message id recorded as processed (a redelivered
    message changes nothing twice)."""

    name: str
    bindings: tuple[str, ...]
    handler: EventHandler


@dataclass(frozen=True)
class BatchConsumer:
    """A consumer that takes its messages in batches: its handler gets a session and a list of
    envelopes, and handles them in that one transaction.

    Up to ``size`` messages are gathered, for at most ``linger_seconds`` after the first arrived
    (RabbitMQ delivers them with a prefetch of twice the size); the ones processed before are
    skipped with one statement that records the others processed; after the commit every message is
    acknowledged. When the handler fails, each message of the batch is handled alone (the handler
    gets a list of one, in a transaction of its own) with the requeues and dead letters of a
    :class:`Consumer`: a poison message does not hold the others back. On the in-process bus the
    batches are what the outbox relay publishes in one pass."""

    name: str
    bindings: tuple[str, ...]
    handler: BatchEventHandler
    size: int = 64
    linger_seconds: float = 0.02


@dataclass(frozen=True)
class Worker:
    """A work queue of a service: its handler is called outside any transaction (it may call other
    systems), retried per ``retry`` when it raises :class:`~shared.messaging.RetryLater`, and
    ``on_dead`` is awaited before a message goes to the dead-letter queue."""

    name: str
    bindings: tuple[str, ...]
    handler: Callable[[Envelope], Awaitable[None]]
    retry: RetryPolicy
    on_dead: Callable[[Envelope, str], Awaitable[None]] | None = None
    prefetch: int | None = None


@dataclass(frozen=True)
class Listener:
    """A handler every process of a service runs for matching events (cache invalidation)."""

    bindings: tuple[str, ...]
    handler: Callable[[Envelope], Awaitable[None]]


class ServiceRuntime(AppRuntime):
    """Everything a running service owns; built by ``create_app``, started by the lifespan."""

    def __init__(
        self,
        name: str,
        settings: CoreSettings,
        tables: MessagingTables,
        *,
        consumers: Sequence[Consumer | BatchConsumer] = (),
        listeners: Sequence[Listener] = (),
        workers: Sequence[Worker] = (),
        broker: Broker | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        super().__init__(name)
        self.settings = settings
        self.tables = tables
        self.consumers = list(consumers)
        self.listeners = list(listeners)
        self.workers = list(workers)
        self._internal_issuer: TokenIssuer | None = None
        self.broker = broker
        self.transports = transports if transports is not None else {}
        self.relay: OutboxRelay | None = None
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.metrics = Metrics(name)
        self.outbox_metrics = OutboxMetrics(self.metrics.registry, name)
        self._startup_hooks: list[Hook] = []
        self._shutdown_hooks: list[Hook] = []
        self._stack: AsyncExitStack | None = None
        self._starting: AsyncExitStack | None = None

    def on_startup(self, hook: Hook) -> None:
        """Run ``hook`` once the database, broker and clients are up (in the order registered)."""
        self._startup_hooks.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """Run ``hook`` when the service stops, before the clients, relay, broker and database close
        (hooks run in reverse order of registration). Called from a start-up hook right after
        opening what it closes, it also runs when a later start-up step fails."""
        if self._starting is not None:
            self._starting.push_async_callback(hook)
        else:
            self._shutdown_hooks.append(hook)

    def client(self, service: str) -> httpx.AsyncClient:
        """Return the pooled HTTP client to another service."""
        return self.clients[service]

    def load_internal_issuer(self) -> None:
        """Load the key that signs the service's own calls to the others' internal routes (a
        start-up hook of the services that make such calls; the key file must be mounted). The
        file is read again when it changes: after ``lienthong keys rotate`` the service signs with
        the new key, which the verifiers knew before it signed (docs/security.md)."""
        settings = self.settings
        self._internal_issuer = load_issuer(
            settings.private_key_file, settings.auth.issuer, settings.auth.audience, INTERNAL_TOKEN_SECONDS
        )

    def internal_authorization(self) -> str:
        """An ``Authorization`` header for the service's own calls (no agency behind them)."""
        issuer = self._internal_issuer
        if issuer is None:
            raise RuntimeError(f"the {self.name} service is not started: no signing key")
        return f"Bearer {issuer.issue(self.name, None, [Scope.INTERNAL])}"

    async def start(self) -> None:
        """Open the database, broker, consumers, relay and clients, then run the start-up hooks.

        When a step fails, everything opened before it is closed again and the error is raised."""
        async with AsyncExitStack() as stack:
            self.verifier = load_verifier(self.settings)
            url = self.settings.database_url_for(self.name)
            if self.settings.auto_migrate:
                await upgrade(self.name, url, sqlite_synchronous=self.settings.sqlite_synchronous)
            self.database = database = Database(
                url,
                self.name,
                sqlite_synchronous=self.settings.sqlite_synchronous,
                pool_size=self.settings.database_pool_size,
                max_overflow=self.settings.database_max_overflow,
            )
            stack.push_async_callback(database.dispose)
            if self.broker is None:
                broker = create_broker(
                    self.settings.broker_url,
                    self.settings.broker_prefix,
                    store=self.settings.var_dir / f"bus-{self.name}.sqlite3",
                    synchronous=self.settings.sqlite_synchronous,
                )
                stack.push_async_callback(broker.close)
                await broker.start()
                self.broker = broker
            for consumer in self.consumers:
                queue = f"{self.name}.{consumer.name}"
                if isinstance(consumer, BatchConsumer):
                    batched = IdempotentBatchConsumer(database, self.tables, queue, consumer.handler)
                    batching = Batching(batched.handle_batch, consumer.size, consumer.linger_seconds)
                    subscription = Subscription(queue, consumer.bindings, batched, batch=batching)
                else:
                    handler = IdempotentConsumer(database, self.tables, queue, consumer.handler)
                    subscription = Subscription(queue, consumer.bindings, handler)
                await self.broker.subscribe(subscription)
                # stop consuming before the database closes (the broker may outlive the service)
                stack.push_async_callback(self.broker.unsubscribe, queue)
            for listener in self.listeners:
                await self.broker.subscribe_broadcast(listener.bindings, listener.handler)
            for worker in self.workers:
                stack.push_async_callback(self.broker.unsubscribe, f"{self.name}.{worker.name}")
                await self.broker.subscribe(
                    Subscription(
                        f"{self.name}.{worker.name}",
                        worker.bindings,
                        worker.handler,
                        retry=worker.retry,
                        on_dead=worker.on_dead,
                        prefetch=worker.prefetch,
                    )
                )
            self.relay = OutboxRelay(
                database, self.tables, self.broker, self.name, policy=self.settings.outbox, metrics=self.outbox_metrics
            )
            self.relay.start()
            stack.push_async_callback(self.relay.stop)
            for other in SERVICE_NAMES:
                transport = self.transports.get(other)
                base = f"http://{other}" if transport else self.settings.section(other).url
                self.clients[other] = client = service_client(base, self.settings.http, transport=transport)
                stack.push_async_callback(client.aclose)
            stack.callback(self.clients.clear)
            for hook in self._shutdown_hooks:
                stack.push_async_callback(hook)
            self._starting = stack
            try:
                for startup in self._startup_hooks:
                    await startup()
            finally:
                self._starting = None
            self._stack = stack.pop_all()

    async def stop(self) -> None:
        """Close everything :meth:`start` opened, in reverse order."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

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
        self.outbox_metrics.observe(stats)
        return stats

    async def refresh_metrics(self) -> None:
        """Bring the gauges read from the database and the broker up to date (called on each scrape)."""
        if self.database is not None:
            await self.outbox_stats()
        if self.broker is not None:
            queues = [f"{self.name}.{c.name}" for c in self.consumers] + [f"{self.name}.{w.name}" for w in self.workers]
            try:
                depths = await self.broker.queue_depths(queues)
            except Exception as exc:  # the broker away: the gauges keep their last values, broker_up says why
                log.debug("%s: queue depths unavailable: %s", self.name, exc)
                depths = {}
            for queue, (waiting, dead) in depths.items():
                self.metrics.consumer_lag.labels(self.name, queue).set(waiting)
                self.metrics.dead_letters.labels(self.name, queue).set(dead)


def load_verifier(settings: CoreSettings, *, remote: bool = True) -> TokenVerifier:
    """The token verifier of a process: the key ring read from the public key file and the ring
    file next to it, and (``remote``, the services) the gateway's JWKS when ``LIENTHONG_AUTH__JWKS_URL``
    is set. Processes of one deployment share a ring (embedded mode: one read of the files per
    change, not one per service). Fails start-up with a clear message when the public key is missing."""
    return TokenVerifier(None, settings.auth.issuer, settings.auth.audience, ring=shared_key_ring(settings, remote))


_rings: weakref.WeakValueDictionary[tuple[Path, Path, str | None], KeyRing] = weakref.WeakValueDictionary()


def shared_key_ring(settings: CoreSettings, remote: bool = True) -> KeyRing:
    """The key ring of these settings, shared by the verifiers of one process."""
    url = settings.auth.jwks_url if remote else None
    identity = (settings.public_key_file.resolve(), settings.keyring_file.resolve(), url)
    ring = _rings.get(identity)
    if ring is None:
        ring = _rings[identity] = KeyRing.from_files(
            settings.public_key_file,
            settings.keyring_file,
            fetch=http_jwks_fetcher(url) if url else None,
            reload_seconds=settings.auth.key_reload_seconds,
            jwks_max_age=settings.auth.jwks_max_age_seconds,
        )
    return ring


def create_service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    **fastapi_kwargs: Any,
) -> FastAPI:
    """Build a service's FastAPI app: lifespan owning the runtime, problem+json, /health /ready /metrics."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            log.info("%s started", runtime.name)
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan, **fastapi_kwargs)
    attach_runtime(app, runtime)
    install_error_handlers(app)
    install_request_limits(app, runtime.settings)
    instrument(app, runtime.metrics)
    install_operations(app, runtime.name, runtime.ready_checks, runtime.metrics, refresh=runtime.refresh_metrics)
    for router in routers:
        app.include_router(router)
    return app


async def service_runtime(request: Request) -> ServiceRuntime:
    """The runtime of the service serving the request."""
    return runtime_of(request, ServiceRuntime)


RuntimeDep = Annotated[ServiceRuntime, Depends(service_runtime)]
