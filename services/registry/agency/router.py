"""Agency endpoints: the directory, its tree, levels, lifecycle, history, and recipient resolution."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services.registry.agency.schemas import (
    AgencyChangeRead,
    AgencyCreate,
    AgencyLookup,
    AgencyLookupResult,
    AgencyPage,
    AgencyRead,
    AgencyTreeNode,
    AgencyUpdate,
    LevelCreate,
    LevelRead,
    StatusChange,
)
from services.registry.dependencies import (
    AdminDep,
    AgencyOrAdminDep,
    AgencyServiceDep,
    DirectoryReaderDep,
    GroupServiceDep,
    require_admin_or_own,
)
from services.registry.group.schemas import RecipientQuery, RecipientResolution
from shared.types import AgencyStatus

router = APIRouter(tags=["agencies"])


@router.get("/v1/agency-levels", response_model=list[LevelRead])
async def list_levels(agencies: AgencyServiceDep, _reader: DirectoryReaderDep) -> list[LevelRead]:
    """List the administrative levels (data: the 2025 two-tier reform needs no code change)."""
    return await agencies.levels()


@router.post("/v1/agency-levels", status_code=status.HTTP_201_CREATED, response_model=LevelRead)
async def create_level(body: LevelCreate, agencies: AgencyServiceDep, _admin: AdminDep) -> LevelRead:
    """Add an administrative level (registry admin only)."""
    return await agencies.create_level(body)


@router.post("/v1/agencies", status_code=status.HTTP_201_CREATED, response_model=AgencyRead)
async def create_agency(body: AgencyCreate, agencies: AgencyServiceDep, _admin: AdminDep) -> AgencyRead:
    """Create an agency (registry admin only)."""
    return await agencies.create(body)


@router.get("/v1/agencies", response_model=AgencyPage)
async def list_agencies(
    agencies: AgencyServiceDep,
    _reader: DirectoryReaderDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    parent: Annotated[str | None, Query(description="only the direct children of this agency")] = None,
    subtree: Annotated[str | None, Query(description="every agency below this one, at any depth")] = None,
    level: str | None = None,
    status: AgencyStatus | None = None,
    q: Annotated[str | None, Query(max_length=200, description="words of the name, diacritics optional")] = None,
) -> AgencyPage:
    """List agencies ordered by code, one page at a time (pass `next_cursor` back as `cursor`)."""
    return await agencies.list_page(
        cursor=cursor, limit=limit, parent_code=parent, subtree_code=subtree, level=level, status=status, text=q
    )


@router.get("/v1/agencies/tree", response_model=list[AgencyTreeNode])
async def agency_tree(
    agencies: AgencyServiceDep,
    _reader: DirectoryReaderDep,
    root: Annotated[str | None, Query(description="the agency at the top (default: the whole directory)")] = None,
) -> list[AgencyTreeNode]:
    """Return the hierarchy, nested, below `root` or for the whole directory."""
    return await agencies.tree(root)


@router.post("/v1/agencies/lookup", response_model=AgencyLookupResult)
async def lookup_agencies(
    body: AgencyLookup, agencies: AgencyServiceDep, _reader: DirectoryReaderDep
) -> AgencyLookupResult:
    """Look many agencies up at once by code (either form)."""
    return await agencies.lookup(body.codes)


@router.post("/v1/agencies/resolve", response_model=RecipientResolution)
async def resolve_recipients(
    body: RecipientQuery, groups: GroupServiceDep, _reader: DirectoryReaderDep
) -> RecipientResolution:
    """Resolve codes and group names to the active agencies a document would reach now: retired
    agencies are redirected to their successor; unknown, suspended and unresolvable ones are listed."""
    return await groups.resolve(body)


@router.get("/v1/agencies/{code}", response_model=AgencyRead)
async def get_agency(code: str, agencies: AgencyServiceDep, _reader: DirectoryReaderDep) -> AgencyRead:
    """Return one agency by its national code (QCVN 102 or Decision 20/2020 form)."""
    return await agencies.get(code)


@router.patch("/v1/agencies/{code}", response_model=AgencyRead)
async def update_agency(code: str, body: AgencyUpdate, agencies: AgencyServiceDep, _admin: AdminDep) -> AgencyRead:
    """Change an agency's fields or parent (registry admin only); the change is kept in its history."""
    return await agencies.update(code, body)


@router.post("/v1/agencies/{code}/status", response_model=AgencyRead)
async def change_status(code: str, body: StatusChange, agencies: AgencyServiceDep, _admin: AdminDep) -> AgencyRead:
    """Suspend (cannot send or receive), reactivate, or retire an agency with a successor that
    receives what is addressed to it (registry admin only)."""
    return await agencies.change_status(code, body)


@router.get("/v1/agencies/{code}/history", response_model=list[AgencyChangeRead])
async def agency_history(code: str, agencies: AgencyServiceDep, principal: AgencyOrAdminDep) -> list[AgencyChangeRead]:
    """Every change to an agency: who, when, what (registry admin, or the agency itself)."""
    agency = await agencies.require(code)
    require_admin_or_own(principal, agency.code)
    return await agencies.history(code)
