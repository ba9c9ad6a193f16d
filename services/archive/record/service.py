"""Rules for archive records: record each submitted document once, show it to its parties only."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.archive.models import ArchiveRecord
from services.archive.record.schemas import ArchiveRecordRead
from shared.db import utcnow
from shared.errors import NotFoundError
from shared.messaging import Envelope


class ArchiveRecordNotFoundError(NotFoundError):
    code, title = "archive_record_not_found", "Archive record not found"


async def record_submitted_document(session: AsyncSession, envelope: Envelope) -> None:
    """Consume ``document.submitted.v1``: keep the document's archive record."""
    data = envelope.data
    session.add(
        ArchiveRecord(
            document_id=uuid.UUID(data["document_id"]),
            sender_code=data["sender_code"],
            code=data["code"],
            type_name=data["type_name"],
            subject=data["subject"],
            recipient_codes=[d["recipient_code"] for d in data["deliveries"]],
            submitted_at=envelope.occurred_at.astimezone(dt.UTC),
            archived_at=utcnow(),
        )
    )
    await session.flush()


async def get_record(session: AsyncSession, document_id: uuid.UUID, agency_code: str) -> ArchiveRecordRead:
    """Return a record to the document's sender or one of its recipients; 404 to anyone else."""
    record = await session.get(ArchiveRecord, document_id)
    if record is None or (agency_code != record.sender_code and agency_code not in record.recipient_codes):
        raise ArchiveRecordNotFoundError(f"No archive record of document {document_id} is visible to you")
    return ArchiveRecordRead.model_validate(record)
