"""Agency endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services.registry.agency.schemas import (
    AgencyCreate,
    AgencyLookup,
    AgencyLookupResult,
    AgencyPage,
    AgencyRead,
)
from services.registry.agency.service import AgencyService
from shared.auth import Principal, PrincipalDep, Scope, require_scope
from shared.db import SessionDep

router = APIRouter(prefix="/v1/agencies", tags=["agencies"])
AdminDep = Annotated[Principal, require_scope(Scope.REGISTRY_ADMIN)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgencyRead)
async def create_agency(body: AgencyCreate, session: SessionDep, _admin: AdminDep) -> AgencyRead:
    """Create an agency (registry admin only)."""
    return await AgencyService(session).create(body)


@router.get("", response_model=AgencyPage)
async def list_agencies(
    session: SessionDep,
    _principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    parent: Annotated[str | None, Query(description="only the direct children of this agency code")] = None,
    level: str | None = None,
) -> AgencyPage:
    """List agencies ordered by code, one page at a time (pass `next_cursor` back as `cursor`)."""
    return await AgencyService(session).list_page(cursor=cursor, limit=limit, parent_code=parent, level=level)


@router.post("/lookup", response_model=AgencyLookupResult)
async def lookup_agencies(body: AgencyLookup, session: SessionDep, _principal: PrincipalDep) -> AgencyLookupResult:
    """Look many agencies up by code at once (used to validate the recipients of a document)."""
    return await AgencyService(session).lookup(body.codes)


@router.get("/{code}", response_model=AgencyRead)
async def get_agency(code: str, session: SessionDep, _principal: PrincipalDep) -> AgencyRead:
    """Return one agency by its national code (any authenticated client may read the directory)."""
    return await AgencyService(session).get(code)
