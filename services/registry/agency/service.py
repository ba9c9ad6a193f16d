"""Rules for agencies: creation under an existing parent, lookup, listing."""

from __future__ import annotations

import base64

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.schemas import AgencyCreate, AgencyLookupResult, AgencyPage, AgencyRead
from services.registry.errors import AgencyExistsError, AgencyNotFoundError, ParentAgencyNotFoundError
from services.registry.models import Agency, messaging
from shared.errors import BadRequestError
from shared.messaging import record_event


def _read(agency: Agency, parent_code: str | None) -> AgencyRead:
    return AgencyRead.model_validate({**agency.__dict__, "parent_code": parent_code})


def encode_cursor(code: str) -> str:
    return base64.urlsafe_b64encode(code.encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("The cursor is not valid; use next_cursor from a previous page") from exc


class AgencyService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.agencies = AgencyRepository(session)

    async def create(self, data: AgencyCreate) -> AgencyRead:
        """Create an agency under an existing parent and announce it."""
        if await self.agencies.by_code(data.code) is not None:
            raise AgencyExistsError(f"Agency {data.code} already exists", agency_code=data.code)
        parent_id = None
        if data.parent_code:
            parent = await self.agencies.by_code(data.parent_code)
            if parent is None:
                raise ParentAgencyNotFoundError(f"Parent agency {data.parent_code} does not exist")
            parent_id = parent.id
        agency = await self.agencies.add(
            Agency(
                code=data.code,
                name=data.name,
                short_name=data.short_name,
                level=data.level,
                parent_id=parent_id,
                status="active",
                email=data.email,
                phone=data.phone,
                address=data.address,
            )
        )
        result = _read(agency, data.parent_code)
        await record_event(self.session, messaging, "agency.created.v1", result.model_dump(mode="json"))
        return result

    async def get(self, code: str) -> AgencyRead:
        """Return one agency by its national code."""
        agency = await self.agencies.by_code(code.strip().upper())
        if agency is None:
            raise AgencyNotFoundError(f"No agency has the code {code}", agency_code=code)
        parent_code = None
        if agency.parent_id:
            parent_code = (await self.agencies.codes_by_id([agency.parent_id])).get(agency.parent_id)
        return _read(agency, parent_code)

    async def list_page(
        self, *, cursor: str | None, limit: int, parent_code: str | None, level: str | None
    ) -> AgencyPage:
        """Return one page of agencies ordered by code."""
        after = decode_cursor(cursor) if cursor else None
        rows = await self.agencies.page(after_code=after, limit=limit + 1, parent_code=parent_code, level=level)
        page = rows[:limit]
        parents = await self.agencies.codes_by_id([a.parent_id for a in page if a.parent_id])
        items = [_read(a, parents.get(a.parent_id) if a.parent_id else None) for a in page]
        next_cursor = encode_cursor(page[-1].code) if len(rows) > limit else None
        return AgencyPage(items=items, next_cursor=next_cursor)

    async def lookup(self, codes: list[str]) -> AgencyLookupResult:
        """Return the agencies among ``codes`` and the codes that name none."""
        wanted = [c.strip().upper() for c in codes]
        agencies = await self.agencies.by_codes(wanted)
        parents = await self.agencies.codes_by_id([a.parent_id for a in agencies if a.parent_id])
        found = [_read(a, parents.get(a.parent_id) if a.parent_id else None) for a in agencies]
        known = {a.code for a in agencies}
        return AgencyLookupResult(found=found, missing=sorted(set(wanted) - known))
