"""The auditor API: the audit chain's entries and head (scope ``audit:read``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from services.registry.audit.repository import EntryFilters
from services.registry.audit.schemas import AuditHeadRead, AuditPage
from services.registry.dependencies import AuditorDep, AuditServiceDep

router = APIRouter(tags=["audit"])


@router.get("/v1/audit/entries", response_model=AuditPage)
async def list_entries(
    audit: AuditServiceDep,
    _auditor: AuditorDep,
    agency: Annotated[str | None, Query(max_length=30, description="the agency the actor acted for")] = None,
    document: Annotated[uuid.UUID | None, Query(description="a document id")] = None,
    actor: Annotated[str | None, Query(max_length=64, description="an API client id")] = None,
    action: Annotated[str | None, Query(max_length=60, examples=["document.sent"])] = None,
    since: Annotated[AwareDatetime | None, Query(description="occurred at or after (with a time zone)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="occurred before (with a time zone)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """List audit entries, newest first, one page at a time (pass `next_cursor` back as `cursor`).

    Entries hold ids, codes, the action, who, when and the outcome: never document content."""
    filters = EntryFilters(
        agency_code=agency,
        document_id=str(document) if document is not None else None,
        actor=actor,
        action=action,
        since=since,
        until=until,
    )
    return await audit.entries(filters, cursor=cursor, limit=limit)


@router.get("/v1/audit/head", response_model=AuditHeadRead)
async def chain_head(audit: AuditServiceDep, _auditor: AuditorDep) -> AuditHeadRead:
    """The chain's last entry (position and hash) and its last signed anchor."""
    return await audit.head()
