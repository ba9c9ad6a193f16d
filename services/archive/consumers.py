"""The archive's message handlers: each calls the same service the routes call."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import RecordService
from shared.messaging import Envelope
from shared.service import Consumer


async def on_document_submitted(session: AsyncSession, envelope: Envelope) -> None:
    """``document.submitted.v1``: keep the document's archive record."""
    data = envelope.data
    await RecordService(ArchiveRecordRepository(session)).record_submitted(
        document_id=uuid.UUID(data["document_id"]),
        sender_code=data["sender_code"],
        code=data["code"],
        type_name=data["type_name"],
        subject=data["subject"],
        recipient_codes=[d["recipient_code"] for d in data["deliveries"]],
        submitted_at=envelope.occurred_at,
    )


CONSUMERS = (Consumer("documents", ("document.submitted.v1",), on_document_submitted),)
