"""The exchange service: documents, per-recipient deliveries and their national statuses."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from services.exchange.blobstore import BlobStore
from services.exchange.calendar import WorkingCalendar
from services.exchange.delivery.router import router as delivery_router
from services.exchange.dependencies import ExchangeRuntime
from services.exchange.document.router import router as document_router
from services.exchange.models import messaging
from services.settings import Settings
from shared.clients import DIRECTORY_EVENTS, DirectoryCache
from shared.messaging import Broker
from shared.service import Listener, create_service_app


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the exchange app (its database, broker, blob store and clients start in the lifespan)."""
    settings = settings or Settings()
    config = settings.exchange
    directory = DirectoryCache(config.directory_cache_seconds)
    runtime = ExchangeRuntime(
        "exchange",
        settings,
        messaging,
        listeners=[Listener(DIRECTORY_EVENTS, directory.on_event)],
        broker=broker,
        transports=transports,
    )
    runtime.config = config
    runtime.directory = directory
    runtime.calendar = WorkingCalendar(config.holidays, config.timezone)

    async def open_blob_store() -> None:
        blobs = BlobStore(settings.blob_dir)
        await asyncio.to_thread(blobs.remove_abandoned_uploads)  # what a killed process was uploading
        runtime._blobs = blobs

    runtime.on_startup(open_blob_store)
    return create_service_app(
        runtime,
        title="LienThong exchange",
        description="Documents sent between agencies, one delivery per recipient, national status codes.",
        routers=[document_router, delivery_router],
    )
