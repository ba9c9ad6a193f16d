"""SQL for documents, attachments and deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.models import Attachment, Delivery, DeliveryEvent, Document


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, document_id: uuid.UUID) -> Document | None:
        return await self.session.get(Document, document_id)

    async def by_idempotency_key(self, sender_code: str, key: str) -> Document | None:
        query = select(Document).where(Document.sender_code == sender_code, Document.idempotency_key == key)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def attachments(self, document_id: uuid.UUID) -> Sequence[Attachment]:
        query = select(Attachment).where(Attachment.document_id == document_id).order_by(Attachment.position)
        return (await self.session.execute(query)).scalars().all()

    async def attachment(self, document_id: uuid.UUID, attachment_id: uuid.UUID) -> Attachment | None:
        query = select(Attachment).where(Attachment.document_id == document_id, Attachment.id == attachment_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def deliveries(self, document_id: uuid.UUID) -> Sequence[Delivery]:
        query = select(Delivery).where(Delivery.document_id == document_id).order_by(Delivery.recipient_code)
        return (await self.session.execute(query)).scalars().all()

    async def delivery_to(self, document_id: uuid.UUID, recipient_code: str) -> Delivery | None:
        query = select(Delivery).where(Delivery.document_id == document_id, Delivery.recipient_code == recipient_code)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def history(self, delivery_ids: Sequence[uuid.UUID]) -> Sequence[DeliveryEvent]:
        if not delivery_ids:
            return []
        query = (
            select(DeliveryEvent)
            .where(DeliveryEvent.delivery_id.in_(delivery_ids))
            .order_by(DeliveryEvent.created_at, DeliveryEvent.id)
        )
        return (await self.session.execute(query)).scalars().all()

    async def inbox(
        self, recipient_code: str, *, before: uuid.UUID | None, limit: int, status: str | None
    ) -> Sequence[Row[Delivery, Document]]:
        query = (
            select(Delivery, Document)
            .join(Document, Document.id == Delivery.document_id)
            .where(Delivery.recipient_code == recipient_code)
            .order_by(Delivery.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(Delivery.id < before)
        if status is not None:
            query = query.where(Delivery.status == status)
        return (await self.session.execute(query)).all()

    def add_all(self, rows: Sequence[object]) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()
