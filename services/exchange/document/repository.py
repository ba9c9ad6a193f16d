"""SQL for documents, attachments and deliveries."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Row, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.models import Attachment, Delivery, DeliveryEvent, Document

RECALLED = "15"
FINISHED = ("06", "02")


@dataclass(frozen=True)
class ListFilters:
    """Filters of the sent and received lists (None: no filter)."""

    status: str | None = None
    type_name: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    counterpart: str | None = None
    urgency: int | None = None
    overdue: bool | None = None
    kind: str | None = None


def overdue_clause(now: dt.datetime, today: dt.date) -> ColumnElement[bool]:
    """A delivery not reported arrived by its deadline, or not completed by its due date."""
    return and_(
        or_(Delivery.recall_status.is_(None), Delivery.recall_status != RECALLED),
        or_(
            and_(Delivery.status == "pending", Delivery.arrival_deadline < now),
            and_(Delivery.status.not_in(FINISHED), Delivery.due_date.is_not(None), Delivery.due_date < today),
        ),
    )


def is_overdue(delivery: Delivery, now: dt.datetime, today: dt.date) -> bool:
    if delivery.recall_status == RECALLED:
        return False
    if delivery.status == "pending" and delivery.arrival_deadline < now:
        return True
    return delivery.status not in FINISHED and delivery.due_date is not None and delivery.due_date < today


def _document_filters(filters: ListFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.type_name:
        clauses.append(Document.type_name == filters.type_name)
    if filters.date_from:
        clauses.append(Document.promulgation_date >= filters.date_from)
    if filters.date_to:
        clauses.append(Document.promulgation_date <= filters.date_to)
    if filters.urgency is not None:
        clauses.append(Document.urgency == filters.urgency)
    if filters.kind:
        clauses.append(Document.kind == filters.kind)
    return clauses


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, document_id: uuid.UUID) -> Document | None:
        return await self.session.get(Document, document_id)

    async def by_idempotency_key(self, sender_code: str, key: str) -> Document | None:
        query = select(Document).where(Document.sender_code == sender_code, Document.idempotency_key == key)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_sender_document_id(self, sender_code: str, sender_document_id: str) -> Document | None:
        query = select(Document).where(
            Document.sender_code == sender_code, Document.sender_document_id == sender_document_id
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def same_number(self, sender_code: str, number: str, notation: str, year: int) -> Document | None:
        query = select(Document).where(
            Document.sender_code == sender_code,
            Document.code_number == number,
            Document.code_notation == notation,
            Document.promulgation_year == year,
            Document.kind == "new",
        )
        return (await self.session.execute(query)).scalars().first()

    async def attachments(self, document_id: uuid.UUID) -> Sequence[Attachment]:
        query = select(Attachment).where(Attachment.document_id == document_id).order_by(Attachment.position)
        return (await self.session.execute(query)).scalars().all()

    async def attachment(self, document_id: uuid.UUID, attachment_id: uuid.UUID) -> Attachment | None:
        query = select(Attachment).where(Attachment.document_id == document_id, Attachment.id == attachment_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def deliveries(self, document_id: uuid.UUID, *, for_update: bool = False) -> Sequence[Delivery]:
        query = select(Delivery).where(Delivery.document_id == document_id).order_by(Delivery.recipient_code)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().all()

    async def delivery_to(self, document_id: uuid.UUID, recipient_code: str) -> Delivery | None:
        query = select(Delivery).where(Delivery.document_id == document_id, Delivery.recipient_code == recipient_code)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def history(self, delivery_ids: Sequence[uuid.UUID]) -> Sequence[DeliveryEvent]:
        if not delivery_ids:
            return []
        events: list[DeliveryEvent] = []
        for start in range(0, len(delivery_ids), 500):
            query = (
                select(DeliveryEvent)
                .where(DeliveryEvent.delivery_id.in_(delivery_ids[start : start + 500]))
                .order_by(DeliveryEvent.created_at, DeliveryEvent.id)
            )
            events.extend((await self.session.execute(query)).scalars())
        return events

    async def received(
        self,
        recipient_code: str,
        filters: ListFilters,
        *,
        before: uuid.UUID | None,
        limit: int,
        now: dt.datetime,
        today: dt.date,
    ) -> Sequence[Row[Delivery, Document]]:
        query = (
            select(Delivery, Document)
            .join(Document, Document.id == Delivery.document_id)
            .where(
                Delivery.recipient_code == recipient_code,
                or_(Delivery.recall_status.is_(None), Delivery.recall_status != RECALLED),
                *_document_filters(filters),
            )
            .order_by(Delivery.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(Delivery.id < before)
        if filters.status:
            query = query.where(Delivery.status == filters.status)
        if filters.counterpart:
            query = query.where(Document.sender_code == filters.counterpart)
        if filters.overdue is not None:
            clause = overdue_clause(now, today)
            query = query.where(clause if filters.overdue else ~clause)
        return (await self.session.execute(query)).all()

    async def sent(
        self,
        sender_code: str,
        filters: ListFilters,
        *,
        before: uuid.UUID | None,
        limit: int,
        now: dt.datetime,
        today: dt.date,
    ) -> Sequence[Document]:
        query = (
            select(Document)
            .where(Document.sender_code == sender_code, *_document_filters(filters))
            .order_by(Document.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(Document.id < before)
        delivery_conditions: list[ColumnElement[bool]] = []
        if filters.status:
            delivery_conditions.append(Delivery.status == filters.status)
        if filters.counterpart:
            delivery_conditions.append(Delivery.recipient_code == filters.counterpart)
        if filters.overdue:
            delivery_conditions.append(overdue_clause(now, today))
        if delivery_conditions:
            matching = select(Delivery.document_id).where(*delivery_conditions)
            query = query.where(Document.id.in_(matching))
        if filters.overdue is False:
            query = query.where(Document.id.not_in(select(Delivery.document_id).where(overdue_clause(now, today))))
        return (await self.session.execute(query)).scalars().all()

    async def delivery_counts(
        self, document_ids: Sequence[uuid.UUID], now: dt.datetime, today: dt.date
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

    def add_all(self, rows: Sequence[object]) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()
