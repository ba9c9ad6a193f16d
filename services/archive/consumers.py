"""The archive's message handlers: each calls the same service the routes call."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.archive.config import ArchiveSection
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import RecordService, Submission
from shared.messaging import Envelope
from shared.service import BatchConsumer


def submission_of(envelope: Envelope) -> Submission:
    """The archive's view of a ``document.submitted.v1`` event."""
    data = envelope.data
    return Submission(
        document_id=uuid.UUID(data["document_id"]),
        sender_code=data["sender_code"],
        code=data["code"],
        type_name=data["type_name"],
        subject=data["subject"],
        recipient_codes=[d["recipient_code"] for d in data["deliveries"]],
        submitted_at=envelope.occurred_at,
    )


async def on_documents_submitted(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """``document.submitted.v1``, a batch of them in one transaction: keep each document's record."""
    await RecordService(ArchiveRecordRepository(session)).record_all([submission_of(e) for e in envelopes])


async def on_document_submitted(session: AsyncSession, envelope: Envelope) -> None:
    """``document.submitted.v1``: keep the document's archive record."""
    await on_documents_submitted(session, [envelope])


def consumers(section: ArchiveSection) -> tuple[BatchConsumer, ...]:
    """The archive's consumers, batched as its settings say."""
    return (
        BatchConsumer(
            "documents",
            ("document.submitted.v1",),
            on_documents_submitted,
            size=section.batch_size,
            linger_seconds=section.batch_linger_seconds,
        ),
    )


CONSUMERS = consumers(ArchiveSection())
