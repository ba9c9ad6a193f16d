"""The archive's message handlers: each calls the same service the routes call."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.archive.config import ArchiveSection
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import EVENTS, RecordService
from shared.messaging import BatchEventHandler, Envelope
from shared.service import BatchConsumer


async def on_documents_submitted(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """The exchange's document events, a batch of them in one transaction: each record created or
    changed as the event says (submitted, statuses, recall, replacement, signature verdict)."""
    await RecordService(ArchiveRecordRepository(session)).apply_events(envelopes)


on_document_events = on_documents_submitted


async def on_document_submitted(session: AsyncSession, envelope: Envelope) -> None:
    """One exchange event: the record created or changed."""
    await on_documents_submitted(session, [envelope])


def recording(waiting: Callable[[int], None]) -> BatchEventHandler:
    """:func:`on_documents_submitted`, and once the batch has committed ``waiting`` told how many
    new records wait for their text (0: records changed, none waiting): the replica's index feeder
    takes the changes, its text enricher claims what this replica recorded — each only once it is
    there to take."""

    async def handler(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        records = ArchiveRecordRepository(session)
        pending = await RecordService(records).apply_events(envelopes)
        records.after_commit(lambda: waiting(pending))

    return handler


def consumers(section: ArchiveSection, waiting: Callable[[int], None] | None = None) -> tuple[BatchConsumer, ...]:
    """The archive's consumers, batched as its settings say (``waiting``: see :func:`recording`)."""
    return (
        BatchConsumer(
            "documents",
            EVENTS,
            on_documents_submitted if waiting is None else recording(waiting),
            size=section.batch_size,
            linger_seconds=section.batch_linger_seconds,
        ),
    )


CONSUMERS = consumers(ArchiveSection())
