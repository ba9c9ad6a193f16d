"""The signature service: verification of PAdES, CMS and XML-DSig signatures (its own issue)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.settings import Settings
from services.signature.models import messaging
from shared.messaging import Broker
from shared.service import ServiceRuntime, create_service_app


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the signature app: operations endpoints, database and broker wired, no API yet."""
    runtime = ServiceRuntime("signature", settings or Settings(), messaging, broker=broker, transports=transports)
    return create_service_app(
        runtime,
        title="LienThong signature",
        description="Verification of PDF (PAdES), detached CMS and XML-DSig signatures against a trust store.",
        routers=[],
    )
