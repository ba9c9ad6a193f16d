"""The archive's message handlers: each calls the same service the routes call."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.archive.config import ArchiveSection
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import EVENTS, RecordService
from shared.messaging import Envelope
from shared.service import BatchConsumer


async def on_documents_submitted(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """The exchange's document events, a batch of them in one transaction: each record created or
    changed as the event says (submitted, statuses, recall, replacement, signature verdict)."""
    await RecordService(ArchiveRecordRepository(session)).apply_events(envelopes)


on_document_events = on_documents_submitted


async def on_document_submitted(session: AsyncSession, envelope: Envelope) -> None:
    """One exchange event: the record created or changed."""
    await on_documents_submitted(session, [envelope])


def consumers(section: ArchiveSection) -> tuple[BatchConsumer, ...]:
    """The archive's consumers, batched as its settings say."""
    return (
        BatchConsumer(
            "documents",
            EVENTS,
            on_documents_submitted,
            size=section.batch_size,
            linger_seconds=section.batch_linger_seconds,
        ),
    )


CONSUMERS = consumers(ArchiveSection())
