"""Rules for agencies: the hierarchy, the lifecycle (active, suspended, retired with a successor),
levels as data, and a history of every change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.schemas import (
    AgencyChangeRead,
    AgencyCreate,
    AgencyLookupResult,
    AgencyPage,
    AgencyRead,
    AgencyTreeNode,
    AgencyUpdate,
    LevelCreate,
    LevelRead,
    StatusChange,
)
from services.registry.errors import (
    AgencyExistsError,
    AgencyLevelExistsError,
    AgencyLevelUnknownError,
    AgencyNotFoundError,
    HierarchyCycleError,
    ParentAgencyNotFoundError,
    SuccessorInvalidError,
)
from services.registry.events import AgencyCreated, AgencyFieldsUpdated, AgencyStatusChanged, AgencyUpdated, record
from services.registry.models import Agency, AgencyLevel, messaging
from shared.audit import record_audit
from shared.errors import RequestValidationProblem
from shared.text import fold
from shared.types import NEW_CODE_PATTERN

EDITABLE = ("new_code", "name", "short_name", "level", "email", "phone", "address", "website")
TREE_DEPTH = 50  # GET /v1/agencies/tree shows this many levels at most


def search_text(name: str, short_name: str | None) -> str:
    """Return the names folded without diacritics, as the text search matches them."""
    return fold(" ".join(filter(None, [name, short_name])))[:400]


async def require_agency(agencies: AgencyRepository, code: str) -> Agency:
    """Return the agency with this code (either form) or raise 404."""
    agency = await agencies.by_code(code.strip().upper())
    if agency is None:
        raise AgencyNotFoundError(f"No agency has the code {code}", agency_code=code)
    return agency


class AgencyService:
    def __init__(self, agencies: AgencyRepository, *, actor: str) -> None:
        self.agencies = agencies
        self.actor = actor

    # -- reading -------------------------------------------------------------------------------

    async def require(self, code: str) -> Agency:
        """Return the agency with this code (either form) or raise 404."""
        return await require_agency(self.agencies, code)

    async def read_many(self, agencies: Sequence[Agency]) -> list[AgencyRead]:
        """Return agencies as the API shows them, with their parent's and successor's codes."""
        codes = await self.agencies.codes_by_id([a.parent_id for a in agencies] + [a.successor_id for a in agencies])
        return [
            AgencyRead(
                id=a.id,
                code=a.code,
                new_code=a.new_code,
                name=a.name,
                short_name=a.short_name,
                level=a.level,
                parent_code=codes.get(a.parent_id) if a.parent_id else None,
                status=a.status,
                status_reason=a.status_reason,
                successor_code=codes.get(a.successor_id) if a.successor_id else None,
                email=a.email,
                phone=a.phone,
                address=a.address,
                website=a.website,
                created_at=a.created_at,
                updated_at=a.updated_at,
            )
            for a in agencies
        ]

    async def read(self, agency: Agency) -> AgencyRead:
        """Return an agency as the API shows it."""
        return (await self.read_many([agency]))[0]

    async def get(self, code: str) -> AgencyRead:
        """Return one agency by its national code (QCVN 102 or Decision 20/2020 form)."""
        return await self.read(await self.require(code))

    async def list_page(
        self,
        *,
        cursor: str | None,
        limit: int,
        parent_code: str | None = None,
        subtree_code: str | None = None,
        level: str | None = None,
        status: str | None = None,
        text: str | None = None,
    ) -> AgencyPage:
        """Return one page of agencies ordered by code, filtered."""
        parent_id = (await self.require(parent_code)).id if parent_code else None
        subtree_of = (await self.require(subtree_code)).id if subtree_code else None
        page = await self.agencies.page_by_code(
            cursor=cursor or None,
            limit=limit,
            parent_id=parent_id,
            subtree_of=subtree_of,
            level=level,
            status=status,
            words=fold(text).split() if text else (),
        )
        return AgencyPage(items=await self.read_many(page.rows), next_cursor=page.next_cursor)

    async def tree(self, root_code: str | None) -> list[AgencyTreeNode]:
        """Return the hierarchy below an agency (or the whole forest), nested."""
        children: dict[uuid.UUID | None, list[Agency]] = {}
        for agency in await self.agencies.all():
            children.setdefault(agency.parent_id, []).append(agency)

        def build(agency: Agency, depth: int) -> AgencyTreeNode:
            """Return an agency with its descendants, ``TREE_DEPTH`` levels deep at most."""
            kids = children.get(agency.id, []) if depth < TREE_DEPTH else []
            return AgencyTreeNode(
                code=agency.code,
                name=agency.name,
                level=agency.level,
                status=agency.status,
                children=[build(k, depth + 1) for k in kids],
            )

        if root_code:
            return [build(await self.require(root_code), 0)]
        return [build(a, 0) for a in children.get(None, [])]

    async def lookup(self, codes: list[str]) -> AgencyLookupResult:
        """Return the agencies among ``codes`` (either form) and the codes that name none."""
        wanted = {c.strip().upper() for c in codes}
        agencies = await self.agencies.by_codes(wanted)
        known = {a.code for a in agencies} | {a.new_code for a in agencies if a.new_code}
        return AgencyLookupResult(found=await self.read_many(agencies), missing=sorted(wanted - known))

    async def history(self, code: str) -> list[AgencyChangeRead]:
        """Return every change to an agency, oldest first."""
        agency = await self.require(code)
        return [
            AgencyChangeRead(action=c.action, actor=c.actor, changes=c.changes, created_at=c.created_at)
            for c in await self.agencies.history(agency.id)
        ]

    # -- checks --------------------------------------------------------------------------------

    async def _check_level(self, level: str) -> None:
        """Refuse a level that does not exist (422, listing the known ones)."""
        if await self.agencies.level(level) is None:
            known = [lv.code for lv in await self.agencies.levels()]
            raise AgencyLevelUnknownError(f"Unknown level {level!r}; known levels: {known}", known_levels=known)

    async def _parent(self, parent_code: str | None) -> Agency | None:
        """Return the agency named as parent (None for a root); 404 when it does not exist."""
        if not parent_code:
            return None
        parent = await self.agencies.by_code(parent_code)
        if parent is None:
            raise ParentAgencyNotFoundError(f"Parent agency {parent_code} does not exist", parent_code=parent_code)
        return parent

    async def _check_new_code_free(self, new_code: str | None, *, agency_id: uuid.UUID | None) -> None:
        """Refuse a Decision 20/2020 code that names another agency (409)."""
        if new_code:
            other = await self.agencies.by_code(new_code)
            if other is not None and other.id != agency_id:
                raise AgencyExistsError(f"The code {new_code} belongs to {other.code}", agency_code=other.code)

    async def _check_creatable(self, data: AgencyCreate) -> Agency | None:
        """Refuse a taken code, an unknown level or parent; return the parent (None for a root)."""
        if await self.agencies.by_code(data.code) is not None:
            raise AgencyExistsError(f"Agency {data.code} already exists", agency_code=data.code)
        await self._check_new_code_free(data.new_code, agency_id=None)
        await self._check_level(data.level)
        return await self._parent(data.parent_code)

    # -- changing ------------------------------------------------------------------------------

    async def create(self, data: AgencyCreate) -> AgencyRead:
        """Create an agency under an existing parent, record it and announce it."""
        parent = await self._check_creatable(data)
        agency = await self.agencies.add(
            Agency(
                code=data.code,
                new_code=data.new_code,
                name=data.name,
                short_name=data.short_name,
                search_text=search_text(data.name, data.short_name),
                level=data.level,
                parent_id=parent.id if parent else None,
                status="active",
                email=data.email,
                phone=data.phone,
                address=data.address,
                website=str(data.website) if data.website else None,
            )
        )
        result = await self.read(agency)
        await self.agencies.record_change(
            agency.id, action="created", actor=self.actor, changes=result.model_dump(mode="json")
        )
        await record(self.agencies, AgencyCreated(**result.model_dump()), ordering_key=f"agency:{result.code}")
        await self._audit("agency.created", result.code, {"level": result.level, "parent_code": result.parent_code})
        return result

    async def update(self, code: str, data: AgencyUpdate) -> AgencyRead:
        """Change the given fields; record what changed; announce it."""
        agency = await self.require(code)
        values: dict[str, Any] = data.model_dump(mode="json", exclude_unset=True)
        result, _changed = await self.apply(agency, values, action="updated")
        return result

    async def apply(self, agency: Agency, values: dict[str, Any], *, action: str) -> tuple[AgencyRead, list[str]]:
        """Apply field values (``parent_code`` among them) to an agency; return it and what changed."""
        if "level" in values and values["level"] != agency.level:
            await self._check_level(values["level"])
        if "new_code" in values:
            if NEW_CODE_PATTERN.fullmatch(agency.code) and values["new_code"] != agency.code:
                # an agency known by its Decision 20/2020 code has that code as its new_code, always
                raise RequestValidationProblem(
                    f"Agency {agency.code} is known by its Decision 20/2020 code: new_code stays {agency.code}",
                    errors=[{"loc": ["body", "new_code"], "msg": f"must be {agency.code}", "type": "value_error"}],
                )
            await self._check_new_code_free(values["new_code"], agency_id=agency.id)
        changes = self._set_fields(agency, values)
        if "parent_code" in values:
            changes.update(await self._move(agency, parent_code=values["parent_code"]))
        if not changes:
            return await self.read(agency), []
        agency.search_text = search_text(agency.name, agency.short_name)
        await self.agencies.flush()
        await self.agencies.record_change(agency.id, action=action, actor=self.actor, changes=changes)
        result = await self.read(agency)
        event = AgencyFieldsUpdated(agency=result.model_dump(), changed=sorted(changes))
        await record(self.agencies, AgencyUpdated(event), ordering_key=f"agency:{result.code}")
        await self._audit("agency.updated", result.code, {"changed": sorted(changes)})
        return result, sorted(changes)

    @staticmethod
    def _set_fields(agency: Agency, values: dict[str, Any]) -> dict[str, list[Any]]:
        """Set the editable fields given; return each changed one as ``[before, after]``."""
        changes: dict[str, list[Any]] = {}
        for field in EDITABLE:
            if field in values and values[field] != getattr(agency, field):
                changes[field] = [getattr(agency, field), values[field]]
                setattr(agency, field, values[field])
        return changes

    async def _move(self, agency: Agency, *, parent_code: str | None) -> dict[str, list[Any]]:
        """Place an agency under ``parent_code`` (None: a root), refusing cycles; return the change."""
        parent = await self._parent(parent_code)
        new_parent_id = parent.id if parent else None
        if new_parent_id == agency.parent_id:
            return {}
        if parent is not None and (parent.id == agency.id or parent.id in await self.agencies.subtree_ids(agency.id)):
            raise HierarchyCycleError(f"{parent.code} is {agency.code} itself or one of its descendants")
        old_codes = await self.agencies.codes_by_id([agency.parent_id])
        old = old_codes.get(agency.parent_id) if agency.parent_id else None
        agency.parent_id = new_parent_id
        return {"parent_code": [old, parent_code]}

    async def change_status(self, code: str, change: StatusChange) -> AgencyRead:
        """Suspend, reactivate or retire an agency (retiring names a successor)."""
        agency = await self.require(code)
        successor = await self._successor(agency, change)
        previous = agency.status
        new_successor = successor.id if successor else None
        if previous == change.status and agency.successor_id == new_successor and agency.status_reason == change.reason:
            return await self.read(agency)
        agency.status = change.status
        agency.status_reason = change.reason
        agency.successor_id = new_successor
        await self.agencies.flush()
        successor_code = successor.code if successor else None
        changes = {"status": [previous, change.status], "reason": change.reason, "successor_code": successor_code}
        await self.agencies.record_change(
            agency.id, action=f"status:{change.status}", actor=self.actor, changes=changes
        )
        changed = AgencyStatusChanged(
            code=agency.code,
            previous_status=previous,
            status=change.status,
            reason=change.reason,
            successor_code=successor_code,
        )
        await record(self.agencies, changed, ordering_key=f"agency:{agency.code}")
        details = {"previous_status": previous, "status": change.status, "successor_code": successor_code}
        await self._audit("agency.status_changed", agency.code, details)
        return await self.read(agency)

    async def _successor(self, agency: Agency, change: StatusChange) -> Agency | None:
        """Return the successor a retirement names (another, active agency); refuse one otherwise."""
        if change.status != "retired":
            if change.successor_code:
                raise SuccessorInvalidError("Only a retired agency has a successor")
            return None
        if not change.successor_code:
            raise SuccessorInvalidError("Retiring an agency needs successor_code: where its documents go")
        successor = await self.agencies.by_code(change.successor_code)
        if successor is None or successor.id == agency.id or successor.status != "active":
            raise SuccessorInvalidError(
                f"{change.successor_code} cannot succeed {agency.code}: it must be another, active agency"
            )
        return successor

    # -- levels --------------------------------------------------------------------------------

    async def levels(self) -> list[LevelRead]:
        """Return the administrative levels, by rank."""
        return [LevelRead.model_validate(level) for level in await self.agencies.levels()]

    async def create_level(self, data: LevelCreate) -> LevelRead:
        """Add an administrative level; 409 when its code exists."""
        if await self.agencies.level(data.code) is not None:
            raise AgencyLevelExistsError(f"Level {data.code} exists already")
        level = await self.agencies.add_level(AgencyLevel(code=data.code, name=data.name, rank=data.rank))
        await self._audit("agency_level.created", None, {"level": data.code})
        return LevelRead.model_validate(level)

    async def _audit(self, action: str, code: str | None, details: dict[str, Any]) -> None:
        """Record a directory change in the audit trail (the acting client is the actor)."""
        await record_audit(self.agencies, messaging, action, actor=self.actor, target=code, details=details)
