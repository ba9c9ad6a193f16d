"""The archive service: every exchanged document and every digitised record, searchable."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.archive.dependencies import ArchiveRuntime
from services.archive.record.router import router as record_router
from services.archive.search.router import router as search_router
from services.settings import Settings
from shared.messaging import Broker
from shared.service import create_service_app


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the archive app; it consumes the exchange's document events and keeps a Tantivy index."""
    settings = settings or Settings()
    runtime = ArchiveRuntime(settings, broker=broker, transports=transports)
    return create_service_app(
        runtime,
        title="LienThong archive",
        description="Every document exchanged or digitised, searchable with or without diacritics.",
        routers=[record_router, search_router],
    )
