"""The hub connector: the province's side of the national document hub (docs/interop.md)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.hub.dependencies import HubRuntime
from services.settings import Settings
from shared.messaging import Broker
from shared.service import create_service_app


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    hub_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the connector's app: no API of its own, only /health, /ready and /metrics; its work
    (the outbound queue, the polling task) starts in the lifespan."""
    runtime = HubRuntime(settings or Settings(), broker=broker, transports=transports, hub_transport=hub_transport)
    return create_service_app(
        runtime,
        title="LienThong hub connector",
        description="Carries documents and statuses between the province and the national document hub.",
        routers=[],
    )
