"""Search bodies."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field


class SearchHit(BaseModel):
    document_id: uuid.UUID
    score: float
    source: str
    code: str
    type_name: str
    subject: str
    sender_code: str
    promulgation_date: dt.date | None
    signature_verdict: str | None
    subject_highlights: list[tuple[int, int]] = Field(
        description="[start, end) character ranges of `subject` that match the query"
    )
    snippet: str = Field(description="a passage of the text around the best matches (the subject without text)")
    snippet_highlights: list[tuple[int, int]] = Field(description="[start, end) ranges of `snippet` that match")


class FacetCount(BaseModel):
    value: str
    count: int


class SearchFacets(BaseModel):
    type: list[FacetCount]
    issuer: list[FacetCount]
    year: list[FacetCount]


class SearchPage(BaseModel):
    total: int = Field(description="how many records match (that you may read)")
    items: list[SearchHit]
    facets: SearchFacets | None = Field(default=None, description="with `facets=true`: counts of every match")
    next_cursor: str | None
