"""SQL of the signature policy: a document's main file, its verdict kept once, a check asked again."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Table, select, update

from services.exchange.models import Attachment, Delivery, Document
from shared.repository import Repository

DOCUMENT: Table = Document.__table__  # type: ignore[assignment]
PENDING = "pending"


class SignatureRepository(Repository[Document]):
    model = Document

    async def main_file(self, document_id: uuid.UUID) -> Attachment | None:
        """A document's first attachment: the file its signature policy is about."""
        query = select(Attachment).where(Attachment.document_id == document_id).order_by(Attachment.position).limit(1)
        return (await self.session.execute(query)).scalar()

    async def settle(
        self, document_id: uuid.UUID, verdict: str, reasons: list[str], checked_at: dt.datetime
    ) -> str | None:
        """Keep the verdict of a document still pending verification; return its sender (None: it was
        not pending, so nothing changed)."""
        statement = (
            update(DOCUMENT)
            .where(DOCUMENT.c.id == document_id, DOCUMENT.c.signature_verdict == PENDING)
            .values(signature_verdict=verdict, signature_reasons=reasons, signature_checked_at=checked_at)
            .returning(DOCUMENT.c.sender_code)
        )
        sender: str | None = (await self.session.execute(statement)).scalar()
        return sender

    async def mark_pending(self, document_id: uuid.UUID) -> None:
        """Forget a document's verdict: it is verified again."""
        statement = (
            update(DOCUMENT)
            .where(DOCUMENT.c.id == document_id)
            .values(signature_verdict=PENDING, signature_reasons=None, signature_checked_at=None)
        )
        await self.session.execute(statement)

    async def recipient_codes(self, document_id: uuid.UUID) -> list[str]:
        query = select(Delivery.recipient_code).where(Delivery.document_id == document_id).order_by(Delivery.created_at)
        return list((await self.session.execute(query)).scalars().all())
