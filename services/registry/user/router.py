"""Agency user endpoints (the registry admin's), and the sign-in check the gateway's console calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse

from services.registry.dependencies import AdminDep, InternalDep, UserServiceDep
from services.registry.errors import UserCredentialsInvalidError
from services.registry.user.schemas import SignedIn, SignInCheck, UserCreate, UserRead, UserUpdate
from shared.errors import AgencyInactiveError, problem_response
from shared.types import AnyAgencyCode

router = APIRouter(tags=["users"])


@router.post("/v1/users", status_code=status.HTTP_201_CREATED, response_model=UserRead)
async def create_user(body: UserCreate, users: UserServiceDep, _admin: AdminDep) -> UserRead:
    """Create a console user bound to an agency, with a role and a password (registry admin only)."""
    return await users.create(body)


@router.get("/v1/users", response_model=list[UserRead])
async def list_users(
    users: UserServiceDep, _admin: AdminDep, agency: Annotated[AnyAgencyCode | None, Query()] = None
) -> list[UserRead]:
    """List the console users, of one agency with `agency` (registry admin only)."""
    return await users.list_users(agency)


@router.get("/v1/users/{username}", response_model=UserRead)
async def get_user(username: str, users: UserServiceDep, _admin: AdminDep) -> UserRead:
    """Return a console user (registry admin only)."""
    return await users.get(username)


@router.patch("/v1/users/{username}", response_model=UserRead)
async def update_user(username: str, body: UserUpdate, users: UserServiceDep, _admin: AdminDep) -> UserRead:
    """Change a user's name, role, status (`disabled`: no sign-in, live sessions refused) or
    password (registry admin only)."""
    return await users.update(username, body)


@router.post("/internal/v1/users/sign-in", response_model=SignedIn, include_in_schema=False)
async def sign_in(
    body: SignInCheck, request: Request, users: UserServiceDep, _gateway: InternalDep
) -> SignedIn | JSONResponse:
    """Check a user name and password for the gateway's console; the audit trail records the
    sign-in or its refusal in the check's transaction (a refusal is answered, not raised)."""
    try:
        return await users.sign_in(body.username, body.password)
    except (UserCredentialsInvalidError, AgencyInactiveError) as exc:
        await users.record_refusal(body.username, exc.code)
        return problem_response(exc, request)
