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
