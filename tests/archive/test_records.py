"""The archive's records: ``document.submitted.v1`` events recorded in batches (one transaction and one
insert per batch), each once; the single-message path and the service's own API unchanged."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.archive.config import ArchiveSection
from services.archive.consumers import CONSUMERS, consumers, on_documents_submitted
from services.archive.errors import ArchiveRecordNotFoundError
from services.archive.models import ArchiveRecord, messaging
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import RecordService
from services.settings import Settings
from shared.db import Database
from shared.messaging import Envelope, IdempotentBatchConsumer
from shared.service import BatchConsumer
from tests.conftest import TEMPLATES

SENDER = "000.00.01.H41"


def submitted(n: int, *recipients: str) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type="document.submitted.v1",
        source="exchange",
        occurred_at=dt.datetime(2026, 11, 29, 1, 2, 3, tzinfo=dt.UTC),
        data={
            "document_id": str(uuid.uuid4()),
            "kind": "new",
            "sender_code": SENDER,
            "code": f"{n}/KH-UBND",
            "type_name": "Kế hoạch",
            "subject": f"Kế hoạch số {n}",
            "deliveries": [{"id": str(uuid.uuid4()), "recipient_code": r} for r in recipients],
        },
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        settings = Settings(var_dir=tmp_path)
        await TEMPLATES.copy_sqlite(settings, ("archive",))
        db = Database(settings.database_url_for("archive"), "archive")
        yield db
        await db.dispose()
        return
    async with TEMPLATES.pg_clone() as url:
        db = Database(url, "archive")
        yield db
        await db.dispose()


async def _count(database: Database, table: object) -> int:
    async with database.session() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_a_batch_of_documents_is_recorded_once_each(database: Database) -> None:
    consumer = IdempotentBatchConsumer(database, messaging, "archive.documents", on_documents_submitted)
    events = [submitted(1, "000.00.02.H41"), submitted(2, "000.00.03.H41", "000.00.04.H41"), submitted(3)]
    await consumer.handle_batch(events)
    await consumer.handle_batch([*events, submitted(4)])  # redelivered with one more: the three skipped
    await consumer(events[1])  # and once more on the single-message path
    assert await _count(database, ArchiveRecord.__table__) == 4
    assert await _count(database, messaging.processed) == 4

    async with database.session() as session:
        records = RecordService(ArchiveRecordRepository(session))
        second = await records.get(uuid.UUID(events[1].data["document_id"]), "000.00.04.H41")
        assert (second.code, second.recipient_codes) == ("2/KH-UBND", ["000.00.03.H41", "000.00.04.H41"])
        assert second.submitted_at == events[1].occurred_at
        assert (await records.get(uuid.UUID(events[0].data["document_id"]), SENDER)).subject == "Kế hoạch số 1"
        with pytest.raises(ArchiveRecordNotFoundError):
            await records.get(uuid.UUID(events[0].data["document_id"]), "000.00.09.H41")


async def test_the_single_record_api_still_records_one_document(database: Database) -> None:
    document_id = uuid.uuid4()
    async with database.session() as session:
        await RecordService(ArchiveRecordRepository(session)).record_submitted(
            document_id=document_id,
            sender_code=SENDER,
            code="7/TB-UBND",
            type_name="Thông báo",
            subject="Thông báo lịch họp",
            recipient_codes=["000.00.02.H41"],
            submitted_at=dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=7))),
        )
    async with database.session() as session:
        record = await RecordService(ArchiveRecordRepository(session)).get(document_id, "000.00.02.H41")
    assert record.submitted_at == dt.datetime(2026, 11, 29, 1, 0, tzinfo=dt.UTC)


def test_the_archive_consumes_in_batches_as_its_settings_say() -> None:
    (default,) = CONSUMERS
    assert isinstance(default, BatchConsumer)
    assert (default.name, default.bindings, default.size, default.linger_seconds) == (
        "documents",
        ("document.submitted.v1",),
        64,
        0.05,
    )
    (tuned,) = consumers(ArchiveSection(batch_size=8, batch_linger_seconds=0.2))
    assert (tuned.size, tuned.linger_seconds) == (8, 0.2)
