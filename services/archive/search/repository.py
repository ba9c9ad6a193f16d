"""SQL for search: the fields of a page of hits (the index ranks, the database holds the text)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from services.archive.models import ArchiveRecord
from shared.repository import Repository

SNIPPET_SCAN_CHARS = 20_000  # the passage is looked for in the text's beginning

# what a hit shows, and no more: not the deliveries, the readers or the whole text (an ORM object
# per hit with its JSON columns decoded cost more than the search itself)
_HIT_COLUMNS = (
    ArchiveRecord.document_id,
    ArchiveRecord.source,
    ArchiveRecord.code,
    ArchiveRecord.type_name,
    ArchiveRecord.subject,
    ArchiveRecord.sender_code,
    ArchiveRecord.promulgation_date,
    ArchiveRecord.signature_verdict,
    ArchiveRecord.details,
    func.substr(ArchiveRecord.text, 1, SNIPPET_SCAN_CHARS).label("text"),
)
_HITS = select(*_HIT_COLUMNS)


class SearchRepository(Repository[ArchiveRecord]):
    model = ArchiveRecord

    async def hits(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
        """The fields of these hits, by id (one query; rows with attributes named as the record's)."""
        if not ids:
            return {}
        rows = await self.session.execute(_HITS.where(ArchiveRecord.document_id.in_(set(ids))))
        return {row.document_id: row for row in rows}
