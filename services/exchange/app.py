"""The exchange service: documents, per-recipient deliveries and their national statuses."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.exchange.delivery.router import router as delivery_router
from services.exchange.dependencies import ExchangeRuntime
from services.exchange.document.router import router as document_router
from services.exchange.feed.router import router as feed_router
from services.exchange.signatures.router import router as signature_router
from services.exchange.statistics.router import router as statistics_router
from services.exchange.transfer.router import internal_router as transfer_internal_router
from services.exchange.transfer.router import router as transfer_router
from services.settings import Settings
from shared.messaging import Broker
from shared.service import create_service_app


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the exchange app (its database, broker, blob store, blob sweep and clients start in the lifespan)."""
    runtime = ExchangeRuntime(settings or Settings(), broker=broker, transports=transports)
    runtime.on_startup(runtime.open_blob_store)
    runtime.on_startup(runtime.open_dispatcher)
    runtime.on_startup(runtime.start_feed_wakeups)
    runtime.on_startup(runtime.start_blob_sweeper)
    runtime.on_startup(runtime.start_statistics_refresher)
    return create_service_app(
        runtime,
        title="LienThong exchange",
        description="Documents sent between agencies, one delivery per recipient, national status codes.",
        routers=[
            document_router,
            delivery_router,
            feed_router,
            transfer_router,
            transfer_internal_router,
            signature_router,
            statistics_router,
        ],
    )
