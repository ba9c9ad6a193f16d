"""SQL for archive records."""

from __future__ import annotations

import uuid

from services.archive.models import ArchiveRecord
from shared.repository import Repository


class ArchiveRecordRepository(Repository[ArchiveRecord]):
    model = ArchiveRecord

    async def by_document_id(self, document_id: uuid.UUID) -> ArchiveRecord | None:
        return await self.get(document_id)
