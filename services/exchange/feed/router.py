"""Feed endpoints: everything addressed to the caller's agency, in order, resumable, long-polled."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.exchange.dependencies import FeedReaderDep
from services.exchange.feed.schemas import FeedPage
from services.exchange.feed.service import MAX_WAIT_SECONDS
from shared.auth import Principal, Scope, agency_of, require_scope

router = APIRouter(prefix="/v1/feed", tags=["feed"])
ReceiverDep = Annotated[Principal, require_scope(Scope.RECEIVE)]


@router.get("", response_model=FeedPage)
async def read_feed(
    reader: FeedReaderDep,
    principal: ReceiverDep,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor of the previous call")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_SECONDS, description="seconds to hold the call until an entry arrives")
    ] = 0,
) -> FeedPage:
    """Your agency's feed: documents delivered to it, recalls of them, and the statuses recipients
    report on the documents it sent (and transfers that failed), numbered in order.

    Resume with `cursor=<next_cursor>`; with `wait=` (up to 25 s) the call answers as soon as an
    entry arrives. Reading acknowledges nothing: report status 01 for each delivery you took.
    """
    return await reader.read(agency_of(principal), cursor=cursor, limit=limit, wait=wait)
