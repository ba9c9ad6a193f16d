"""SQL for archive records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert

from services.archive.models import ArchiveRecord
from shared.repository import Repository

_RECORDS = cast(Table, ArchiveRecord.__table__)  # Core: no ORM bulk machinery on the hot path


class ArchiveRecordRepository(Repository[ArchiveRecord]):
    model = ArchiveRecord

    async def by_document_id(self, document_id: uuid.UUID) -> ArchiveRecord | None:
        return await self.get(document_id)

    async def insert_records(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new records, given as column values, with one statement (a batch of events)."""
        if rows:
            await self.session.execute(insert(_RECORDS), list(rows))
