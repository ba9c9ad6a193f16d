"""API client endpoints, and the internal credential check the gateway calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from services.registry.client.schemas import (
    ClientCreate,
    ClientCreated,
    ClientRead,
    CredentialsCheck,
    CredentialsValid,
)
from services.registry.client.service import ClientService
from shared.auth import Principal, PrincipalDep, Scope, require_scope
from shared.db import SessionDep

router = APIRouter(tags=["api clients"])
AdminDep = Annotated[Principal, require_scope(Scope.REGISTRY_ADMIN)]
InternalDep = Annotated[Principal, require_scope(Scope.INTERNAL)]


@router.post("/v1/agencies/{code}/clients", status_code=status.HTTP_201_CREATED, response_model=ClientCreated)
async def create_client(code: str, body: ClientCreate, session: SessionDep, _admin: AdminDep) -> ClientCreated:
    """Issue an API client for an agency (admin only). The secret is shown in this response only."""
    return await ClientService(session).create(code, body)


@router.get("/v1/agencies/{code}/clients", response_model=list[ClientRead])
async def list_clients(code: str, session: SessionDep, principal: PrincipalDep) -> list[ClientRead]:
    """List an agency's API clients (admin, or the agency itself), without secrets."""
    return await ClientService(session).list_for(code, principal)


@router.post("/internal/v1/credentials/verify", response_model=CredentialsValid, include_in_schema=False)
async def verify_credentials(body: CredentialsCheck, session: SessionDep, _gateway: InternalDep) -> CredentialsValid:
    """Check client credentials for the gateway's token endpoint."""
    return await ClientService(session).verify(body.client_id, body.client_secret)
