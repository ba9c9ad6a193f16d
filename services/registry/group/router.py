"""Recipient group endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from services.registry.dependencies import AdminDep
from services.registry.group.schemas import GroupCreate, GroupDefinition, GroupMembers, GroupRead
from services.registry.group.service import GroupService
from shared.auth import PrincipalDep
from shared.db import SessionDep

router = APIRouter(prefix="/v1/groups", tags=["groups"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GroupRead)
async def create_group(body: GroupCreate, session: SessionDep, _admin: AdminDep) -> GroupRead:
    """Create a recipient group: static members and/or rules (registry admin only)."""
    return await GroupService(session).create(body)


@router.get("", response_model=list[GroupRead])
async def list_groups(session: SessionDep, _principal: PrincipalDep) -> list[GroupRead]:
    """List the recipient groups."""
    return await GroupService(session).list_all()


@router.get("/{name}", response_model=GroupRead)
async def get_group(name: str, session: SessionDep, _principal: PrincipalDep) -> GroupRead:
    """Return a group's definition."""
    return await GroupService(session).get(name)


@router.put("/{name}", response_model=GroupRead)
async def replace_group(name: str, body: GroupDefinition, session: SessionDep, _admin: AdminDep) -> GroupRead:
    """Replace a group's title, members and rules (registry admin only)."""
    return await GroupService(session).replace(name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_group(name: str, session: SessionDep, _admin: AdminDep) -> Response:
    """Delete a group (registry admin only)."""
    await GroupService(session).delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/members", response_model=GroupMembers)
async def group_members(name: str, session: SessionDep, _principal: PrincipalDep) -> GroupMembers:
    """Resolve a group to its current active members (as a document sent now would reach)."""
    return await GroupService(session).members(name)
