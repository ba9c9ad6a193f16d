"""Rules for delivery endpoints: each agency chooses pull (the default), push or AMQP; a change is
kept in its history and announced (``agency.updated.v1``). A webhook URL must pass the
deployment's policy (``shared/webhooks.py``: https, public addresses only unless a network is
allowed), checked with DNS when it is set; AMQP needs RabbitMQ. The exchange's dispatcher delivers
each feed entry by the agency's choice (docs/channels.md)."""

from __future__ import annotations

import secrets

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.service import require_agency
from services.registry.endpoint.repository import EndpointRepository
from services.registry.endpoint.schemas import EndpointChanged, EndpointInternal, EndpointRead, EndpointUpdate
from services.registry.errors import AmqpNeedsBrokerError
from services.registry.events import AgencyRef, AgencyUpdated, DeliveryEndpointState, DeliveryEndpointUpdated, record
from services.registry.models import Agency, DeliveryEndpoint, messaging
from shared.audit import record_audit
from shared.config import WebhookSection
from shared.db import utcnow
from shared.webhooks import resolve_webhook

PULL: dict[str, str | None] = {"mode": "pull", "webhook_url": None, "amqp_queue": None}  # an agency's default


def _state(endpoint: DeliveryEndpoint | None) -> dict[str, str | None]:
    """Return how an endpoint delivers, as the history and the event show it (no secret)."""
    if endpoint is None:
        return dict(PULL)
    return {"mode": endpoint.mode, "webhook_url": endpoint.webhook_url, "amqp_queue": endpoint.amqp_queue}


def _read(agency: Agency, endpoint: DeliveryEndpoint | None) -> EndpointInternal:
    """Return how an agency receives, secret included (pull when it chose nothing)."""
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


class EndpointService:
    def __init__(
        self,
        endpoints: EndpointRepository,
        agencies: AgencyRepository,
        *,
        actor: str,
        webhooks: WebhookSection,
        amqp_available: bool,
    ) -> None:
        self.endpoints = endpoints
        self.agencies = agencies
        self.actor = actor
        self.webhooks = webhooks
        self.amqp_available = amqp_available

    async def get_internal(self, code: str) -> EndpointInternal:
        """Return how to deliver to an agency, secret included (for the exchange)."""
        agency = await require_agency(self.agencies, code)
        return _read(agency, await self.endpoints.get(agency.id))

    async def get(self, code: str) -> EndpointRead:
        """Return how an agency receives (without the webhook secret)."""
        return EndpointRead(**(await self.get_internal(code)).model_dump(exclude={"webhook_secret"}))

    async def set(self, code: str, data: EndpointUpdate) -> EndpointChanged:
        """Choose how an agency receives; a generated webhook secret is returned this once."""
        agency = await require_agency(self.agencies, code)
        await self._check_deliverable(data)
        endpoint = await self.endpoints.get(agency.id)
        before = _state(endpoint)
        generated = secrets.token_urlsafe(32) if data.mode == "push" and data.webhook_secret is None else None
        endpoint = await self._store(
            agency, endpoint, data=data, secret=generated if generated else data.webhook_secret
        )
        after = _state(endpoint)
        await self.agencies.record_change(
            agency.id,
            action="endpoint",
            actor=self.actor,
            changes={"before": before, "after": after, "secret_changed": data.mode == "push"},
        )
        event = DeliveryEndpointUpdated(
            agency=AgencyRef(code=agency.code),
            changed=["delivery_endpoint"],
            delivery_endpoint=DeliveryEndpointState.model_validate(after),
        )
        await record(self.endpoints, AgencyUpdated(event), ordering_key=f"agency:{agency.code}")
        details = {"mode": data.mode, "secret_changed": data.mode == "push"}
        await record_audit(
            self.endpoints, messaging, "endpoint.updated", actor=self.actor, target=agency.code, details=details
        )
        read = _read(agency, endpoint)
        return EndpointChanged(**read.model_dump(exclude={"webhook_secret"}), webhook_secret=generated)

    async def _check_deliverable(self, data: EndpointUpdate) -> None:
        """Refuse what this deployment cannot deliver to: a webhook URL its policy refuses (or whose
        host does not resolve), AMQP without RabbitMQ."""
        if data.mode == "push" and data.webhook_url is not None:
            await resolve_webhook(str(data.webhook_url), self.webhooks)
        if data.mode == "amqp" and not self.amqp_available:
            raise AmqpNeedsBrokerError(
                "AMQP delivery needs RabbitMQ: set LIENTHONG_BROKER_URL=amqp://… "
                "(this deployment runs the in-process bus); choose pull or push meanwhile"
            )

    async def _store(
        self, agency: Agency, endpoint: DeliveryEndpoint | None, *, data: EndpointUpdate, secret: str | None
    ) -> DeliveryEndpoint:
        """Write the agency's endpoint as ``data`` says (the secret kept for push only)."""
        created = endpoint is None
        if endpoint is None:
            endpoint = DeliveryEndpoint(agency_id=agency.id)
        endpoint.mode = data.mode
        endpoint.webhook_url = str(data.webhook_url) if data.webhook_url else None
        endpoint.webhook_secret = secret if data.mode == "push" else None
        endpoint.amqp_queue = data.amqp_queue
        endpoint.updated_at = utcnow()
        if created:
            await self.endpoints.add(endpoint)
        else:
            await self.endpoints.flush()
        return endpoint
