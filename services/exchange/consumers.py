"""The exchange's message handlers: statuses the provincial bus reports back, through the same
service the REST route calls (a message the route would refuse is dead-lettered with the reason)."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.delivery.repository import DeliveryRepository
from services.exchange.delivery.schemas import StatusReport
from services.exchange.delivery.service import DeliveryService
from services.exchange.document.repository import DocumentRepository
from services.exchange.events import StatusReportedOverBus
from services.exchange.feed.repository import FeedRepository
from services.exchange.feed.service import DispatchRule, FeedService
from shared.clients import RegistryClient
from shared.errors import DependencyUnavailableError, LienThongError
from shared.messaging import DeadLetter, Envelope


async def report_status_over_bus(session: AsyncSession, envelope: Envelope, registry: RegistryClient) -> None:
    """``delivery.status_reported.v1``: apply a status the bus reported, as the REST call would."""
    try:
        report = StatusReportedOverBus.model_validate(envelope.data)
        status = StatusReport(status=report.status, note=report.note, timestamp=report.timestamp, staff=report.staff)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise DeadLetter(f"validation_failed: {errors}") from exc
    endpoint = await registry.delivery_endpoint(report.agency_code)  # registry away: tried again
    if endpoint is None:
        raise DeadLetter(f"agency_not_found: no agency {report.agency_code}")
    if endpoint.mode != "amqp":
        raise DeadLetter(
            f"channel_mismatch: agency {report.agency_code} receives by {endpoint.mode}, not on the bus; "
            "report by REST (POST /v1/deliveries/{id}/status) or choose mode amqp"
        )
    service = DeliveryService(
        deliveries=DeliveryRepository(session),
        documents=DocumentRepository(session),
        feed=FeedService(FeedRepository(session), DispatchRule(registry.delivery_endpoint)),
    )
    try:
        await service.report_status(report.agency_code, report.delivery_id, status)
    except DependencyUnavailableError:
        raise  # tried again: the message is fine
    except LienThongError as exc:  # what the REST call would answer 4xx: never to succeed
        raise DeadLetter(f"{exc.code}: {exc.detail}") from exc
