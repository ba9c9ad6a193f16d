"""Rules for agencies' feeds: what enters whose feed, and reading it with a long poll.

Entries are written in the transaction of the change they tell (a delivery created, a recall, a
status reported), each with its ``feed.entry_added.v1`` outbox event: the dispatcher pushes it to
the agency's webhook or bus queue, and every exchange process wakes the readers waiting on it.
Reading the feed changes nothing (status 01 is the acknowledgement).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from services.exchange.document.schemas import response_for_list
from services.exchange.events import (
    AttachmentLink,
    DeliveryReceived,
    FeedDocument,
    FeedEntryAdded,
    Link,
    RecallRequested,
    StaffInfo,
    StatusChanged,
    TransferFailed,
    payload,
)
from services.exchange.feed.repository import FeedRepository
from services.exchange.feed.schemas import FeedPage
from services.exchange.models import Attachment, Delivery, Document, FeedEntry, messaging
from shared.bulk import deferred_inserts
from shared.db import Database
from shared.messaging import Envelope
from shared.pagination import CursorInvalidError, decode_cursor, encode_cursor

OutboxEvent = tuple[str, dict[str, Any], str | None]  # type, payload, ordering key

MAX_WAIT_SECONDS = 25.0  # under the gateway's upstream timeout
RECHECK_SECONDS = 1.0  # a missed wake-up costs at most this


def _links(document_id: uuid.UUID, delivery_id: uuid.UUID) -> dict[str, Link]:
    return {
        "document": Link(href=f"/v1/documents/{document_id}"),
        "report_status": Link(href=f"/v1/deliveries/{delivery_id}/status", method="POST"),
    }


def feed_document(document: Document) -> FeedDocument:
    """The metadata of a document as a feed entry carries it."""
    return FeedDocument(
        id=document.id,
        kind=document.kind,
        original_document_id=document.original_id,
        update_info=document.update_info,
        sender_code=document.sender_code,
        code_number=document.code_number,
        code_notation=document.code_notation,
        type_name=document.type_name,
        subject=document.subject,
        promulgation_place=document.promulgation_place,
        promulgation_date=document.promulgation_date,
        signer_competence=document.signer_competence,
        signer_position=document.signer_position,
        signer_name=document.signer_name,
        urgency=document.urgency,
        due_date=document.due_date,
        steering_type=document.steering_type,
        page_count=document.page_count,
        description=document.description,
        response_for=response_for_list(document.response_for),
        edxml_document_id=document.edxml_document_id,
        created_at=document.created_at,
    )


def received_entries(
    document: Document, deliveries: Sequence[Delivery], attachments: Sequence[Attachment]
) -> list[dict[str, Any]]:
    """One ``delivery.received`` entry per recipient of a document."""
    metadata = feed_document(document)
    files = [
        AttachmentLink(
            id=a.id,
            file_name=a.file_name,
            content_type=a.content_type,
            size=a.size,
            sha256=a.sha256,
            href=f"/v1/documents/{document.id}/attachments/{a.id}",
        )
        for a in attachments
    ]
    return [
        _entry(
            d.recipient_code,
            "delivery.received",
            document.id,
            d.id,
            DeliveryReceived(
                delivery_id=d.id,
                status=d.status,
                arrival_deadline=d.arrival_deadline,
                document=metadata,
                attachments=files,
                links=_links(document.id, d.id),
            ),
            d.created_at,
        )
        for d in deliveries
    ]


def recall_entry(document: Document, delivery: Delivery, reason: str, at: dt.datetime) -> dict[str, Any]:
    """The ``delivery.recall_requested`` entry for a recipient asked to give its copy back."""
    data = RecallRequested(
        delivery_id=delivery.id,
        document_id=document.id,
        sender_code=document.sender_code,
        reason=reason,
        links=_links(document.id, delivery.id),
    )
    return _entry(delivery.recipient_code, "delivery.recall_requested", document.id, delivery.id, data, at)


def status_entry(
    document: Document,
    delivery: Delivery,
    *,
    previous: str,
    status: str,
    note: str | None,
    at: dt.datetime,
    outcome: Literal["applied", "repeated"] = "applied",
    answers: Literal["recall", "update"] | None = None,
    timestamp: dt.datetime | None = None,
    staff: StaffInfo | None = None,
) -> dict[str, Any]:
    """The ``delivery.status_changed`` entry telling the sender what a recipient reported."""
    data = StatusChanged(
        delivery_id=delivery.id,
        document_id=document.id,
        recipient_code=delivery.recipient_code,
        previous_status=previous,
        status=status,
        note=note,
        reported_at=at,
        links={"document": Link(href=f"/v1/documents/{document.id}")},
        outcome=outcome,
        answers=answers,
        timestamp=timestamp,
        staff=staff,
    )
    return _entry(document.sender_code, "delivery.status_changed", document.id, delivery.id, data, at)


def transfer_failed_entry(
    sender_code: str, delivery: Delivery, *, channel: str, attempts: int, reason: str, at: dt.datetime
) -> dict[str, Any]:
    """The ``delivery.transfer_failed`` entry telling the sender a recipient's channel refused a delivery."""
    data = TransferFailed(
        delivery_id=delivery.id,
        document_id=delivery.document_id,
        recipient_code=delivery.recipient_code,
        channel=channel,
        attempts=attempts,
        reason=reason,
    )
    return _entry(sender_code, "delivery.transfer_failed", delivery.document_id, delivery.id, data, at)


def _entry(
    agency_code: str, kind: str, document_id: uuid.UUID, delivery_id: uuid.UUID | None, data: Any, at: dt.datetime
) -> dict[str, Any]:
    return {
        "agency_code": agency_code,
        "type": kind,
        "document_id": document_id,
        "delivery_id": delivery_id,
        "data": payload(data),
        "created_at": at,
    }


def entry_read(row: FeedEntry | dict[str, Any]) -> FeedEntryAdded:
    """An entry as every channel delivers it."""
    get = row.get if isinstance(row, dict) else lambda key: getattr(row, key)
    return FeedEntryAdded(
        id=get("id"),
        seq=get("seq"),
        agency_code=get("agency_code"),
        type=get("type"),
        document_id=get("document_id"),
        delivery_id=get("delivery_id"),
        occurred_at=get("created_at"),
        data=get("data"),
    )


class FeedService:
    """Adds entries to agencies' feeds within the caller's transaction."""

    def __init__(self, feed: FeedRepository) -> None:
        self.feed = feed

    async def add(
        self, entries: Sequence[dict[str, Any]], *, with_events: Sequence[OutboxEvent] = ()
    ) -> list[FeedEntryAdded]:
        """Number and store the entries, and record each for its agency's channel (outbox), after
        ``with_events`` (the change's own events), all in one outbox statement."""
        # the entries and the events: one statement on PostgreSQL (shared.bulk), after the
        # counters' upsert that numbers the entries
        async with deferred_inserts(self.feed.session):
            added = [entry_read(row) for row in await self.feed.append(entries)]
            events = [
                *with_events,
                *(("feed.entry_added.v1", payload(e), f"feed:{e.agency_code}") for e in added),
            ]
            await self.feed.record_events(messaging, events)
        return added


class FeedNotifier:
    """Wakes the readers long-polling an agency's feed when an entry for it is published."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def notify(self, agency_code: str) -> None:
        for event in self._waiters.get(agency_code, ()):
            event.set()

    async def on_event(self, envelope: Envelope) -> None:
        """Listen to ``feed.entry_added.v1`` (every process of the exchange gets it)."""
        code = envelope.data.get("agency_code")
        if isinstance(code, str):
            self.notify(code)

    async def wait(self, agency_code: str, seconds: float) -> bool:
        """Return True when an entry for the agency is published, False after ``seconds``."""
        event = asyncio.Event()
        self._waiters.setdefault(agency_code, set()).add(event)
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(agency_code)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[agency_code]


class FeedReader:
    """Reads an agency's feed; each check is one statement (no transaction on PostgreSQL), none held
    while waiting. A long poll woken by a new entry reads ``linger`` seconds later, so that a burst
    of entries (a broadcast, a busy sender) is one page, not a request each; entries already there
    when the call comes are answered at once."""

    def __init__(self, database: Database, notifier: FeedNotifier, *, linger: float = 0.0) -> None:
        self.database = database
        self.notifier = notifier
        self.linger = linger

    async def read(self, agency_code: str, *, cursor: str | None, limit: int, wait: float) -> FeedPage:
        """Return the entries after ``cursor``; with ``wait``, hold the call until one arrives."""
        after = self.seq_of(cursor)
        deadline = asyncio.get_running_loop().time() + min(wait, MAX_WAIT_SECONDS)
        while True:
            async with self.database.reading() as session:
                rows = await FeedRepository(session).after(agency_code, after, limit)
            if rows:
                break
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            woken = await self.notifier.wait(agency_code, min(remaining, RECHECK_SECONDS))
            if woken and self.linger > 0:
                await asyncio.sleep(min(self.linger, max(0.0, deadline - asyncio.get_running_loop().time())))
        entries = [entry_read(row) for row in rows]
        last = entries[-1].seq if entries else after
        return FeedPage(entries=entries, next_cursor=encode_cursor(last), last_seq=last)

    @staticmethod
    def seq_of(cursor: str | None) -> int:
        """The entry number a cursor resumes after (0: from the start)."""
        if cursor is None:
            return 0
        (seq,) = decode_cursor(cursor, 1)
        if not isinstance(seq, int) or seq < 0:
            raise CursorInvalidError("The cursor is not valid; use next_cursor from a previous page")
        return seq
