"""Search: one Tantivy query holding the words, the filters and who may read (never a filter
applied after ranking), then the page's records read from the database for their snippets."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import tantivy

from services.archive.errors import ArchiveFilterInvalidError, ArchiveQueryInvalidError
from services.archive.record.service import Reader
from services.archive.search.index import ArchiveIndex, searchable_text
from services.archive.search.query import ParsedQuery, parse, text_query
from services.archive.search.repository import SNIPPET_SCAN_CHARS, SearchRepository
from services.archive.search.schemas import FacetCount, SearchFacets, SearchHit, SearchPage
from shared.pagination import decode_cursor, encode_cursor
from shared.text import fold

MAX_OFFSET = 10_000
SNIPPET_CHARS = 240

SubtreeLookup = Callable[[str], Awaitable[list[str] | None]]


@dataclass(frozen=True)
class SearchFilters:
    issuer: str | None = None
    subtree: bool = False
    recipient: str | None = None
    type_name: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    urgency: int | None = None
    status: str | None = None
    signature: str | None = None
    source: str | None = None


def _day(value: dt.date) -> dt.datetime:
    return dt.datetime(value.year, value.month, value.day)  # tantivy: naive, UTC


def _const(query: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.const_score_query(query, 0.0)


class SearchService:
    def __init__(self, index: ArchiveIndex, records: SearchRepository, subtree: SubtreeLookup) -> None:
        self.index = index
        self.records = records
        self.subtree = subtree

    async def filter_clauses(self, reader: Reader, filters: SearchFilters) -> list[tantivy.Query]:
        """Who may read, and the filters, as clauses every match must meet."""
        schema = self.index.schema
        Query = tantivy.Query
        clauses: list[tantivy.Query] = []
        if not reader.auditor:
            clauses.append(Query.term_query(schema, "readers", reader.agency_code or "-"))
        if filters.issuer:
            codes = [filters.issuer]
            if filters.subtree:
                found = await self.subtree(filters.issuer)
                if found is None:
                    raise ArchiveFilterInvalidError(f"No agency {filters.issuer} in the directory")
                codes = found
            clauses.append(Query.term_set_query(schema, "issuer", codes))
        if filters.recipient:
            clauses.append(Query.term_query(schema, "recipients", filters.recipient))
        if filters.type_name:
            clauses.append(Query.term_query(schema, "type_key", fold(filters.type_name).strip()))
        if filters.date_from or filters.date_to:
            if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
                raise ArchiveFilterInvalidError("date_from is after date_to")
            lower = _day(filters.date_from or dt.date(1900, 1, 1))  # tantivy dates: nanoseconds in an i64
            upper = _day(filters.date_to or dt.date(2200, 1, 1))
            clauses.append(Query.range_query(schema, "date", tantivy.FieldType.Date, lower, upper))
        if filters.urgency is not None:
            clauses.append(Query.term_query(schema, "urgency", filters.urgency))
        if filters.status:
            clauses.append(self._status_clause(reader, filters.status))
        if filters.signature:
            clauses.append(Query.term_query(schema, "verdict", filters.signature))
        if filters.source:
            clauses.append(Query.term_query(schema, "source", filters.source))
        return clauses

    def _status_clause(self, reader: Reader, status: str) -> tantivy.Query:
        """A delivery status as the reader sees it: its own copy's, or any copy's of what it sent."""
        schema = self.index.schema
        Query, Occur = tantivy.Query, tantivy.Occur
        if reader.auditor:
            return Query.term_query(schema, "status", f"*:{status}")
        own = Query.term_query(schema, "status", f"{reader.agency_code}:{status}")
        sent = Query.boolean_query(
            [
                (Occur.Must, Query.term_query(schema, "issuer", reader.agency_code or "-")),
                (Occur.Must, Query.term_query(schema, "status", f"*:{status}")),
            ]
        )
        return Query.boolean_query([(Occur.Should, own), (Occur.Should, sent)])

    async def search(
        self,
        q: str,
        reader: Reader,
        filters: SearchFilters,
        *,
        cursor: str | None,
        limit: int,
        facets: bool = False,
    ) -> SearchPage:
        """Rank the records the reader may read that match ``q`` and the filters; one page."""
        parsed = parse(q)
        offset = int(decode_cursor(cursor, 1)[0]) if cursor else 0  # type: ignore[arg-type]
        if offset < 0 or offset > MAX_OFFSET:
            raise ArchiveQueryInvalidError(f"Results past the first {MAX_OFFSET} are not served; narrow the query")
        Occur = tantivy.Occur
        clauses = [(Occur.Must, text_query(self.index.schema, parsed))]
        clauses += [(Occur.Must, _const(c)) for c in await self.filter_clauses(reader, filters)]
        query = tantivy.Query.boolean_query(clauses)
        searching = asyncio.to_thread(self.index.search, query, limit=limit, offset=offset)
        if facets:  # the aggregation beside the top-k search, not after it (Tantivy runs both without the GIL)
            (hits, total), counted = await asyncio.gather(searching, asyncio.to_thread(self.index.facets, query))
        else:
            (hits, total), counted = await searching, None
        rows = await self.records.hits([_uuid(i) for _, i in hits])
        pattern = highlight_pattern(parsed)
        items = [hit_of(rows[_uuid(i)], score, pattern) for score, i in hits if _uuid(i) in rows]
        more = offset + len(hits) < total and len(hits) == limit
        return SearchPage(
            total=total,
            items=items,
            facets=_facets(counted) if counted is not None else None,
            next_cursor=encode_cursor(offset + limit) if more and offset + limit <= MAX_OFFSET else None,
        )


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


def _facets(counted: dict[str, list[tuple[str, int]]]) -> SearchFacets:
    return SearchFacets(**{name: [FacetCount(value=v, count=c) for v, c in values] for name, values in counted.items()})


def highlight_pattern(parsed: ParsedQuery) -> re.Pattern[str] | None:
    """A pattern over folded text matching the query's words (and its prefixes' words)."""
    alternatives = [re.escape(t) for t in parsed.highlight_terms()]
    alternatives += [re.escape(p) + r"[^\W_]*" for p in parsed.prefixes]
    if not alternatives:
        return None
    alternatives.sort(key=len, reverse=True)
    return re.compile(r"(?<![^\W_])(?:" + "|".join(alternatives) + r")(?![^\W_])")


def spans(pattern: re.Pattern[str] | None, text: str) -> list[tuple[int, int]]:
    """Where the query's words are in ``text``: found in its folding, which keeps every offset."""
    if pattern is None:
        return []
    return [m.span() for m in pattern.finditer(fold(text))]


def snippet(pattern: re.Pattern[str] | None, text: str) -> tuple[str, list[tuple[int, int]]]:
    """The passage of ``text`` (``SNIPPET_CHARS`` long) with the most matches, and their ranges in it."""
    found = spans(pattern, text[:SNIPPET_SCAN_CHARS])
    if not found:
        return text[:SNIPPET_CHARS], []
    best, best_count, last = found[0][0], 0, 0
    for first, (start, _) in enumerate(found):  # a sliding window over the matches: linear
        last = max(last, first)
        while last + 1 < len(found) and found[last + 1][1] <= start + SNIPPET_CHARS:
            last += 1
        if last - first + 1 > best_count:
            best, best_count = start, last - first + 1
    begin = max(0, best - SNIPPET_CHARS // 4)
    while begin > 0 and not text[begin - 1].isspace() and best - begin < SNIPPET_CHARS // 2:
        begin -= 1
    end = min(len(text), begin + SNIPPET_CHARS)
    return text[begin:end], [(s - begin, e - begin) for s, e in found if s >= begin and e <= end]


def hit_of(record: Any, score: float, pattern: re.Pattern[str] | None) -> SearchHit:
    """A hit from the record's fields (a row of :meth:`SearchRepository.hits`)."""
    body = record.text if record.text else searchable_text(record)
    passage, marks = snippet(pattern, body)
    return SearchHit(
        document_id=record.document_id,
        score=round(score, 4),
        source=record.source,
        code=record.code,
        type_name=record.type_name,
        subject=record.subject,
        sender_code=record.sender_code,
        promulgation_date=record.promulgation_date,
        signature_verdict=record.signature_verdict,
        subject_highlights=spans(pattern, record.subject),
        snippet=passage,
        snippet_highlights=marks,
    )
