"""The archive's records: the exchange's events recorded in batches (one transaction and one insert
per batch), each once; statuses, recalls, replacements and verdicts reflected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from services.archive.config import ArchiveSection
from services.archive.consumers import CONSUMERS, consumers, on_documents_submitted
from services.archive.errors import ArchiveRecordNotFoundError
from services.archive.models import ArchiveRecord, messaging
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import EVENTS, RecordService
from shared.db import Database
from shared.messaging import Envelope, IdempotentBatchConsumer
from shared.service import BatchConsumer

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
            "urgency": 0,
            "promulgation_date": "2026-11-28",
        },
    )


@pytest.fixture
def database(archive_database: Database) -> Database:
    """The archive's database, on SQLite and on PostgreSQL (tests/conftest.py)."""
    return archive_database


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
        assert (second.code, second.recipient_codes) == ("2/KH-UBND", ["000.00.04.H41"])  # its own copy only
        seen_by_sender = await records.get(uuid.UUID(events[1].data["document_id"]), SENDER)
        assert seen_by_sender.recipient_codes == ["000.00.03.H41", "000.00.04.H41"]
        assert second.submitted_at == events[1].occurred_at
        assert (await records.get(uuid.UUID(events[0].data["document_id"]), SENDER)).subject == "Kế hoạch số 1"
        with pytest.raises(ArchiveRecordNotFoundError):
            await records.get(uuid.UUID(events[0].data["document_id"]), "000.00.09.H41")


async def test_a_document_submitted_again_under_another_message_keeps_its_record(database: Database) -> None:
    """The exchange published the same document's event twice (two message ids: the consumer's
    dedupe does not see it): the second finds the record there and leaves it as it was."""
    consumer = IdempotentBatchConsumer(database, messaging, "archive.documents", on_documents_submitted)
    first = submitted(1, "000.00.02.H41")
    again = dataclasses.replace(first, id=str(uuid.uuid4()), data={**first.data, "subject": "changed"})
    await consumer.handle_batch([first, submitted(2)])
    await consumer.handle_batch([again, submitted(3)])  # a batch of the duplicate and a new one
    await consumer(dataclasses.replace(again, id=str(uuid.uuid4())))  # and alone
    assert await _count(database, ArchiveRecord.__table__) == 3
    async with database.session() as session:
        kept = await ArchiveRecordRepository(session).by_document_id(uuid.UUID(first.data["document_id"]))
    assert kept is not None and kept.subject == "Kế hoạch số 1"


async def test_the_details_an_event_carries_are_kept_and_only_text_is_left_to_fetch(database: Database) -> None:
    """The exchange's event carries the place, the signer and the attachments: the record has them at
    once (no read of the document from the exchange); only a file with text to extract leaves the
    record waiting for its text. An event without them (an older exchange) leaves it all to fetch."""
    consumer = IdempotentBatchConsumer(database, messaging, "archive.documents", on_documents_submitted)
    details = {"promulgation_place": "Đồng Xoài", "signer_name": "Nguyễn Văn A", "steering_type": 1, "page_count": 2}
    picture = {"id": str(uuid.uuid4()), "file_name": "so-do.svg", "content_type": "image/svg+xml", "size": 9}
    pdf = {"id": str(uuid.uuid4()), "file_name": "ke-hoach.pdf", "content_type": "application/pdf", "size": 9}
    with_picture, with_pdf, older = submitted(1), submitted(2), submitted(3)
    with_picture.data.update(details=details, attachments=[{**picture, "sha256": "a" * 64}])
    with_pdf.data.update(details=details, attachments=[{**pdf, "sha256": "b" * 64}])
    older.data.update(attachments=[{"content_type": "application/pdf", "size": 9, "sha256": "c" * 64}])
    await consumer.handle_batch([with_picture, with_pdf, older])

    async with database.session() as session:
        records = await ArchiveRecordRepository(session).by_document_ids(
            [uuid.UUID(e.data["document_id"]) for e in (with_picture, with_pdf, older)]
        )
        first, second, third = (records[uuid.UUID(e.data["document_id"])] for e in (with_picture, with_pdf, older))
    assert (first.text_status, second.text_status, third.text_status) == ("done", "pending", "pending")
    assert first.details["signer_name"] == "Nguyễn Văn A" and first.details["promulgation_place"] == "Đồng Xoài"
    assert [a["id"] for a in second.details["attachments"]] == [pdf["id"]]
    assert third.details == {}


def event(type: str, **data: object) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=type,
        source="exchange",
        occurred_at=dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC),
        data=data,
    )


async def test_statuses_recall_replacement_and_verdict_are_reflected(database: Database) -> None:
    """Each exchange event changes the record as the exchange changed the document; a recipient
    whose copy is withdrawn (15) no longer reads it, as in the exchange."""
    consumer = IdempotentBatchConsumer(database, messaging, "archive.documents", on_documents_submitted)
    first = submitted(5, "000.00.02.H41", "000.00.03.H41")
    document_id = first.data["document_id"]
    [to_second, to_third] = first.data["deliveries"]
    replacement = str(uuid.uuid4())
    common = {"document_id": document_id, "sender_code": SENDER}
    await consumer.handle_batch(
        [
            first,
            event(
                "delivery.status_changed.v1",
                **common,
                delivery_id=to_second["id"],
                recipient_code="000.00.02.H41",
                previous_status="pending",
                status="01",
                actor_code="000.00.02.H41",
                note=None,
                occurred_at="2026-11-29T02:00:00Z",
            ),
            event(
                "document.signature_checked.v1",
                **common,
                verdict="valid",
                reasons=[],
                checked_at="2026-11-29T02:00:00Z",
                recipient_codes=[],
            ),
        ]
    )
    await consumer.handle_batch(
        [
            event("document.recall_requested.v1", **common, reason="Sai", delivery_ids=[to_third["id"]]),
            event(
                "document.recalled.v1",
                **common,
                delivery_id=to_third["id"],
                recipient_code="000.00.03.H41",
                recalled_at="2026-11-29T02:00:00Z",
            ),
            event("document.replaced.v1", **common, replaced_by=replacement),
        ]
    )
    async with database.session() as session:
        records = RecordService(ArchiveRecordRepository(session))
        seen = await records.get(uuid.UUID(document_id), SENDER)
        assert [(d.recipient_code, d.status, d.recall_status) for d in seen.deliveries] == [
            ("000.00.02.H41", "01", None),
            ("000.00.03.H41", "pending", "15"),
        ]
        assert (seen.signature_verdict, str(seen.superseded_by)) == ("valid", replacement)
        assert [d.status for d in (await records.get(uuid.UUID(document_id), "000.00.02.H41")).deliveries] == ["01"]
        with pytest.raises(ArchiveRecordNotFoundError):
            await records.get(uuid.UUID(document_id), "000.00.03.H41")


def test_the_archive_consumes_in_batches_as_its_settings_say() -> None:
    (default,) = CONSUMERS
    assert isinstance(default, BatchConsumer)
    assert (default.name, default.bindings, default.size, default.linger_seconds) == (
        "documents",
        EVENTS,
        64,
        0.25,
    )
    (tuned,) = consumers(ArchiveSection(batch_size=8, batch_linger_seconds=0.2))
    assert (tuned.size, tuned.linger_seconds) == (8, 0.2)
