"""Delivery endpoint endpoints."""

from __future__ import annotations

from fastapi import APIRouter

from services.registry.dependencies import AgencyOrAdminDep, EndpointServiceDep, InternalDep, require_admin_or_own
from services.registry.endpoint.schemas import EndpointChanged, EndpointInternal, EndpointRead, EndpointUpdate
from shared.errors import ForbiddenError

router = APIRouter(tags=["delivery endpoints"])


@router.get("/v1/agencies/{code}/endpoint", response_model=EndpointRead)
async def get_endpoint(code: str, endpoints: EndpointServiceDep, principal: AgencyOrAdminDep) -> EndpointRead:
    """How an agency receives (registry admin, or the agency itself)."""
    endpoint = await endpoints.get(code)
    require_admin_or_own(principal, endpoint.agency_code)
    return endpoint


@router.put("/v1/agencies/{code}/endpoint", response_model=EndpointChanged)
async def set_endpoint(
    code: str, body: EndpointUpdate, endpoints: EndpointServiceDep, principal: AgencyOrAdminDep
) -> EndpointChanged:
    """Choose pull (REST inbox), push (webhook, HMAC-signed with the secret shown once) or amqp
    (a queue on the provincial bus) (admin, or the agency itself), or hub (an agency outside the
    province, reached through the national hub: registry admin only); the next feed entry goes by
    it (docs/channels.md, docs/interop.md).
    A webhook URL into the deployment's own network is refused (422 webhook_url_refused), and so is
    amqp where the broker is the in-process bus (422 amqp_needs_broker)."""
    require_admin_or_own(principal, (await endpoints.get(code)).agency_code)
    if body.mode == "hub" and not principal.is_admin:
        raise ForbiddenError("Only the registry admin marks an agency as reached through the national hub")
    return await endpoints.set(code, body)


@router.get("/internal/v1/agencies/{code}/endpoint", response_model=EndpointInternal, include_in_schema=False)
async def get_endpoint_internal(code: str, endpoints: EndpointServiceDep, _internal: InternalDep) -> EndpointInternal:
    """How to deliver to an agency, secret included (services only)."""
    return await endpoints.get_internal(code)
