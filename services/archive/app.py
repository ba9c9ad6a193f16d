"""The archive service: every exchanged document recorded (full-text search is its own issue)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.archive.consumers import consumers
from services.archive.models import messaging
from services.archive.record.router import router as record_router
from services.settings import Settings
from shared.messaging import Broker
from shared.service import ServiceRuntime, create_service_app


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the archive app; it consumes ``document.submitted.v1``."""
    settings = settings or Settings()
    runtime = ServiceRuntime(
        "archive",
        settings,
        messaging,
        consumers=consumers(settings.archive),
        broker=broker,
        transports=transports,
    )
    return create_service_app(
        runtime,
        title="LienThong archive",
        description="Every document exchanged, recorded and (soon) searchable without diacritics.",
        routers=[record_router],
    )
