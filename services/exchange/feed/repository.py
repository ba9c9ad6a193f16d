"""SQL for agencies' feeds: append entries numbered per agency, read them after a number."""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite

from services.exchange.models import FeedCounter, FeedEntry
from shared.bulk import insert_rows
from shared.db import new_id
from shared.repository import Repository

FEED_ENTRY: Table = FeedEntry.__table__  # type: ignore[assignment]
FEED_COUNTER: Table = FeedCounter.__table__  # type: ignore[assignment]


@functools.cache
def _counter_upsert(dialect_name: str) -> Any:
    """The counters' upsert (``last_seq`` raised by the count given, the new values returned), built
    once per dialect: the table, not the entity, so no ORM bulk machinery on this path."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    counter = FEED_COUNTER.c
    upsert = dialect.insert(FEED_COUNTER)
    return upsert.on_conflict_do_update(
        index_elements=[counter.agency_code],
        set_={"last_seq": counter.last_seq + upsert.excluded.last_seq},
    ).returning(counter.agency_code, counter.last_seq)


class FeedRepository(Repository[FeedEntry]):
    model = FeedEntry

    async def append(
        self, entries: Sequence[dict[str, Any]], *, number_now: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """Insert entries (``agency_code``, ``type``, ``document_id``, ``delivery_id``, ``data``,
        ``created_at``), numbered 1, 2, 3 … per agency in the order their transactions commit;
        return them with their ``id`` and ``seq``.

        On PostgreSQL, when no entry's agency is in ``number_now``, the entries are numbered when
        the transaction commits (their ``seq`` is None until then: migration 0011's deferred
        trigger takes the agencies' counter rows for the commit alone, so the sends to one agency
        do not queue behind each other's round trips). Otherwise (an agency in ``number_now``,
        ``number_now`` None, and always on SQLite) every entry is numbered now: each agency's
        counter row is locked until the transaction ends. Either way the counters are taken in code
        order, all now or all at the commit, so two transactions never wait on each other in a
        circle; an agency's entries commit in the order of their numbers, and a reader who saw
        number n never misses an n-1 committed later."""
        if not entries:
            return []
        dialect = self.session.get_bind().dialect.name
        at_commit = number_now is not None and not any(e["agency_code"] in number_now for e in entries)
        if dialect == "postgresql" and at_commit:
            # all at the commit, in code order as the counters' upsert locks them (the trigger
            # fires for the rows in the order they were inserted)
            now, later = [], sorted(entries, key=lambda e: e["agency_code"])
        else:
            # all now: a transaction that took some counters now and the others at its commit
            # could take two of them in the other order than a transaction that takes both at its
            # commit (a deadlock); all now or all at the commit, each in code order, cannot
            now, later = list(entries), []
        numbered = [{**entry, "id": entry.get("id") or new_id(), "seq": None} for entry in later]
        if now:
            counts = Counter(entry["agency_code"] for entry in now)
            codes = sorted(counts)
            statement = _counter_upsert(dialect)
            # parameters apart from the statement: its compiled form is cached (a .values([...]) list is not)
            rows = [{"agency_code": c, "last_seq": counts[c]} for c in codes]
            last = {code: int(seq) for code, seq in (await self.session.execute(statement, rows)).all()}
            next_seq = {code: last[code] - counts[code] + 1 for code in codes}
            for entry in now:
                code = entry["agency_code"]
                numbered.append({**entry, "id": entry.get("id") or new_id(), "seq": next_seq[code]})
                next_seq[code] += 1
        # Core, not the ORM bulk machinery: the rows are plain values (deferred with the others in a
        # deferred_inserts block: the counters' rows stay locked until the transaction ends)
        await insert_rows(self.session, FEED_ENTRY, numbered)
        return numbered

    async def after(self, agency_code: str, seq: int, limit: int) -> Sequence[FeedEntry]:
        """Return an agency's entries numbered above ``seq``, in order."""
        query = (
            select(FeedEntry)
            .where(FeedEntry.agency_code == agency_code, FeedEntry.seq > seq)
            .order_by(FeedEntry.seq)
            .limit(limit)
        )
        return (await self.session.execute(query)).scalars().all()

    async def entry(self, entry_id: uuid.UUID) -> FeedEntry | None:
        """Return one entry by id."""
        return await self.get(entry_id)
