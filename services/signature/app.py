"""The signature service: verification of PAdES, CMS and XML-DSig signatures against a trust store."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.settings import Settings
from services.signature.dependencies import SignatureRuntime
from services.signature.truststore.router import router as trust_store_router
from services.signature.verification.router import router as verification_router
from shared.messaging import Broker
from shared.service import create_service_app


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the signature app (its database, broker, clients start in the lifespan; the
    verification pool on first use, and stops with the app)."""
    runtime = SignatureRuntime(settings or Settings(), broker=broker, transports=transports)
    return create_service_app(
        runtime,
        title="LienThong signature",
        description="Verification of PDF (PAdES), detached CMS and XML-DSig signatures against a trust store.",
        routers=[verification_router, trust_store_router],
    )
