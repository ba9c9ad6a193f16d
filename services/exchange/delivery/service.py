"""Rules for a delivery's life: only its recipient reports, only in the national order, and a
pending recall (13) is answered (15 agreed, 16 refused) before anything else."""

from __future__ import annotations

import datetime as dt
import uuid

from services.exchange.delivery.repository import DeliveryRepository
from services.exchange.delivery.schemas import StatusReport, StatusReported
from services.exchange.delivery.status import RECALL_ANSWERS, TRANSITIONS, StatusCode
from services.exchange.document.repository import DocumentRepository
from services.exchange.errors import DeliveryNotFoundError, DeliveryTransitionError, MetadataInvalidError
from services.exchange.events import DeliveryStatusChanged, DocumentRecalled, payload
from services.exchange.feed.service import FeedService, status_entry
from services.exchange.models import Delivery, DeliveryEvent, Document, messaging
from shared.audit import record_audit
from shared.db import utcnow


async def record_status_change(
    deliveries: DeliveryRepository,
    delivery: Delivery,
    document: Document,
    *,
    previous: str,
    status: StatusCode,
    actor_code: str,
    note: str | None,
    at: dt.datetime,
) -> None:
    """Write a change of a delivery to its history and to the outbox (``delivery.status_changed.v1``)."""
    delivery.updated_at = at
    await deliveries.add_history(
        [DeliveryEvent(delivery_id=delivery.id, status=status.value, actor_code=actor_code, note=note, created_at=at)]
    )
    changed = DeliveryStatusChanged(
        delivery_id=delivery.id,
        document_id=document.id,
        sender_code=document.sender_code,
        recipient_code=delivery.recipient_code,
        previous_status=previous,
        status=status.value,
        actor_code=actor_code,
        note=note,
        occurred_at=at,
    )
    await deliveries.record_event(
        messaging, "delivery.status_changed.v1", payload(changed), ordering_key=str(document.id)
    )


def check_transition(*, delivery: Delivery, wanted: StatusCode, note: str | None) -> str:
    """Refuse a status that cannot follow the delivery's current one; return that current status."""
    recall_pending = delivery.recall_status == StatusCode.RECALL_REQUESTED
    previous = StatusCode.RECALL_REQUESTED.value if recall_pending else delivery.status
    allowed = RECALL_ANSWERS if recall_pending else TRANSITIONS[StatusCode(delivery.status)]
    if wanted in RECALL_ANSWERS and not recall_pending:
        raise DeliveryTransitionError(
            "No recall is pending on this delivery: 15 and 16 answer a recall (13) only",
            current_status=previous,
            allowed_next=[code.value for code in allowed],
        )
    if wanted not in allowed:
        raise DeliveryTransitionError(
            f"A delivery in status {previous} cannot move to {wanted.value}"
            + (" (answer the recall first)" if recall_pending else ""),
            current_status=previous,
            allowed_next=[code.value for code in allowed],
        )
    if wanted is StatusCode.REJECTED and not (note and note.strip()):
        raise MetadataInvalidError("Status 02 (rejected) needs a reason in `note`")
    return previous


class DeliveryService:
    def __init__(self, *, deliveries: DeliveryRepository, documents: DocumentRepository, feed: FeedService) -> None:
        self.deliveries = deliveries
        self.documents = documents
        self.feed = feed

    async def report_status(
        self, recipient_code: str, delivery_id: uuid.UUID, report: StatusReport, *, actor: str | None = None
    ) -> StatusReported:
        """Move a delivery to the reported status and record the change for the sender (outbox) and
        in the audit trail (``actor``: the API client; None over the provincial bus)."""
        delivery = await self.deliveries.get_for_update(delivery_id)
        if (
            delivery is None
            or delivery.recipient_code != recipient_code
            or delivery.recall_status == StatusCode.RECALL_AGREED
        ):
            raise DeliveryNotFoundError(f"No delivery {delivery_id} is addressed to {recipient_code}")
        wanted = StatusCode(report.status)
        previous = check_transition(delivery=delivery, wanted=wanted, note=report.note)
        document = await self.documents.get(delivery.document_id)
        assert document is not None
        now = utcnow()
        if wanted in RECALL_ANSWERS:
            delivery.recall_status = wanted.value
            if wanted is StatusCode.RECALL_AGREED:
                delivery.recalled_at = now
        else:
            delivery.status = wanted.value
        await record_status_change(
            self.deliveries,
            delivery,
            document,
            previous=previous,
            status=wanted,
            actor_code=recipient_code,
            note=report.note,
            at=now,
        )
        await self.feed.add(
            [status_entry(document, delivery, previous=previous, status=wanted.value, note=report.note, at=now)]
        )
        await record_audit(
            self.deliveries,
            messaging,
            "delivery.status_reported",
            actor=actor,
            agency_code=recipient_code,
            document_id=document.id,
            target=delivery.id,
            details={"previous_status": previous, "status": wanted.value},
        )
        if wanted is StatusCode.RECALL_AGREED:
            recalled = DocumentRecalled(
                document_id=document.id,
                delivery_id=delivery.id,
                sender_code=document.sender_code,
                recipient_code=recipient_code,
                recalled_at=now,
            )
            await self.deliveries.record_event(
                messaging, "document.recalled.v1", payload(recalled), ordering_key=str(document.id)
            )
        return StatusReported(
            delivery_id=delivery.id,
            document_id=document.id,
            recipient_code=recipient_code,
            previous_status=previous,
            status=wanted.value,
            updated_at=now,
        )
