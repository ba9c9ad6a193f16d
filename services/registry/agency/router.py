"""Agency endpoints: the directory, its tree, levels, lifecycle, history, bulk import and export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

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
from services.registry.agency.service import AgencyService
from services.registry.dependencies import AdminDep, require_admin_or_own
from services.registry.group.schemas import RecipientQuery, RecipientResolution
from services.registry.group.service import GroupService
from services.registry.transfer.schemas import ImportReport, TransferFormat
from services.registry.transfer.service import TransferService, parse_rows, render_export
from shared.auth import PrincipalDep
from shared.db import SessionDep
from shared.errors import PayloadTooLargeError
from shared.types import AgencyStatus

router = APIRouter(tags=["agencies"])
MAX_IMPORT_BYTES = 20 * 1024 * 1024


@router.get("/v1/agency-levels", response_model=list[LevelRead])
async def list_levels(session: SessionDep, _principal: PrincipalDep) -> list[LevelRead]:
    """List the administrative levels (data: the 2025 two-tier reform needs no code change)."""
    return await AgencyService(session).levels()


@router.post("/v1/agency-levels", status_code=status.HTTP_201_CREATED, response_model=LevelRead)
async def create_level(body: LevelCreate, session: SessionDep, admin: AdminDep) -> LevelRead:
    """Add an administrative level (registry admin only)."""
    return await AgencyService(session, admin.client_id).create_level(body)


@router.post("/v1/agencies", status_code=status.HTTP_201_CREATED, response_model=AgencyRead)
async def create_agency(body: AgencyCreate, session: SessionDep, admin: AdminDep) -> AgencyRead:
    """Create an agency (registry admin only)."""
    return await AgencyService(session, admin.client_id).create(body)


@router.get("/v1/agencies", response_model=AgencyPage)
async def list_agencies(
    session: SessionDep,
    _principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    parent: Annotated[str | None, Query(description="only the direct children of this agency")] = None,
    subtree: Annotated[str | None, Query(description="every agency below this one, at any depth")] = None,
    level: str | None = None,
    status: AgencyStatus | None = None,
    q: Annotated[str | None, Query(max_length=200, description="words of the name, diacritics optional")] = None,
) -> AgencyPage:
    """List agencies ordered by code, one page at a time (pass `next_cursor` back as `cursor`)."""
    return await AgencyService(session).list_page(
        cursor=cursor, limit=limit, parent_code=parent, subtree_code=subtree, level=level, status=status, text=q
    )


@router.get("/v1/agencies/tree", response_model=list[AgencyTreeNode])
async def agency_tree(
    session: SessionDep,
    _principal: PrincipalDep,
    root: Annotated[str | None, Query(description="the agency at the top (default: the whole directory)")] = None,
) -> list[AgencyTreeNode]:
    """Return the hierarchy, nested, below `root` or for the whole directory."""
    return await AgencyService(session).tree(root)


@router.post("/v1/agencies/lookup", response_model=AgencyLookupResult)
async def lookup_agencies(body: AgencyLookup, session: SessionDep, _principal: PrincipalDep) -> AgencyLookupResult:
    """Look many agencies up at once by code (either form)."""
    return await AgencyService(session).lookup(body.codes)


@router.post("/v1/agencies/resolve", response_model=RecipientResolution)
async def resolve_recipients(
    body: RecipientQuery, session: SessionDep, _principal: PrincipalDep
) -> RecipientResolution:
    """Resolve codes and group names to the active agencies a document would reach now: retired
    agencies are redirected to their successor; unknown, suspended and unresolvable ones are listed."""
    return await GroupService(session).resolve(body)


@router.post("/v1/agencies/import", response_model=ImportReport)
async def import_agencies(
    request: Request,
    session: SessionDep,
    admin: AdminDep,
    format: Annotated[TransferFormat, Query(description="csv or json")] = "csv",
    dry_run: bool = False,
) -> ImportReport:
    """Import a whole agency tree (body: the CSV or JSON file). Everything is validated before
    anything is written; re-importing creates nothing twice and reports what changed."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_IMPORT_BYTES:
            raise PayloadTooLargeError(f"Import files are limited to {MAX_IMPORT_BYTES} bytes; split the file")
    rows = parse_rows(bytes(raw), format)
    return await TransferService(session, admin.client_id).import_rows(rows, dry_run=dry_run)


@router.get("/v1/agencies/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_agencies(
    session: SessionDep, _admin: AdminDep, format: Annotated[TransferFormat, Query()] = "csv"
) -> Response:
    """Export every agency, parents before children, in the import format (plus status, successor)."""
    body = render_export(await TransferService(session).export_rows(), format)
    media = "application/json" if format == "json" else "text/csv; charset=utf-8"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="agencies.{format}"'}
    )


@router.get("/v1/agencies/{code}", response_model=AgencyRead)
async def get_agency(code: str, session: SessionDep, _principal: PrincipalDep) -> AgencyRead:
    """Return one agency by its national code (QCVN 102 or Decision 20/2020 form)."""
    return await AgencyService(session).get(code)


@router.patch("/v1/agencies/{code}", response_model=AgencyRead)
async def update_agency(code: str, body: AgencyUpdate, session: SessionDep, admin: AdminDep) -> AgencyRead:
    """Change an agency's fields or parent (registry admin only); the change is kept in its history."""
    return await AgencyService(session, admin.client_id).update(code, body)


@router.post("/v1/agencies/{code}/status", response_model=AgencyRead)
async def change_status(code: str, body: StatusChange, session: SessionDep, admin: AdminDep) -> AgencyRead:
    """Suspend (cannot send or receive), reactivate, or retire an agency with a successor that
    receives what is addressed to it (registry admin only)."""
    return await AgencyService(session, admin.client_id).change_status(code, body)


@router.get("/v1/agencies/{code}/history", response_model=list[AgencyChangeRead])
async def agency_history(code: str, session: SessionDep, principal: PrincipalDep) -> list[AgencyChangeRead]:
    """Every change to an agency: who, when, what (registry admin, or the agency itself)."""
    service = AgencyService(session)
    agency = await service.require(code)
    require_admin_or_own(principal, agency.code)
    return await service.history(code)
