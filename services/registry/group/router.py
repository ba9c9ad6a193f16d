"""Recipient group endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from services.registry.dependencies import AdminDep, DirectoryReaderDep, GroupServiceDep
from services.registry.group.schemas import GroupCreate, GroupDefinition, GroupMembers, GroupRead

router = APIRouter(prefix="/v1/groups", tags=["groups"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GroupRead)
async def create_group(body: GroupCreate, groups: GroupServiceDep, _admin: AdminDep) -> GroupRead:
    """Create a recipient group: static members and/or rules (registry admin only)."""
    return await groups.create(body)


@router.get("", response_model=list[GroupRead])
async def list_groups(groups: GroupServiceDep, _reader: DirectoryReaderDep) -> list[GroupRead]:
    """List the recipient groups."""
    return await groups.list_all()


@router.get("/{name}", response_model=GroupRead)
async def get_group(name: str, groups: GroupServiceDep, _reader: DirectoryReaderDep) -> GroupRead:
    """Return a group's definition."""
    return await groups.get(name)


@router.put("/{name}", response_model=GroupRead)
async def replace_group(name: str, body: GroupDefinition, groups: GroupServiceDep, _admin: AdminDep) -> GroupRead:
    """Replace a group's title, members and rules (registry admin only)."""
    return await groups.replace(name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_group(name: str, groups: GroupServiceDep, _admin: AdminDep) -> Response:
    """Delete a group (registry admin only)."""
    await groups.delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/members", response_model=GroupMembers)
async def group_members(name: str, groups: GroupServiceDep, _reader: DirectoryReaderDep) -> GroupMembers:
    """Resolve a group to its current active members (as a document sent now would reach)."""
    return await groups.members(name)
