"""The gateway: OAuth2 token endpoint, one OpenAPI document, the proxy to every service. No database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from gateway.auth import router as auth_router
from gateway.guard import EVENTS as GUARD_EVENTS
from gateway.guard import CredentialGuard
from gateway.openapi import router as openapi_router
from gateway.proxy import router as proxy_router
from shared.auth import TokenIssuer
from shared.config import SERVICE_NAMES, Settings
from shared.errors import install_error_handlers
from shared.http import service_client
from shared.messaging import Broker, create_broker
from shared.observability import Metrics, ReadyCheck, instrument, observability_router, ready_exclusions
from shared.service import load_verifier


def load_issuer(settings: Settings) -> TokenIssuer:
    """Load the JWT signing key; fails start-up with a clear message when it is missing."""
    path = settings.private_key_file
    if not path.exists():
        raise RuntimeError(
            f"JWT private key {path} not found: run `lienthong keys generate` or set LIENTHONG_AUTH__PRIVATE_KEY_FILE"
        )
    return TokenIssuer(
        path.read_bytes(), settings.auth.issuer, settings.auth.audience, settings.gateway.token_ttl_seconds
    )


def create_app(
    settings: Settings | None = None,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    broker: Broker | None = None,
) -> FastAPI:
    """Build the gateway; with ``transports`` (embedded mode) it reaches the services in-process
    and shares their in-process ``broker``."""
    settings = settings or Settings()
    transports = transports if transports is not None else {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.token_issuer = load_issuer(settings)
        app.state.token_verifier = load_verifier(settings)
        timeout = settings.gateway.service_timeout_seconds
        app.state.clients = {
            name: service_client(
                f"http://{name}" if name in transports else settings.section(name).url,
                transport=transports.get(name),
                timeout=timeout,
            )
            for name in SERVICE_NAMES
        }
        guard = CredentialGuard(app.state.token_verifier, app.state.token_issuer, app.state.clients["registry"])
        app.state.guard = guard
        own_broker = broker is None
        app.state.broker = broker or create_broker(settings.broker_url, settings.broker_prefix)
        try:
            if own_broker:
                await app.state.broker.start()
            await app.state.broker.subscribe_broadcast(GUARD_EVENTS, guard.on_event)
            yield
        finally:
            if own_broker:
                await app.state.broker.close()
            for client in app.state.clients.values():
                await client.aclose()

    app = FastAPI(
        title="LienThong API",
        description=(
            "Inter-agency electronic document exchange. Get a token with OAuth2 client credentials at "
            "`POST /v1/auth/token`, then call the API with `Authorization: Bearer <token>`."
        ),
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    metrics = Metrics("gateway")
    install_error_handlers(app)
    instrument(app, metrics)

    def checks() -> dict[str, ReadyCheck]:
        return {"broker": app.state.broker.ping, **{name: _ready_check(app, name) for name in SERVICE_NAMES}}

    app.include_router(observability_router("gateway", checks, metrics))
    app.include_router(auth_router)
    app.include_router(openapi_router)
    app.include_router(proxy_router)
    return app


def _ready_check(app: FastAPI, name: str) -> ReadyCheck:
    async def check() -> None:
        client: httpx.AsyncClient = app.state.clients[name]
        params = {"exclude": sorted(ready_exclusions())}  # the same checks, all the way down
        response = await asyncio.wait_for(client.get("/ready", params=params), timeout=5)
        if response.status_code != 200:
            raise RuntimeError(f"{name} is not ready: {response.text[:200]}")

    return check
