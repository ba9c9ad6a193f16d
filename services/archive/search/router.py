"""Search endpoint."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.archive.dependencies import SearchServiceDep, reader_of
from services.archive.search.schemas import SearchPage
from services.archive.search.service import SearchFilters
from shared.auth import Principal, Scope, require_scope
from shared.types import CODE_MAX_LENGTH

router = APIRouter(prefix="/v1/archive", tags=["archive"])
SearcherDep = Annotated[Principal, require_scope(Scope.SEARCH)]
Code = Annotated[str | None, Query(max_length=CODE_MAX_LENGTH, pattern=r"^[0-9A-Za-z.]+$")]


@router.get("/search", response_model=SearchPage, responses={400: {"model": None}})
async def search(
    search: SearchServiceDep,
    principal: SearcherDep,
    q: Annotated[str, Query(max_length=2000, description='words, "phrases", prefix*, -excluded, 24/KH-UBND')] = "",
    issuer: Annotated[Code, Query(description="the issuing agency")] = None,
    subtree: Annotated[bool, Query(description="with `issuer`: also every agency below it")] = False,
    recipient: Annotated[Code, Query(description="a recipient agency")] = None,
    type: Annotated[str | None, Query(max_length=100, description="a document type, diacritics optional")] = None,
    date_from: Annotated[dt.date | None, Query(description="promulgated on or after")] = None,
    date_to: Annotated[dt.date | None, Query(description="promulgated on or before")] = None,
    urgency: Annotated[int | None, Query(ge=0, le=4)] = None,
    status: Annotated[str | None, Query(pattern=r"^(pending|0[1-6]|1[356])$", description="a delivery status")] = None,
    signature: Literal["valid", "invalid", "indeterminate", "unsigned", "pending", "none"] | None = None,
    source: Literal["exchanged", "digitised"] | None = None,
    facets: Annotated[bool, Query(description="count every match by type, issuer and year")] = False,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchPage:
    """Search the documents your agency sent or still holds, and digitised records, ranked (BM25),
    with highlighted snippets; see docs/archive.md for the query syntax. Words match with or
    without diacritics; filters narrow; `facets=true` counts; pass `next_cursor` back as `cursor`."""
    filters = SearchFilters(
        issuer=issuer.upper() if issuer else None,
        subtree=subtree,
        recipient=recipient.upper() if recipient else None,
        type_name=type,
        date_from=date_from,
        date_to=date_to,
        urgency=urgency,
        status=status,
        signature=signature,
        source=source,
    )
    return await search.search(q, reader_of(principal), filters, cursor=cursor, limit=limit, facets=facets)
