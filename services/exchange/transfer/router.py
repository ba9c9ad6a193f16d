"""Transfer endpoints: the webhook and bus deliveries that failed, and re-sending them (registry admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.exchange.dependencies import TransferServiceDep
from services.exchange.transfer.schemas import ResendRequest, Resent, TransferFailurePage, TransferFailureReport
from shared.auth import Principal, Scope, require_scope
from shared.types import AgencyCode

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])
internal_router = APIRouter(tags=["transfers"], include_in_schema=False)
AdminDep = Annotated[Principal, require_scope(Scope.REGISTRY_ADMIN)]
InternalDep = Annotated[Principal, require_scope(Scope.INTERNAL)]


@router.get("/failed", response_model=TransferFailurePage)
async def list_failed_transfers(
    transfers: TransferServiceDep,
    _admin: AdminDep,
    agency_code: AgencyCode | None = None,
    include_resent: bool = False,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TransferFailurePage:
    """Feed entries a webhook or bus queue did not take after every try, newest first (registry admin)."""
    return await transfers.failures(agency_code=agency_code, include_resent=include_resent, cursor=cursor, limit=limit)


@router.post("/failed/{failure_id}/resend", response_model=Resent, status_code=202)
async def resend_failed_transfer(failure_id: uuid.UUID, transfers: TransferServiceDep, _admin: AdminDep) -> Resent:
    """Queue a failed entry again for its agency's channel: the same entry id, a fresh series of tries."""
    return await transfers.resend(failure_id)


@router.post("/failed/resend", response_model=Resent, status_code=202)
async def resend_failed_transfers(body: ResendRequest, transfers: TransferServiceDep, _admin: AdminDep) -> Resent:
    """Queue again every failed entry not re-sent since (of one agency, or all), oldest first."""
    return await transfers.resend_all(agency_code=body.agency_code, limit=body.limit)


@internal_router.post("/internal/v1/transfers/failed", status_code=204)
async def record_failed_transfer(
    body: TransferFailureReport, transfers: TransferServiceDep, _internal: InternalDep
) -> None:
    """Record a feed entry the hub connector could not deliver after every try (the delivery is
    marked, the sender told, the admin can re-send it); internal scope only."""
    await transfers.record_failure(
        body.entry, channel=body.channel, target=body.target, attempts=body.attempts, reason=body.reason
    )
