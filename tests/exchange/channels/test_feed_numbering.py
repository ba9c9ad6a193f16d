"""An agency's feed entries are numbered 1, 2, 3 … in the order their transactions commit. On
PostgreSQL a pull agency's entries are numbered at the commit (migration 0011's deferred trigger),
so a send does not hold the agency's counter across its round trips: another send to the same
agency commits meanwhile. The numbers stay gapless and in commit order, a reader never sees a
number before a smaller one that commits later, and the entries the dispatcher gets are numbered
when written (their event carries the number)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from services.exchange.feed.repository import FeedRepository
from services.exchange.models import FeedEntry
from shared.db import Database, utcnow

A, B = "H01.1", "H01.2"


def entry_for(agency_code: str, n: int = 0) -> dict[str, Any]:
    return {
        "agency_code": agency_code,
        "type": "delivery.received",
        "document_id": uuid.uuid4(),
        "delivery_id": uuid.uuid4(),
        "data": {"n": n},
        "created_at": utcnow(),
    }


@pytest.fixture
async def db(migrated_pg_database: str) -> AsyncIterator[Database]:
    database = Database(migrated_pg_database, "exchange")
    yield database
    await database.dispose()


async def numbers(db: Database, agency_code: str) -> list[tuple[int | None, int]]:
    """(seq, data n) of an agency's committed entries, by number."""
    query = select(FeedEntry.seq, FeedEntry.data).where(FeedEntry.agency_code == agency_code).order_by(FeedEntry.seq)
    async with db.session() as session:
        return [(seq, int(data["n"])) for seq, data in (await session.execute(query)).all()]


async def test_a_send_to_an_agency_does_not_wait_for_another_ones_commit(db: Database) -> None:
    async with db.session() as first:
        await FeedRepository(first).append([entry_for(A, 1)], number_now=set())
        await first.flush()  # written, not committed: the counter is not taken yet
        async with db.session() as second:
            await asyncio.wait_for(FeedRepository(second).append([entry_for(A, 2)], number_now=set()), 5)
            await asyncio.wait_for(second.commit(), 5)  # would wait for the first's commit if it held the counter
        assert await numbers(db, A) == [(1, 2)]
    assert await numbers(db, A) == [(1, 2), (2, 1)]  # numbered in the order they committed


async def test_entries_the_dispatcher_gets_are_numbered_when_written_with_the_others(db: Database) -> None:
    async with db.session() as session:  # all pull: at the commit
        rows = await FeedRepository(session).append([entry_for(B, 1), entry_for(A, 1)], number_now=set())
        assert [r["seq"] for r in rows] == [None, None]
    assert await numbers(db, A) == [(1, 1)]
    assert await numbers(db, B) == [(1, 1)]
    async with db.session() as session:  # one the dispatcher gets: every entry of the change now
        rows = await FeedRepository(session).append([entry_for(B, 2), entry_for(A, 2), entry_for(B, 3)], number_now={A})
        assert [(r["agency_code"], r["seq"]) for r in rows] == [(B, 2), (A, 2), (B, 3)]
    assert await numbers(db, B) == [(1, 1), (2, 2), (3, 3)]  # in the order given
    async with db.session() as session:  # all numbered now: as on SQLite
        rows = await FeedRepository(session).append([entry_for(B, 3)])
        assert rows[0]["seq"] == 4
    assert await numbers(db, B) == [(1, 1), (2, 2), (3, 3), (4, 3)]


async def test_numbers_are_gapless_in_commit_order_and_a_reader_never_skips_one(db: Database) -> None:
    """Writers commit at random moments, some roll back; a reader polling ``seq > cursor`` must get
    each number once, in order: a page that skipped a number would never see it."""
    rng = random.Random(7)
    done = asyncio.Event()
    seen: list[int] = []
    committed: list[int] = []

    async def writer(n: int) -> None:
        await asyncio.sleep(rng.random() * 0.05)
        async with db.session() as session:
            # some numbered when written (as the dispatcher's are), the others at the commit
            await FeedRepository(session).append([entry_for(A, n)], number_now={A} if n % 3 == 0 else set())
            await session.flush()
            await asyncio.sleep(rng.random() * 0.05)
            if n % 7 == 0:
                await session.rollback()
                return
        committed.append(n)

    async def reader() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            query = select(FeedEntry.seq).where(FeedEntry.agency_code == A, FeedEntry.seq > cursor)
            async with db.session() as session:
                page = [int(s) for s in (await session.execute(query.order_by(FeedEntry.seq))).scalars()]
            assert page == list(range(cursor + 1, cursor + 1 + len(page))), f"after {cursor} a gap: {page}"
            seen.extend(page)
            cursor = page[-1] if page else cursor
            if finished:
                return
            await asyncio.sleep(0.005)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(n) for n in range(1, 41)))
    done.set()
    await reading
    assert seen == list(range(1, len(committed) + 1))
    assert sorted(n for _, n in await numbers(db, A)) == sorted(committed)  # the rolled back took no number


async def test_crossed_agencies_in_two_transactions_commit_without_a_deadlock(db: Database) -> None:
    async def send(order: list[str], n: int) -> None:
        async with db.session() as session:
            await FeedRepository(session).append([entry_for(code, n) for code in order], number_now=set())
            await session.flush()
            await asyncio.sleep(0.05)

    for round_ in range(5):
        await asyncio.wait_for(asyncio.gather(send([A, B], round_), send([B, A], round_)), 10)
    assert [seq for seq, _ in await numbers(db, A)] == list(range(1, 11))
    assert [seq for seq, _ in await numbers(db, B)] == list(range(1, 11))


async def test_a_change_numbered_now_and_one_at_its_commit_over_the_same_agencies_do_not_deadlock(
    db: Database,
) -> None:
    """B looked up as the dispatcher's in one send (not cached yet, say), as pull in the other: the
    first takes A and B now, the second both at its commit, each in code order."""

    async def send(number_now: set[str], hold: float) -> None:
        async with db.session() as session:
            await FeedRepository(session).append([entry_for(A), entry_for(B)], number_now=number_now)
            await session.flush()
            await asyncio.sleep(hold)

    for _ in range(3):
        await asyncio.wait_for(asyncio.gather(send({B}, 0.1), send(set(), 0.0)), 10)
    assert [seq for seq, _ in await numbers(db, A)] == list(range(1, 7))
    assert [seq for seq, _ in await numbers(db, B)] == list(range(1, 7))
