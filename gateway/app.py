"""The gateway: OAuth2 token endpoint, one OpenAPI document, the proxy to every service. No database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from gateway.auth import router as auth_router
from gateway.console.router import install_console
from gateway.headers import EdgeMiddleware
from gateway.limits import GatewayLimits, attach_limits
from gateway.openapi import router as openapi_router
from gateway.proxy import install_proxy
from gateway.runtime import GatewayRuntime
from services.settings import Settings
from shared.config import SERVICE_NAMES
from shared.errors import install_error_handlers
from shared.limits import install_request_limits
from shared.messaging import Broker
from shared.observability import Metrics, ReadyCheck, install_operations, instrument, ready_exclusions
from shared.runtime import attach_runtime


def create_app(
    settings: Settings | None = None,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    broker: Broker | None = None,
) -> FastAPI:
    """Build the gateway; with ``transports`` (embedded mode) it reaches the services in-process
    and shares their in-process ``broker``."""
    runtime = GatewayRuntime(settings or Settings(), transports=transports, broker=broker)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

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
    attach_runtime(app, runtime)
    metrics = Metrics("gateway")
    limits = GatewayLimits(runtime.settings.gateway, metrics)
    attach_limits(runtime, limits)
    install_error_handlers(app)
    # outermost last: the request id and access log around everything, then the security and
    # rate-limit headers (docs/security.md), then the request size limits
    install_request_limits(app, runtime.settings)
    app.add_middleware(EdgeMiddleware, settings=runtime.settings.gateway, limits=limits)
    instrument(app, metrics, access_log=runtime.settings.gateway.access_log)

    def checks() -> dict[str, ReadyCheck]:
        return {"broker": runtime.ping_broker, **{name: _ready_check(runtime, name) for name in SERVICE_NAMES}}

    install_operations(app, "gateway", checks, metrics)
    app.include_router(auth_router)
    app.include_router(openapi_router)
    install_proxy(app)
    install_console(app)  # after the proxy: an API request never tries the console's routes first
    return app


def _ready_check(runtime: GatewayRuntime, name: str) -> ReadyCheck:
    async def check() -> None:
        params = {"exclude": sorted(ready_exclusions())}  # the same checks, all the way down
        timeout = runtime.settings.gateway.ready_timeout_seconds
        response = await asyncio.wait_for(runtime.clients[name].get("/ready", params=params), timeout=timeout)
        if response.status_code != 200:
            raise RuntimeError(f"{name} is not ready: {response.text[:200]}")

    return check
