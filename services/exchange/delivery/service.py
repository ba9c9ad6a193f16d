"""Rules for a delivery's life: only its recipient reports, and only in the national order."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.delivery.schemas import StatusReport, StatusReported
from services.exchange.delivery.status import TRANSITIONS, StatusCode
from services.exchange.errors import DeliveryNotFoundError, DeliveryTransitionError, MetadataInvalidError
from services.exchange.models import Delivery, DeliveryEvent, Document, messaging
from shared.db import utcnow
from shared.messaging import record_event


class DeliveryService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def report_status(self, recipient_code: str, delivery_id: uuid.UUID, report: StatusReport) -> StatusReported:
        """Move a delivery to the reported status and tell the sender (through the outbox)."""
        delivery = await self.session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.recipient_code != recipient_code:
            raise DeliveryNotFoundError(f"No delivery {delivery_id} is addressed to {recipient_code}")
        current = StatusCode(delivery.status)
        wanted = StatusCode(report.status)
        allowed = TRANSITIONS[current]
        if wanted not in allowed:
            raise DeliveryTransitionError(
                f"A delivery in status {current.value} cannot move to {wanted.value}",
                current_status=current.value,
                allowed_next=[code.value for code in allowed],
            )
        if wanted is StatusCode.REJECTED and not (report.note and report.note.strip()):
            raise MetadataInvalidError("Status 02 (rejected) needs a reason in `note`")
        document = await self.session.get(Document, delivery.document_id)
        assert document is not None
        now = utcnow()
        delivery.status = wanted.value
        delivery.updated_at = now
        self.session.add(
            DeliveryEvent(
                delivery_id=delivery.id,
                status=wanted.value,
                actor_code=recipient_code,
                note=report.note,
                created_at=now,
            )
        )
        await self.session.flush()
        await record_event(
            self.session,
            messaging,
            "delivery.status_changed.v1",
            {
                "delivery_id": str(delivery.id),
                "document_id": str(document.id),
                "sender_code": document.sender_code,
                "recipient_code": recipient_code,
                "previous_status": current.value,
                "status": wanted.value,
                "note": report.note,
                "occurred_at": now.isoformat(),
            },
        )
        return StatusReported(
            delivery_id=delivery.id,
            document_id=document.id,
            recipient_code=recipient_code,
            previous_status=current.value,
            status=wanted.value,
            updated_at=now,
        )
