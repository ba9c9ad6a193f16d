"""The text enricher's batches: records claimed and returned by one statement, their results written
by an executemany per set of columns, the claim's semantics (a stale claim taken again, the
exchange away: the record waits), and the attachments read by the extraction's worker from the
blob store when the archive sees it."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select, update

from services.archive.consumers import recording
from services.archive.extraction import PDF
from services.archive.extractor import TextExtractor
from services.archive.indexer import TextEnricher
from services.archive.models import ArchiveRecord, messaging
from services.archive.record.repository import ArchiveRecordRepository
from services.demo.pdf import make_pdf
from shared.blobs import blob_path
from shared.db import Database, utcnow
from shared.messaging import IdempotentBatchConsumer
from tests.archive.test_records import submitted


@pytest.fixture
def database(archive_database: Database) -> Database:
    return archive_database


@pytest.fixture
async def extractor() -> AsyncIterator[TextExtractor]:
    worker = TextExtractor(timeout_seconds=30, memory_mb=512, languages="vie", max_chars=10_000)
    try:
        yield worker
    finally:
        await worker.shutdown()


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The kinds of SQL statement the database runs meanwhile (an executemany counts once; a
    ``WITH … UPDATE`` is an UPDATE)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        kind = statement.lstrip().split(None, 1)[0].upper()
        seen.append("UPDATE" if "UPDATE archive_record" in statement else kind)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def store(root: Path, data: bytes) -> str:
    sha256 = hashlib.sha256(data).hexdigest()
    path = blob_path(root, sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha256


async def record(database: Database, n: int, attachments: list[dict[str, Any]] | None) -> uuid.UUID:
    """A record of a submitted event, waiting for its text (``attachments`` None: an event of an
    older exchange, without the details)."""
    envelope = submitted(n)
    if attachments is not None:
        envelope.data.update(details={"page_count": 1}, attachments=attachments)
    await IdempotentBatchConsumer(database, messaging, "archive.documents", recording(lambda _n: None)).handle_batch(
        [envelope]
    )
    return uuid.UUID(envelope.data["document_id"])


def pdf_attachment(sha256: str, size: int = 1000) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "file_name": "ke-hoach.pdf", "content_type": PDF, "size": size, "sha256": sha256}


async def state(database: Database, document_id: uuid.UUID) -> ArchiveRecord:
    async with database.session() as session:
        found = await session.get(ArchiveRecord, document_id)
        assert found is not None
        session.expunge(found)
        return found


def enricher(database: Database, extractor: TextExtractor, tmp_path: Path, **options: Any) -> TextEnricher:
    # the exchange away: nothing listens on this port (connections refused)
    exchange = httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=2)
    return TextEnricher(
        database,
        extractor,
        exchange=exchange,
        authorization=lambda: "Bearer x",
        files_dir=tmp_path / "files",
        blob_dir=tmp_path / "blobs",
        max_bytes=1_000_000,
        max_chars=10_000,
        changed=lambda: None,
        **options,
    )


async def test_a_batch_is_claimed_and_read_with_one_statement(database: Database, tmp_path: Path) -> None:
    ids = [await record(database, n, [pdf_attachment("a" * 64)]) for n in range(5)]
    now = utcnow()
    with statements(database) as seen:
        async with database.session() as session:
            first = await ArchiveRecordRepository(session).claim_pending_text(now, now - dt.timedelta(minutes=10), 3)
    assert [s for s in seen if s not in ("BEGIN", "COMMIT")] == ["UPDATE"]  # no SELECT before nor after
    assert len(first) == 3 and {c.document_id for c in first} <= set(ids)
    assert all(c.source == "exchanged" and c.details and c.details["page_count"] == 1 for c in first)
    assert (await state(database, first[0].document_id)).text_status == "extracting"

    async with database.session() as session:
        rest = await ArchiveRecordRepository(session).claim_pending_text(now, now - dt.timedelta(minutes=10), 3)
        assert {c.document_id for c in rest} == set(ids) - {c.document_id for c in first}
        # claimed a moment ago: no one claims them again before they go stale
        assert await ArchiveRecordRepository(session).claim_pending_text(now, now - dt.timedelta(minutes=10), 3) == []
    # a replica claimed this one 11 minutes ago and stopped: claimed again
    async with database.session() as session:
        await session.execute(
            update(ArchiveRecord)
            .where(ArchiveRecord.document_id == ids[0])
            .values(text_claimed_at=now - dt.timedelta(minutes=11))
        )
    async with database.session() as session:
        again = await ArchiveRecordRepository(session).claim_pending_text(now, now - dt.timedelta(minutes=10), 3)
    assert [c.document_id for c in again] == [ids[0]]


async def test_a_batch_is_filled_done_failed_or_later_with_one_update_per_kind(
    database: Database, extractor: TextExtractor, tmp_path: Path
) -> None:
    good = store(tmp_path / "blobs", make_pdf(["Hop giao ban quy IV"]))
    broken = store(tmp_path / "blobs", b"%PDF-1.7\n garbage without objects")
    done = await record(database, 1, [pdf_attachment(good)])
    failed = await record(database, 2, [pdf_attachment(broken)])
    later = await record(database, 3, None)  # the details to fetch from the exchange, which is away
    filler = enricher(database, extractor, tmp_path)
    with statements(database) as seen:
        assert await filler.enrich_some() == 3
    assert seen.count("UPDATE") == 3  # the claim; the results in two executemany (two sets of columns)

    first, second, third = [await state(database, i) for i in (done, failed, later)]
    assert first.text_status == "done" and "Hop giao ban" in first.text and first.text_error is None
    assert first.details["page_count"] == 1
    assert second.text_status == "failed" and second.text_error and "PDF" in second.text_error
    assert (third.text_status, third.text_claimed_at) == ("pending", None)  # waits, tried again next pass
    assert first.changed_at > first.archived_at
    await filler.exchange.aclose()


async def test_a_blob_whose_hash_does_not_match_is_not_read(
    database: Database, extractor: TextExtractor, tmp_path: Path
) -> None:
    """The worker reads the attachment from the store by its hash, and refuses a file whose bytes do
    not have that hash (the record then waits for the exchange to send the bytes)."""
    text = make_pdf(["Van ban that"])
    sha256 = store(tmp_path / "blobs", text)
    assert (await extractor.extract_blob(tmp_path / "blobs", sha256, PDF, 1_000_000)) is not None
    blob_path(tmp_path / "blobs", sha256).write_bytes(make_pdf(["Van ban gia"]))
    assert await extractor.extract_blob(tmp_path / "blobs", sha256, PDF, 1_000_000) is None
    assert await extractor.extract_blob(tmp_path / "blobs", "f" * 64, PDF, 1_000_000) is None  # not there
    assert await extractor.extract_blob(tmp_path / "blobs", "../../etc/passwd", PDF, 1_000_000) is None
    small = make_pdf(["Van ban nho"])
    small_sha256 = store(tmp_path / "blobs", small)
    assert await extractor.extract_blob(tmp_path / "blobs", small_sha256, PDF, len(small)) is not None
    assert await extractor.extract_blob(tmp_path / "blobs", small_sha256, PDF, len(small) - 1) is None  # too large

    tampered = await record(database, 1, [pdf_attachment(sha256)])
    filler = enricher(database, extractor, tmp_path)
    assert await filler.enrich_some() == 1
    kept = await state(database, tampered)
    assert (kept.text_status, kept.text) == ("pending", "")  # not the forged text: the exchange, later
    await filler.exchange.aclose()


async def test_the_enricher_lingers_for_a_batch_after_a_wake_up(
    database: Database, extractor: TextExtractor, tmp_path: Path
) -> None:
    """Woken by the consumer that recorded a first record, the enricher waits the linger for those
    that follow and claims them together."""
    sha256 = store(tmp_path / "blobs", make_pdf(["Van ban"]))
    filler = enricher(database, extractor, tmp_path, linger=1.0)
    running = asyncio.create_task(filler.run())
    try:
        for _ in range(100):  # its first look finds nothing
            if filler.passes:
                break
            await asyncio.sleep(0.02)
        assert (filler.passes, filler.claimed) == (1, 0)
        consumer = IdempotentBatchConsumer(database, messaging, "archive.documents", recording(filler.wake))
        began = asyncio.get_running_loop().time()
        for n in range(3):
            envelope = submitted(n)
            envelope.data.update(details={}, attachments=[pdf_attachment(sha256)])
            await consumer.handle_batch([envelope])
            await asyncio.sleep(0.05)
        for _ in range(100):
            if filler.claimed == 3:
                break
            await asyncio.sleep(0.05)
        assert (filler.passes, filler.claimed) == (2, 3)  # one claim for the three
        # woken by the consumer's commit and claimed after the linger, not at its next look (2 s)
        assert asyncio.get_running_loop().time() - began < 1.8
    finally:
        filler.stop()
        await asyncio.wait_for(running, 5)
        await filler.exchange.aclose()
    async with database.session() as session:
        statuses = (await session.scalars(select(ArchiveRecord.text_status))).all()
    assert statuses == ["done"] * 3


async def test_the_consumer_tells_once_committed_how_many_new_records_wait_for_text(database: Database) -> None:
    told: list[int] = []
    consumer = IdempotentBatchConsumer(database, messaging, "archive.documents", recording(told.append))
    pdf, picture, older = submitted(1), submitted(2), submitted(3)
    pdf.data.update(details={}, attachments=[pdf_attachment("a" * 64)])
    picture.data.update(details={}, attachments=[{**pdf_attachment("b" * 64), "content_type": "image/svg+xml"}])
    await consumer.handle_batch([pdf, picture, older])
    assert told == [2]  # the PDF's text, and the older exchange's details; the picture has none
    await consumer.handle_batch([pdf, picture, older])  # delivered again: nothing new
    assert told == [2]
    # a batch that changes records, none of them waiting for text, tells too (0): the replica's
    # index feeder takes the change at once, woken by the commit (no broadcast of the events)
    another_picture = submitted(4)
    another_picture.data.update(details={}, attachments=[{**pdf_attachment("c" * 64), "content_type": "image/svg+xml"}])
    await consumer.handle_batch([another_picture])
    assert told == [2, 0]


async def test_the_details_an_older_exchange_left_out_are_fetched_and_written(
    database: Database, extractor: TextExtractor, tmp_path: Path
) -> None:
    """A record of an event without the details gets them from the exchange's internal route (here
    a stand-in application serving that route) with its text; a record whose event carried them
    keeps them as they are."""
    sha256 = store(tmp_path / "blobs", make_pdf(["Ke hoach nam"]))
    older = await record(database, 1, None)
    current = await record(database, 2, [pdf_attachment(sha256)])
    exchange = FastAPI()

    @exchange.get("/internal/v1/documents/{document_id}")
    async def document(document_id: uuid.UUID) -> dict[str, Any]:
        assert document_id == older
        return {
            "promulgation_place": "Đồng Xoài",
            "signer": {"full_name": "Nguyễn Văn A", "position": "Chủ tịch"},
            "page_count": 3,
            "attachments": [pdf_attachment(sha256)],
        }

    before = (await state(database, current)).details
    filler = enricher(database, extractor, tmp_path)
    filler.exchange = httpx.AsyncClient(transport=httpx.ASGITransport(app=exchange), base_url="http://exchange")
    assert await filler.enrich_some() == 2
    fetched, kept = await state(database, older), await state(database, current)
    assert (fetched.text_status, kept.text_status) == ("done", "done")
    assert "Ke hoach nam" in fetched.text and "Ke hoach nam" in kept.text
    assert fetched.details["signer_name"] == "Nguyễn Văn A" and fetched.details["page_count"] == 3
    assert fetched.details["attachments"][0]["sha256"] == sha256
    assert kept.details == before and kept.details["page_count"] == 1
    await filler.exchange.aclose()


_DONE_RECORDS = {
    "postgresql": "INSERT INTO archive_record (document_id, sender_code, code, type_name, subject, recipient_codes,"
    " submitted_at, archived_at, changed_at, text_status)"
    " SELECT gen_random_uuid(), '000.00.00.H41', n || '/UBND', 'CV', 's', '[]', now(), now(), now(), 'done'"
    " FROM generate_series(1, 20000) AS n",
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)"
    " INSERT INTO archive_record (document_id, sender_code, code, type_name, subject, recipient_codes,"
    " submitted_at, archived_at, changed_at, text_status, text, deliveries, readers, details)"
    " SELECT lower(hex(randomblob(16))), '000.00.00.H41', i || '/UBND', 'CV', 's', '[]', '2026-11-30', '2026-11-30',"
    " '2026-11-30', 'done', '', '{}', '[]', '{}' FROM n",
}


@pytest.mark.parametrize("archive_database", ["postgres", "sqlite"], indirect=True)
async def test_the_claim_reads_the_waiting_records_alone_whatever_the_plan(database: Database) -> None:
    """On a table of 20,000 records with their text and a few waiting, analyzed as autovacuum does,
    the claim's plan reads the partial index of the waiting records, not the table: on PostgreSQL
    its generic plan (the one kept for a prepared statement after a few runs; with the statuses as
    parameters it read the table from its start, 1,900 blocks a claim at 4,600 records), on SQLite
    its only one (SQLite does not match the index's condition through an OR)."""
    for n in range(3):
        await record(database, n, [pdf_attachment("a" * 64)])
    seen: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with database.session() as session:
            now = utcnow()
            assert len(await ArchiveRecordRepository(session).claim_pending_text(now, now, 10)) == 3
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", capture)
    claim = next(statement for statement in seen if statement.lstrip().startswith("WITH picked"))
    dialect = database.engine.dialect.name
    async with database.engine.connect() as connection:
        await connection.exec_driver_sql(_DONE_RECORDS[dialect])
        await connection.exec_driver_sql("ANALYZE")
        if dialect == "sqlite":
            rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {claim}", (None,) * claim.count("?"))
            plan = "\n".join(str(row[-1]) for row in rows)
        else:
            await connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            await connection.exec_driver_sql(f"PREPARE claim AS {claim}")
            parameters = max(int(number) for number in re.findall(r"\$(\d+)", claim))
            rows = await connection.exec_driver_sql(f"EXPLAIN EXECUTE claim({', '.join(['NULL'] * parameters)})")
            plan = "\n".join(str(row[0]) for row in rows)
            await connection.exec_driver_sql("DEALLOCATE claim")  # a rollback does not undo a PREPARE
        await connection.rollback()
    assert "ix_archive_record_text_waiting" in plan, plan
    assert "Seq Scan on archive_record" not in plan and "SCAN archive_record\n" not in plan + "\n", plan
