"""SQL for recipient groups."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select

from services.registry.models import GroupMember, RecipientGroup
from shared.repository import Repository


class GroupRepository(Repository[RecipientGroup]):
    model = RecipientGroup

    async def by_name(self, name: str) -> RecipientGroup | None:
        """Return the group with this name, or None."""
        query = select(RecipientGroup).where(RecipientGroup.name == name)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_names(self, names: Sequence[str]) -> Sequence[RecipientGroup]:
        """Return the groups with these names (unknown names are left out)."""
        query = select(RecipientGroup).where(RecipientGroup.name.in_(set(names)))
        return (await self.session.execute(query)).scalars().all()

    async def all(self) -> Sequence[RecipientGroup]:
        """Return every group, ordered by name."""
        return (await self.session.execute(select(RecipientGroup).order_by(RecipientGroup.name))).scalars().all()

    async def member_ids(self, group_id: uuid.UUID) -> list[uuid.UUID]:
        """Return the agency ids of a group's static members."""
        query = select(GroupMember.agency_id).where(GroupMember.group_id == group_id)
        return list((await self.session.execute(query)).scalars())

    async def set_members(self, group_id: uuid.UUID, agency_ids: Sequence[uuid.UUID]) -> None:
        """Make these agencies a group's static members, in place of the previous ones."""
        await self.session.execute(delete(GroupMember).where(GroupMember.group_id == group_id))
        self.session.add_all([GroupMember(group_id=group_id, agency_id=a) for a in agency_ids])
        await self.session.flush()

    async def remove(self, group: RecipientGroup) -> None:
        """Delete a group and its static members."""
        await self.session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
        await self.session.delete(group)
        await self.session.flush()
