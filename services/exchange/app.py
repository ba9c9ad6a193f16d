"""The exchange service: documents, per-recipient deliveries and their national statuses."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from services.exchange.blobstore import BlobStore
from services.exchange.calendar import WorkingCalendar
from services.exchange.delivery.router import router as delivery_router
from services.exchange.document.router import router as document_router
from services.exchange.models import messaging
from services.exchange.registry_client import DIRECTORY_EVENTS, DirectoryCache
from shared.config import Settings
from shared.messaging import Broker
from shared.service import Listener, ServiceRuntime, create_service_app


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the exchange app (its database, broker, blob store and clients start in the lifespan)."""
    settings = settings or Settings()
    directory_cache = DirectoryCache()
    runtime = ServiceRuntime(
        name="exchange",
        settings=settings,
        tables=messaging,
        broker=broker,
        transports=transports if transports is not None else {},
        listeners=[Listener(DIRECTORY_EVENTS, directory_cache.on_event)],
    )

    async def on_start(_runtime: ServiceRuntime) -> None:
        blobs = BlobStore(settings.blob_dir)
        await asyncio.to_thread(blobs.remove_abandoned_uploads)  # what a killed process was uploading
        app.state.blobs = blobs
        app.state.directory_cache = directory_cache
        app.state.calendar = WorkingCalendar(settings.exchange.holidays, settings.exchange.timezone)

    app = create_service_app(
        runtime,
        title="LienThong exchange",
        description="Documents sent between agencies, one delivery per recipient, national status codes.",
        routers=[document_router, delivery_router],
        on_start=on_start,
    )
    return app
