"""Rules for recipient groups and for resolving a document's addressees to active agencies:
retired agencies are redirected to their successor, groups are expanded at send time."""

from __future__ import annotations

import uuid
from typing import Literal

from services.registry.agency.repository import AgencyRepository
from services.registry.errors import GroupExistsError, GroupInvalidError, GroupNotFoundError
from services.registry.events import GroupUpdated, record
from services.registry.group.repository import GroupRepository
from services.registry.group.schemas import (
    GroupCreate,
    GroupDefinition,
    GroupMembers,
    GroupRead,
    GroupRule,
    InactiveRecipient,
    RecipientQuery,
    RecipientResolution,
    Redirect,
    ResolvedAgency,
)
from services.registry.models import Agency, RecipientGroup, messaging
from shared.audit import record_audit
from shared.db import utcnow


class _Collector:
    """Keeps the first way each agency was reached, in order."""

    def __init__(self) -> None:
        self.by_code: dict[str, ResolvedAgency] = {}

    def add(self, agency: Agency, via: str) -> None:
        """Keep ``agency``, reached ``via`` this way, unless it was reached before."""
        self.by_code.setdefault(
            agency.code,
            ResolvedAgency(
                code=agency.code,
                name=agency.name,
                level=agency.level,
                via=via,
                email=agency.email,
                phone=agency.phone,
                address=agency.address,
                website=agency.website,
            ),
        )


class GroupService:
    def __init__(
        self,
        groups: GroupRepository,
        agencies: AgencyRepository,
        *,
        max_successor_hops: int,
        actor: str | None = None,
    ) -> None:
        self.groups = groups
        self.agencies = agencies
        self.max_successor_hops = max_successor_hops
        self.actor = actor  # the calling client, recorded in the audit trail

    async def _require(self, name: str) -> RecipientGroup:
        """Return the group with this name or raise 404."""
        group = await self.groups.by_name(name)
        if group is None:
            raise GroupNotFoundError(f"No recipient group is named {name!r}", group=name)
        return group

    async def _read(self, group: RecipientGroup) -> GroupRead:
        """Return a group's definition as the API shows it."""
        members = await self.agencies.by_ids(await self.groups.member_ids(group.id))
        return GroupRead(
            name=group.name,
            title=group.title,
            description=group.description,
            members=sorted(a.code for a in members),
            rules=[GroupRule.model_validate(r) for r in group.rules],
            created_at=group.created_at,
            updated_at=group.updated_at,
        )

    async def _member_ids(self, definition: GroupDefinition) -> list[uuid.UUID]:
        """Return the ids of a definition's static members; 422 when it names unknown agencies or levels."""
        found = await self.agencies.by_codes(definition.members)
        known = {a.code for a in found} | {a.new_code for a in found if a.new_code}
        missing = sorted(set(definition.members) - known)
        under = [r.under for r in definition.rules if r.under]
        roots = await self.agencies.by_codes(under)
        missing_roots = sorted(set(under) - {a.code for a in roots} - {a.new_code for a in roots if a.new_code})
        levels = {r.level for r in definition.rules if r.level}
        known_levels = {level.code for level in await self.agencies.levels()}
        unknown_levels = sorted(levels - known_levels)
        if missing or missing_roots or unknown_levels:
            raise GroupInvalidError(
                "The group names agencies or levels that do not exist",
                unknown_members=missing,
                unknown_rule_agencies=missing_roots,
                unknown_levels=unknown_levels,
            )
        return [a.id for a in found]

    async def _announce(self, name: str, *, action: Literal["created", "updated", "deleted"]) -> None:
        """Record ``group.updated.v1``: the directory caches drop their resolutions."""
        await record(self.groups, GroupUpdated(name=name, action=action), ordering_key=f"group:{name}")
        await record_audit(self.groups, messaging, f"group.{action}", actor=self.actor, target=name)

    async def create(self, data: GroupCreate) -> GroupRead:
        """Create a recipient group."""
        if await self.groups.by_name(data.name) is not None:
            raise GroupExistsError(f"A group named {data.name!r} exists already")
        member_ids = await self._member_ids(data)
        group = await self.groups.add(
            RecipientGroup(
                name=data.name,
                title=data.title,
                description=data.description,
                rules=[r.model_dump(mode="json", exclude_none=True) for r in data.rules],
            )
        )
        await self.groups.set_members(group.id, member_ids)
        await self._announce(group.name, action="created")
        return await self._read(group)

    async def replace(self, name: str, data: GroupDefinition) -> GroupRead:
        """Replace a group's definition (title, members, rules)."""
        group = await self._require(name)
        member_ids = await self._member_ids(data)
        group.title = data.title
        group.description = data.description
        group.rules = [r.model_dump(mode="json", exclude_none=True) for r in data.rules]
        group.updated_at = utcnow()
        await self.groups.set_members(group.id, member_ids)
        await self._announce(group.name, action="updated")
        return await self._read(group)

    async def delete(self, name: str) -> None:
        """Delete a group."""
        group = await self._require(name)
        await self.groups.remove(group)
        await self._announce(name, action="deleted")

    async def get(self, name: str) -> GroupRead:
        """Return a group's definition."""
        return await self._read(await self._require(name))

    async def list_all(self) -> list[GroupRead]:
        """Return every group's definition, by name."""
        return [await self._read(g) for g in await self.groups.all()]

    # -- resolution ----------------------------------------------------------------------------

    async def _follow_successors(self, agency: Agency) -> Agency | None:
        """Return the active agency a retired one hands over to, among ``max_successor_hops`` (else None)."""
        current = agency
        for _ in range(self.max_successor_hops):
            if current.status == "active":
                return current
            if current.status != "retired" or current.successor_id is None:
                return None
            successor = await self.agencies.get(current.successor_id)
            if successor is None:
                return None
            current = successor
        return None

    async def _expand(self, group: RecipientGroup, *, into: _Collector) -> list[str]:
        """Add a group's current active members to ``into``; return the static members skipped."""
        via = f"group:{group.name}"
        skipped: list[str] = []
        for agency in sorted(await self.agencies.by_ids(await self.groups.member_ids(group.id)), key=lambda a: a.code):
            target = await self._follow_successors(agency)
            if target is None:
                skipped.append(agency.code)
            else:
                into.add(target, via if target is agency else f"{via},successor:{agency.code}")
        for raw in group.rules:
            rule = GroupRule.model_validate(raw)
            root_id = None
            if rule.under:
                root = await self.agencies.by_code(rule.under)
                if root is None:  # the root agency was removed since: the rule matches nothing
                    continue
                root_id = root.id
            for agency in await self.agencies.in_subtree_at_level(
                root_id=root_id, level=rule.level, statuses=["active"]
            ):
                into.add(agency, via)
        return skipped

    async def members(self, name: str) -> GroupMembers:
        """Resolve a group to its current active members."""
        group = await self._require(name)
        collector = _Collector()
        skipped = await self._expand(group, into=collector)
        members = list(collector.by_code.values())
        return GroupMembers(name=group.name, count=len(members), members=members, skipped=skipped)

    async def resolve(self, query: RecipientQuery) -> RecipientResolution:
        """Resolve agency codes and group names to the active agencies that will receive."""
        collector = _Collector()
        wanted = [c.strip().upper() for c in query.codes]
        unknown, redirected, inactive = await self._resolve_codes(wanted, into=collector)
        groups = await self.groups.by_names(query.groups)
        unknown_groups = sorted(set(query.groups) - {g.name for g in groups})
        for group in groups:
            await self._expand(group, into=collector)
        return RecipientResolution(
            recipients=list(collector.by_code.values()),
            redirected=redirected,
            unknown_codes=unknown,
            unknown_groups=unknown_groups,
            inactive=inactive,
        )

    async def _resolve_codes(
        self, wanted: list[str], *, into: _Collector
    ) -> tuple[list[str], list[Redirect], list[InactiveRecipient]]:
        """Add the agencies ``wanted`` names to ``into``; return the unknown, redirected and inactive ones."""
        agencies = await self.agencies.by_codes(wanted)
        by_code = {a.code: a for a in agencies} | {a.new_code: a for a in agencies if a.new_code}
        unknown = sorted({c for c in wanted if c not in by_code})
        redirected: list[Redirect] = []
        inactive: list[InactiveRecipient] = []
        for code in dict.fromkeys(wanted):
            agency = by_code.get(code)
            if agency is None:
                continue
            if agency.status == "active":
                into.add(agency, "code")
                continue
            target = await self._follow_successors(agency) if agency.status == "retired" else None
            if target is None:
                inactive.append(InactiveRecipient(code=agency.code, status=agency.status))
            else:
                redirected.append(Redirect(from_code=agency.code, to_code=target.code))
                into.add(target, f"successor:{agency.code}")
        return unknown, redirected, inactive
