"""Rules for delivery endpoints: each agency chooses pull (default), push or AMQP; new deliveries
use the change at once (the exchange's cache is invalidated by ``agency.updated.v1``)."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.service import require_agency
from services.registry.endpoint.schemas import EndpointChanged, EndpointInternal, EndpointRead, EndpointUpdate
from services.registry.models import Agency, AgencyChange, DeliveryEndpoint, messaging
from shared.db import utcnow
from shared.messaging import record_event


class EndpointService:
    def __init__(self, session: AsyncSession, actor: str = "system") -> None:
        self.session = session
        self.actor = actor
        self.agencies = AgencyRepository(session)

    @staticmethod
    def _read(agency: Agency, endpoint: DeliveryEndpoint | None) -> EndpointInternal:
        if endpoint is None:
            return EndpointInternal(
                agency_code=agency.code,
                mode="pull",
                webhook_url=None,
                has_webhook_secret=False,
                amqp_queue=None,
                updated_at=None,
                webhook_secret=None,
            )
        return EndpointInternal(
            agency_code=agency.code,
            mode=endpoint.mode,
            webhook_url=endpoint.webhook_url,
            has_webhook_secret=endpoint.webhook_secret is not None,
            amqp_queue=endpoint.amqp_queue,
            updated_at=endpoint.updated_at,
            webhook_secret=endpoint.webhook_secret,
        )

    async def get_internal(self, code: str) -> EndpointInternal:
        agency = await require_agency(self.agencies, code)
        return self._read(agency, await self.session.get(DeliveryEndpoint, agency.id))

    async def get(self, code: str) -> EndpointRead:
        """Return how an agency receives (without the webhook secret)."""
        return EndpointRead(**(await self.get_internal(code)).model_dump(exclude={"webhook_secret"}))

    async def set(self, code: str, data: EndpointUpdate) -> EndpointChanged:
        """Choose how an agency receives; a generated webhook secret is returned this once."""
        agency = await require_agency(self.agencies, code)
        endpoint = await self.session.get(DeliveryEndpoint, agency.id)
        generated = None
        secret = data.webhook_secret
        if data.mode == "push" and secret is None:
            secret = generated = secrets.token_urlsafe(32)
        before: dict[str, str | None] = {"mode": "pull", "webhook_url": None, "amqp_queue": None}  # the default
        if endpoint is None:
            endpoint = DeliveryEndpoint(agency_id=agency.id, mode=data.mode)
            self.session.add(endpoint)
        else:
            before = {"mode": endpoint.mode, "webhook_url": endpoint.webhook_url, "amqp_queue": endpoint.amqp_queue}
        endpoint.mode = data.mode
        endpoint.webhook_url = str(data.webhook_url) if data.webhook_url else None
        endpoint.webhook_secret = secret if data.mode == "push" else None
        endpoint.amqp_queue = data.amqp_queue
        endpoint.updated_at = utcnow()
        await self.session.flush()
        after = {"mode": endpoint.mode, "webhook_url": endpoint.webhook_url, "amqp_queue": endpoint.amqp_queue}
        self.session.add(
            AgencyChange(
                agency_id=agency.id,
                action="endpoint",
                actor=self.actor,
                changes={"before": before, "after": after, "secret_changed": data.mode == "push"},
            )
        )
        await record_event(
            self.session,
            messaging,
            "agency.updated.v1",
            {"agency": {"code": agency.code}, "changed": ["delivery_endpoint"], "delivery_endpoint": after},
            ordering_key=f"agency:{agency.code}",
        )
        read = self._read(agency, endpoint)
        return EndpointChanged(**read.model_dump(exclude={"webhook_secret"}), webhook_secret=generated)
