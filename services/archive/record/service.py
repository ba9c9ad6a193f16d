"""Rules for archive records: record each submitted document once, show it to its parties only."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from services.archive.errors import ArchiveRecordNotFoundError
from services.archive.models import ArchiveRecord
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.schemas import ArchiveRecordRead
from shared.db import utcnow


class RecordService:
    def __init__(self, records: ArchiveRecordRepository) -> None:
        self.records = records

    async def record_submitted(
        self,
        *,
        document_id: uuid.UUID,
        sender_code: str,
        code: str,
        type_name: str,
        subject: str,
        recipient_codes: Sequence[str],
        submitted_at: dt.datetime,
    ) -> None:
        """Keep the archive record of a document just submitted."""
        await self.records.insert_new(  # a Core insert: one per event, no unit of work needed
            [
                ArchiveRecord(
                    document_id=document_id,
                    sender_code=sender_code,
                    code=code,
                    type_name=type_name,
                    subject=subject,
                    recipient_codes=list(recipient_codes),
                    submitted_at=submitted_at.astimezone(dt.UTC),
                    archived_at=utcnow(),
                )
            ]
        )

    async def get(self, document_id: uuid.UUID, agency_code: str) -> ArchiveRecordRead:
        """Return a record to the document's sender or one of its recipients; 404 to anyone else."""
        record = await self.records.by_document_id(document_id)
        if record is None or (agency_code != record.sender_code and agency_code not in record.recipient_codes):
            raise ArchiveRecordNotFoundError(f"No archive record of document {document_id} is visible to you")
        return ArchiveRecordRead.model_validate(record)
