"""Rules for archive records: record each submitted document once, show it to its parties only."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from services.archive.errors import ArchiveRecordNotFoundError
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.schemas import ArchiveRecordRead
from shared.db import utcnow


@dataclass(frozen=True)
class Submission:
    """What the archive keeps of a document submitted (its ``document.submitted.v1`` event)."""

    document_id: uuid.UUID
    sender_code: str
    code: str
    type_name: str
    subject: str
    recipient_codes: Sequence[str]
    submitted_at: dt.datetime


class RecordService:
    def __init__(self, records: ArchiveRecordRepository) -> None:
        self.records = records

    async def record_all(self, submissions: Sequence[Submission]) -> None:
        """Keep the archive records of documents just submitted, with one insert."""
        archived_at = utcnow()
        await self.records.insert_records(
            [
                {
                    "document_id": s.document_id,
                    "sender_code": s.sender_code,
                    "code": s.code,
                    "type_name": s.type_name,
                    "subject": s.subject,
                    "recipient_codes": list(s.recipient_codes),
                    "submitted_at": s.submitted_at.astimezone(dt.UTC),
                    "archived_at": archived_at,
                }
                for s in submissions
            ]
        )

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
        await self.record_all(
            [
                Submission(
                    document_id=document_id,
                    sender_code=sender_code,
                    code=code,
                    type_name=type_name,
                    subject=subject,
                    recipient_codes=recipient_codes,
                    submitted_at=submitted_at,
                )
            ]
        )

    async def get(self, document_id: uuid.UUID, agency_code: str) -> ArchiveRecordRead:
        """Return a record to the document's sender or one of its recipients; 404 to anyone else."""
        record = await self.records.by_document_id(document_id)
        if record is None or (agency_code != record.sender_code and agency_code not in record.recipient_codes):
            raise ArchiveRecordNotFoundError(f"No archive record of document {document_id} is visible to you")
        return ArchiveRecordRead.model_validate(record)
