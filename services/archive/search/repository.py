"""SQL for search: the records of a page of hits (the index ranks, the database holds the text)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from services.archive.models import ArchiveRecord
from shared.repository import Repository


class SearchRepository(Repository[ArchiveRecord]):
    model = ArchiveRecord

    async def hits(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ArchiveRecord]:
        """The records of these hits, by id (one query)."""
        if not ids:
            return {}
        rows = await self.session.scalars(select(ArchiveRecord).where(ArchiveRecord.document_id.in_(set(ids))))
        return {row.document_id: row for row in rows}
