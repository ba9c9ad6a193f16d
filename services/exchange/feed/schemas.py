"""Feed bodies: a page of entries and the cursor to resume after it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.exchange.events import FeedEntryAdded


class FeedPage(BaseModel):
    entries: list[FeedEntryAdded] = Field(description="in order; empty when nothing came within `wait`")
    next_cursor: str = Field(description="pass it back as `cursor` to resume after the last entry (always set)")
    last_seq: int = Field(description="the number of the last entry returned (or the cursor's, when none)")
