"""The archive service: every exchanged document recorded (full-text search is its own issue)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.archive.models import messaging
from services.archive.record.router import router as record_router
from services.archive.record.service import record_submitted_document
from shared.config import Settings
from shared.messaging import Broker
from shared.service import Consumer, ServiceRuntime, create_service_app


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the archive app; it consumes ``document.submitted.v1``."""
    runtime = ServiceRuntime(
        name="archive",
        settings=settings or Settings(),
        tables=messaging,
        broker=broker,
        transports=transports if transports is not None else {},
        consumers=[Consumer("documents", ("document.submitted.v1",), record_submitted_document)],
    )
    return create_service_app(
        runtime,
        title="LienThong archive",
        description="Every document exchanged, recorded and (soon) searchable without diacritics.",
        routers=[record_router],
    )
