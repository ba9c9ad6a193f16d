"""The registry service: the directory of agencies and the credentials that act for them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from fastapi import FastAPI

from services.registry.agency.router import router as agency_router
from services.registry.audit.router import router as audit_router
from services.registry.certificate.router import router as certificate_router
from services.registry.client.router import router as client_router
from services.registry.consumers import audit_consumer
from services.registry.dependencies import RegistryRuntime, audit_service, client_service
from services.registry.endpoint.router import router as endpoint_router
from services.registry.group.router import router as group_router
from services.registry.transfer.router import router as transfer_router
from services.registry.user.router import router as user_router
from services.settings import Settings
from shared.audit import AnchorKey
from shared.auth import configure_secret_hashing, configure_secret_verification
from shared.messaging import Broker
from shared.service import create_service_app

log = logging.getLogger("lienthong.registry")


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the registry app (its database, broker and clients start in the lifespan)."""
    settings = settings or Settings()
    configure_secret_hashing(settings.auth.secret_hash_time_cost, settings.auth.secret_hash_memory_kib)
    configure_secret_verification(settings.limits.secret_verify_concurrency)
    runtime = RegistryRuntime(settings, broker=broker, transports=transports)
    admin = settings.registry

    async def ensure_bootstrap_admin() -> None:
        """Create the bootstrap admin credential from settings, or bring it back to them."""
        if admin.admin_client_secret is not None:
            async with runtime.db.session() as session:
                await client_service(session).ensure_bootstrap_admin(
                    admin.admin_client_id, admin.admin_client_secret.get_secret_value()
                )

    runtime.on_startup(ensure_bootstrap_admin)
    runtime.consumers.append(audit_consumer(runtime))

    async def anchor_audit_chain() -> None:
        """Sign the audit chain's head every ``audit_anchor_seconds`` when it moved."""
        while True:
            await asyncio.sleep(admin.audit_anchor_seconds)
            try:
                # the key as it is now: after `lienthong keys rotate` the new key signs (anchors name
                # their key, so the old ones still verify)
                runtime.anchor_key = (
                    await asyncio.to_thread(AnchorKey.load, settings.private_key_file) or runtime.anchor_key
                )
                async with runtime.db.session() as session:
                    await audit_service(session, runtime).anchor()
            except Exception:  # the database is away, say: the next round tries again
                log.exception("signing the audit chain's head failed; retrying in %g s", admin.audit_anchor_seconds)

    async def start_anchoring() -> None:
        """Load the gateway's signing key (no key: no anchors, said once) and start the timer."""
        runtime.anchor_key = AnchorKey.load(settings.private_key_file)
        if runtime.anchor_key is None:
            log.warning("no signing key at %s: the audit chain is not anchored", settings.private_key_file)
            return
        if admin.audit_anchor_seconds <= 0:
            return
        task = asyncio.create_task(anchor_audit_chain(), name="audit-anchor")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        runtime.on_shutdown(stop)

    runtime.on_startup(start_anchoring)
    return create_service_app(
        runtime,
        title="LienThong registry",
        description="The directory: agencies, levels, groups, delivery endpoints, certificates, API clients.",
        # /v1/agencies/export before /v1/agencies/{code}: the first route that matches answers
        routers=[
            transfer_router,
            agency_router,
            group_router,
            endpoint_router,
            certificate_router,
            client_router,
            audit_router,
            user_router,
        ],
    )
