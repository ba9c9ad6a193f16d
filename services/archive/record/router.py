"""Archive record endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.archive.dependencies import RecordServiceDep
from services.archive.record.schemas import ArchiveRecordRead
from shared.auth import Principal, Scope, agency_of, require_scope

router = APIRouter(prefix="/v1/archive", tags=["archive"])
SearcherDep = Annotated[Principal, require_scope(Scope.SEARCH)]


@router.get("/records/{document_id}", response_model=ArchiveRecordRead)
async def read_record(document_id: uuid.UUID, records: RecordServiceDep, principal: SearcherDep) -> ArchiveRecordRead:
    """Return the archive record of a document your agency sent or received."""
    return await records.get(document_id, agency_of(principal))
