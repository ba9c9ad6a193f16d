"""Rules for agencies: the hierarchy, the lifecycle (active, suspended, retired with a successor),
levels as data, and a history of every change."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

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
from services.registry.models import Agency, AgencyLevel, messaging
from shared.errors import BadRequestError
from shared.messaging import record_event
from shared.text import fold

EDITABLE = ("new_code", "name", "short_name", "level", "email", "phone", "address", "website")


def encode_cursor(code: str) -> str:
    return base64.urlsafe_b64encode(code.encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        return base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise BadRequestError("The cursor is not valid; use next_cursor from a previous page") from exc


def search_text(name: str, short_name: str | None) -> str:
    return fold(" ".join(filter(None, [name, short_name])))[:400]


async def require_agency(agencies: AgencyRepository, code: str) -> Agency:
    """Return the agency with this code (either form) or raise 404."""
    agency = await agencies.by_code(code.strip().upper())
    if agency is None:
        raise AgencyNotFoundError(f"No agency has the code {code}", agency_code=code)
    return agency


class AgencyService:
    def __init__(self, session: AsyncSession, actor: str = "system") -> None:
        self.session = session
        self.actor = actor
        self.agencies = AgencyRepository(session)

    # -- reading -------------------------------------------------------------------------------

    async def require(self, code: str) -> Agency:
        """Return the agency with this code (either form) or raise 404."""
        return await require_agency(self.agencies, code)

    async def read_many(self, agencies: Sequence[Agency]) -> list[AgencyRead]:
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
        after = decode_cursor(cursor) if cursor else None
        parent_id = (await self.require(parent_code)).id if parent_code else None
        subtree_of = (await self.require(subtree_code)).id if subtree_code else None
        rows = await self.agencies.page(
            after_code=after,
            limit=limit + 1,
            parent_id=parent_id,
            subtree_of=subtree_of,
            level=level,
            status=status,
            text=fold(text).strip() if text else None,
        )
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1].code) if len(rows) > limit else None
        return AgencyPage(items=await self.read_many(page), next_cursor=next_cursor)

    async def tree(self, root_code: str | None) -> list[AgencyTreeNode]:
        """Return the hierarchy below an agency (or the whole forest), nested."""
        agencies = await self.agencies.all()
        children: dict[uuid.UUID | None, list[Agency]] = {}
        for agency in agencies:
            children.setdefault(agency.parent_id, []).append(agency)

        def build(agency: Agency, depth: int) -> AgencyTreeNode:
            kids = children.get(agency.id, []) if depth < 50 else []
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
        agency = await self.require(code)
        return [
            AgencyChangeRead(action=c.action, actor=c.actor, changes=c.changes, created_at=c.created_at)
            for c in await self.agencies.history(agency.id)
        ]

    # -- changing ------------------------------------------------------------------------------

    async def _check_level(self, level: str) -> None:
        if await self.agencies.level(level) is None:
            known = [lv.code for lv in await self.agencies.levels()]
            raise AgencyLevelUnknownError(f"Unknown level {level!r}; known levels: {known}", known_levels=known)

    async def _parent(self, parent_code: str | None) -> Agency | None:
        if not parent_code:
            return None
        parent = await self.agencies.by_code(parent_code)
        if parent is None:
            raise ParentAgencyNotFoundError(f"Parent agency {parent_code} does not exist", parent_code=parent_code)
        return parent

    async def _check_new_code_free(self, new_code: str | None, agency_id: uuid.UUID | None) -> None:
        if new_code:
            other = await self.agencies.by_code(new_code)
            if other is not None and other.id != agency_id:
                raise AgencyExistsError(f"The code {new_code} belongs to {other.code}", agency_code=other.code)

    async def create(self, data: AgencyCreate) -> AgencyRead:
        """Create an agency under an existing parent, record it and announce it."""
        if await self.agencies.by_code(data.code) is not None:
            raise AgencyExistsError(f"Agency {data.code} already exists", agency_code=data.code)
        await self._check_new_code_free(data.new_code, None)
        await self._check_level(data.level)
        parent = await self._parent(data.parent_code)
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
        await self.agencies.record_change(agency.id, "created", self.actor, result.model_dump(mode="json"))
        await record_event(
            self.session,
            messaging,
            "agency.created.v1",
            result.model_dump(mode="json"),
            ordering_key=f"agency:{result.code}",
        )
        return result

    async def update(self, code: str, data: AgencyUpdate) -> AgencyRead:
        """Change the given fields; record what changed; announce it."""
        agency = await self.require(code)
        values: dict[str, Any] = data.model_dump(mode="json", exclude_unset=True)
        result, _changed = await self.apply(agency, values, action="updated")
        return result

    async def apply(self, agency: Agency, values: dict[str, Any], *, action: str) -> tuple[AgencyRead, list[str]]:
        """Apply field values (``parent_code`` among them) to an agency; return it and what changed."""
        changes: dict[str, list[Any]] = {}
        if "level" in values and values["level"] != agency.level:
            await self._check_level(values["level"])
        if "new_code" in values:
            await self._check_new_code_free(values["new_code"], agency.id)
        for field in EDITABLE:
            if field in values and values[field] != getattr(agency, field):
                changes[field] = [getattr(agency, field), values[field]]
                setattr(agency, field, values[field])
        if "parent_code" in values:
            parent = await self._parent(values["parent_code"])
            new_parent_id = parent.id if parent else None
            if new_parent_id != agency.parent_id:
                if parent is not None and (
                    parent.id == agency.id or parent.id in await self.agencies.subtree_ids(agency.id)
                ):
                    raise HierarchyCycleError(f"{parent.code} is {agency.code} itself or one of its descendants")
                old_codes = await self.agencies.codes_by_id([agency.parent_id])
                old = old_codes.get(agency.parent_id) if agency.parent_id else None
                changes["parent_code"] = [old, values["parent_code"]]
                agency.parent_id = new_parent_id
        if not changes:
            return await self.read(agency), []
        agency.search_text = search_text(agency.name, agency.short_name)
        await self.session.flush()
        await self.agencies.record_change(agency.id, action, self.actor, changes)
        result = await self.read(agency)
        await record_event(
            self.session,
            messaging,
            "agency.updated.v1",
            {"agency": result.model_dump(mode="json"), "changed": sorted(changes)},
            ordering_key=f"agency:{result.code}",
        )
        return result, sorted(changes)

    async def change_status(self, code: str, change: StatusChange) -> AgencyRead:
        """Suspend, reactivate or retire an agency (retiring names a successor)."""
        agency = await self.require(code)
        previous = agency.status
        successor: Agency | None = None
        if change.status == "retired":
            if not change.successor_code:
                raise SuccessorInvalidError("Retiring an agency needs successor_code: where its documents go")
            successor = await self.agencies.by_code(change.successor_code)
            if successor is None or successor.id == agency.id or successor.status != "active":
                raise SuccessorInvalidError(
                    f"{change.successor_code} cannot succeed {agency.code}: it must be another, active agency"
                )
        elif change.successor_code:
            raise SuccessorInvalidError("Only a retired agency has a successor")
        new_successor = successor.id if successor else None
        if previous == change.status and agency.successor_id == new_successor and agency.status_reason == change.reason:
            return await self.read(agency)
        agency.status = change.status
        agency.status_reason = change.reason
        agency.successor_id = new_successor
        await self.session.flush()
        changes = {
            "status": [previous, change.status],
            "reason": change.reason,
            "successor_code": successor.code if successor else None,
        }
        await self.agencies.record_change(agency.id, f"status:{change.status}", self.actor, changes)
        await record_event(
            self.session,
            messaging,
            "agency.status_changed.v1",
            {
                "code": agency.code,
                "previous_status": previous,
                "status": change.status,
                "reason": change.reason,
                "successor_code": successor.code if successor else None,
            },
            ordering_key=f"agency:{agency.code}",
        )
        return await self.read(agency)

    # -- levels --------------------------------------------------------------------------------

    async def levels(self) -> list[LevelRead]:
        return [LevelRead.model_validate(level) for level in await self.agencies.levels()]

    async def create_level(self, data: LevelCreate) -> LevelRead:
        if await self.agencies.level(data.code) is not None:
            raise AgencyLevelExistsError(f"Level {data.code} exists already")
        level = await self.agencies.add_level(AgencyLevel(code=data.code, name=data.name, rank=data.rank))
        return LevelRead.model_validate(level)
