"""SQL for deliveries and their history."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, case, func, or_, select

from services.exchange.delivery.status import FINISHED, UNREGISTERED, StatusCode
from services.exchange.models import Delivery, DeliveryEvent
from shared.repository import Repository

# The SQL bound of a query on delivery_event.delivery_id IN (…): well under every driver's limit.
HISTORY_BATCH = 500


def not_withdrawn() -> ColumnElement[bool]:
    """A delivery whose recipient has not given its copy back (no 15)."""
    return or_(Delivery.recall_status.is_(None), Delivery.recall_status != StatusCode.RECALL_AGREED.value)


def overdue_clause(now: dt.datetime, today: dt.date) -> ColumnElement[bool]:
    """A delivery not registered (03) or returned (02) by its deadline, or not completed by its due date
    (the SQL twin of :func:`services.exchange.delivery.status.is_overdue`)."""
    return and_(
        not_withdrawn(),
        or_(
            and_(Delivery.status.in_([code.value for code in UNREGISTERED]), Delivery.arrival_deadline < now),
            and_(
                Delivery.status.not_in([code.value for code in FINISHED]),
                Delivery.due_date.is_not(None),
                Delivery.due_date < today,
            ),
        ),
    )


class DeliveryRepository(Repository[Delivery]):
    model = Delivery

    async def get_for_update(self, delivery_id: uuid.UUID) -> Delivery | None:
        """Return a delivery, locked until the transaction ends (None when unknown)."""
        return await self.session.get(Delivery, delivery_id, with_for_update=True)

    async def of_document(self, document_id: uuid.UUID, *, for_update: bool = False) -> Sequence[Delivery]:
        """Return a document's deliveries by recipient code (locked with ``for_update``)."""
        query = select(Delivery).where(Delivery.document_id == document_id).order_by(Delivery.recipient_code)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().all()

    async def to_recipient(self, document_id: uuid.UUID, recipient_code: str) -> Delivery | None:
        """Return the delivery of a document to one agency (None when it was not sent there)."""
        query = select(Delivery).where(Delivery.document_id == document_id, Delivery.recipient_code == recipient_code)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def add_history(self, events: Sequence[DeliveryEvent]) -> None:
        """Insert changes to the history of deliveries already written."""
        await self.insert_new(events)

    async def add_new(self, deliveries: Sequence[Delivery]) -> None:
        """Insert the deliveries of a document already written."""
        await self.insert_new(deliveries)

    async def history(self, delivery_ids: Sequence[uuid.UUID]) -> Sequence[DeliveryEvent]:
        """Return the history of these deliveries, oldest change first."""
        events: list[DeliveryEvent] = []
        for start in range(0, len(delivery_ids), HISTORY_BATCH):
            query = (
                select(DeliveryEvent)
                .where(DeliveryEvent.delivery_id.in_(delivery_ids[start : start + HISTORY_BATCH]))
                .order_by(DeliveryEvent.created_at, DeliveryEvent.id)
            )
            events.extend((await self.session.execute(query)).scalars())
        return events

    async def counts(
        self, document_ids: Sequence[uuid.UUID], *, now: dt.datetime, today: dt.date
    ) -> dict[uuid.UUID, tuple[dict[str, int], int]]:
        """Per document: how many deliveries at each status, and how many overdue."""
        if not document_ids:
            return {}
        overdue = func.sum(case((overdue_clause(now, today), 1), else_=0))
        query = (
            select(Delivery.document_id, Delivery.status, func.count(), overdue)
            .where(Delivery.document_id.in_(document_ids))
            .group_by(Delivery.document_id, Delivery.status)
        )
        result: dict[uuid.UUID, tuple[dict[str, int], int]] = {}
        for document_id, status, count, late in await self.session.execute(query):
            by_status, total_late = result.get(document_id, ({}, 0))
            by_status[status] = int(count)
            result[document_id] = (by_status, total_late + int(late or 0))
        return result
