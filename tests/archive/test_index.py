"""The index is derived from the records: rebuilt whole when missing or corrupt (never served
half-built), fed in batches, idempotent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tantivy

from services.archive.consumers import on_documents_submitted
from services.archive.indexer import IndexFeeder, rebuild
from services.archive.models import messaging
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import Reader
from services.archive.search.index import ArchiveIndex, claim_slot
from services.archive.search.query import parse, text_query
from services.settings import Settings
from shared.db import Database
from shared.messaging import IdempotentBatchConsumer
from tests.archive.test_records import submitted
from tests.conftest import TEMPLATES


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    settings = Settings(var_dir=tmp_path)
    await TEMPLATES.copy_sqlite(settings, ("archive",))
    db = Database(settings.database_url_for("archive"), "archive")
    yield db
    await db.dispose()


def matches(index: ArchiveIndex, q: str, reader: Reader) -> int:
    query = tantivy.Query.boolean_query(
        [
            (tantivy.Occur.Must, text_query(index.schema, parse(q))),
            (tantivy.Occur.Must, tantivy.Query.term_query(index.schema, "readers", reader.agency_code or "")),
        ]
    )
    return index.search(query, limit=10, offset=0)[1]


async def test_a_missing_or_corrupt_index_is_rebuilt_whole(database: Database, tmp_path: Path) -> None:
    consumer = IdempotentBatchConsumer(database, messaging, "archive.documents", on_documents_submitted)
    await consumer.handle_batch([submitted(n, "000.00.02.H41") for n in range(1, 6)])
    slot, lock = claim_slot(tmp_path / "index")
    other, other_lock = claim_slot(tmp_path / "index")  # a second replica on the host: a slot of its own
    assert (slot.name, other.name) == ("slot-0", "slot-1")
    other_lock.close()

    index = ArchiveIndex(slot)
    assert not index.is_complete()
    progress: list[tuple[int, int]] = []
    assert await rebuild(index, database, progress=lambda done, total: progress.append((done, total))) == 5
    assert progress[-1] == (5, 5)
    assert index.is_complete() and matches(index, "ke hoach so", Reader("000.00.02.H41")) == 5
    assert matches(index, "ke hoach so", Reader("000.00.09.H41")) == 0

    feeder = IndexFeeder(index, database, interval=0.1)
    assert await feeder.catch_up() == 5  # the feeder's first pass takes what the rebuild took: no change
    assert await feeder.catch_up() == 0
    await consumer.handle_batch([submitted(6, "000.00.02.H41")])
    assert await feeder.catch_up() == 1
    assert index.num_docs == 6

    async with database.session() as session:  # indexing again changes nothing
        rows = [row async for chunk in ArchiveRecordRepository(session).chunks(100) for row in chunk]
    index.upsert(rows)
    index.commit(None)
    assert index.num_docs == 6

    index.close()
    (slot / "meta.json").write_text("{ corrupt")
    assert not index.is_complete()
    (slot.with_name("slot-0.building")).mkdir()  # a rebuild killed half-way: never opened, replaced
    assert await rebuild(index, database) == 6
    assert matches(index, "ke hoach so 6", Reader(SENDER_OF_TESTS)) == 1
    assert not slot.with_name("slot-0.building").exists()
    index.close()
    lock.close()


SENDER_OF_TESTS = "000.00.01.H41"


def test_the_notation_is_one_clause_and_words_fold() -> None:
    parsed = parse('24/KH-UBND "Văn bản" điện* -nháp Đồng')
    assert (parsed.notations, parsed.phrases, parsed.prefixes, parsed.excluded, parsed.words) == (
        ["24/KH-UBND"],
        [["van", "ban"]],
        ["dien"],
        [["nhap"]],
        ["dong"],
    )


async def test_the_feeder_gathers_more_a_commit_while_documents_arrive_fast(database: Database, tmp_path: Path) -> None:
    """A Tantivy commit costs about the same whatever it holds: while records change faster than
    BUSY_RECORDS_PER_SECOND, the feeder's passes are ``max_interval`` apart (each commit holds
    more); a slower trickle, and a record after an idle spell, are taken ``interval`` apart."""
    import asyncio
    import time

    from services.archive.indexer import BUSY_RECORDS_PER_SECOND

    assert BUSY_RECORDS_PER_SECOND == 20.0
    slot, lock = claim_slot(tmp_path / "index")
    index = ArchiveIndex(slot)
    await rebuild(index, database)
    rule = IndexFeeder(index, database, interval=0.5)
    assert rule.max_interval == 2.0  # four times the interval by default
    assert [rule.next_interval(n, cycle) for n, cycle in [(0, 0.5), (10, 0.5), (11, 0.5), (40, 2.0), (41, 2.0)]] == [
        0.5,  # idle
        0.5,  # 20 a second: not faster than the threshold
        2.0,  # 22 a second
        0.5,  # 20 a second over a long pass
        2.0,
    ]
    assert rule.next_interval(5, 0.1) == 0.5  # a pass sooner than the interval is counted over the interval
    assert IndexFeeder(index, database, interval=0.5, max_interval=0.2).max_interval == 0.5  # never below it

    consumer = IdempotentBatchConsumer(database, messaging, "archive.documents", on_documents_submitted)
    feeder = IndexFeeder(index, database, interval=0.05, max_interval=0.6)
    passes: list[tuple[float, int, float]] = []  # each pass's start, what it indexed, the wait it chose
    catch_up, next_interval = feeder.catch_up, feeder.next_interval
    started: list[float] = []

    async def timed_catch_up() -> int:
        started.append(time.monotonic())
        return await catch_up()

    def recorded(indexed: int, cycle: float) -> float:
        wait = next_interval(indexed, cycle)
        passes.append((started[-1], indexed, wait))
        return wait

    feeder.catch_up = timed_catch_up  # type: ignore[method-assign]
    feeder.next_interval = recorded  # type: ignore[method-assign]

    async def until(condition: object, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, passes
            await asyncio.sleep(0.02)

    task = asyncio.create_task(feeder.run())
    try:
        await until(lambda: passes)  # the first look: nothing new
        # 200 records in one pass: busy unless that pass came 10 s after the one before
        await consumer.handle_batch([submitted(n, "000.00.02.H41") for n in range(1, 201)])
        feeder.wake()
        await until(lambda: any(indexed for _, indexed, _ in passes))  # its pass has chosen its wait
        busy = next(i for i, (_, indexed, _) in enumerate(passes) if indexed)
        assert index.num_docs == 200
        assert passes[busy][1:] == (200, 0.6)  # the next pass waits max_interval
        feeder.wake()  # woken meanwhile: still not sooner
        await until(lambda: len(passes) > busy + 1)
        assert passes[busy + 1][0] - passes[busy][0] >= 0.6 - 1e-3
        await until(lambda: passes[-1][1] == 0 and passes[-1][2] == 0.05)  # idle again: the short interval
        await consumer.handle_batch([submitted(201, "000.00.02.H41")])
        feeder.wake()
        await until(lambda: any(p[1] for p in passes[busy + 1 :]))
        lone = next(p for p in passes[busy + 1 :] if p[1])
        assert index.num_docs == 201
        assert lone[1:] == (1, 0.05)  # a lone record after an idle spell: searchable within the interval
    finally:
        feeder.stop()
        await task
        index.close()
        lock.close()


async def test_under_load_the_feeders_passes_come_max_interval_apart_and_stop_ends_the_wait() -> None:
    """A busy pass is followed by the next one ``max_interval`` later — not that plus an idle wait
    for a wake-up (another replica's records wake no one here) — and ``stop()`` ends a long wait."""
    import asyncio
    import time

    feeder = IndexFeeder(None, None, interval=1.0, max_interval=2.0)  # type: ignore[arg-type]
    starts: list[float] = []

    async def catch_up() -> int:
        starts.append(time.monotonic())
        if len(starts) == 2:
            feeder.stop()
        return 30

    feeder.catch_up = catch_up  # type: ignore[method-assign]
    await asyncio.wait_for(feeder.run(), 10)
    gap = starts[1] - starts[0]
    assert 2.0 - 1e-3 <= gap < 2.8, gap  # max_interval; 3.0 with the idle wait for a wake-up after it

    busy = IndexFeeder(None, None, interval=0.5, max_interval=60)  # type: ignore[arg-type]

    async def one_busy_pass() -> int:
        return 1000

    busy.catch_up = one_busy_pass  # type: ignore[method-assign]
    task = asyncio.create_task(busy.run())
    await asyncio.sleep(0.2)  # in its 60 s wait
    began = time.monotonic()
    busy.stop()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - began < 2


async def test_a_pass_that_fails_before_its_commit_is_read_again_whole(database: Database, tmp_path: Path) -> None:
    """The records a pass indexed are marked seen only once committed: after a failed commit the
    next pass takes them again (marked before, it skipped them, and they stayed unsearchable until
    they changed again)."""
    slot, lock = claim_slot(tmp_path / "index")
    index = ArchiveIndex(slot)
    await rebuild(index, database)
    feeder = IndexFeeder(index, database, interval=0.1)
    assert await feeder.catch_up() == 0
    consumer = IdempotentBatchConsumer(database, messaging, "archive.documents", on_documents_submitted)
    await consumer.handle_batch([submitted(n, "000.00.02.H41") for n in range(1, 4)])
    commit = index.commit

    def disk_full(watermark: object) -> None:
        raise OSError(28, "No space left on device")

    index.commit = disk_full  # type: ignore[method-assign,assignment]
    with pytest.raises(OSError):
        await feeder.catch_up()
    index.commit = commit  # type: ignore[method-assign]
    assert await feeder.catch_up() == 3
    assert index.num_docs == 3 and matches(index, "ke hoach so", Reader("000.00.02.H41")) == 3
    index.close()
    lock.close()
