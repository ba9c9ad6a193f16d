"""Rules for agencies' feeds: what enters whose feed, and reading it with a long poll.

Entries are written in the transaction of the change they tell (a delivery created, a recall, a
status reported). Every entry stays readable in the agency's pull feed, whatever its channel. The
channel an entry takes is decided when it is written: an entry of an agency whose delivery
endpoint is ``push``, ``amqp`` or ``hub`` (or unknown, or the registry unreachable: the dispatcher
decides then, as it always did) gets a ``feed.entry_added.v1`` outbox event, which the dispatcher
delivers to the webhook, bus queue or hub connector; an entry of a ``pull`` agency gets none and
takes no trip through the broker. The commit wakes the readers long-polling the agency's feed
(services/exchange/feed/wakeup.py: PostgreSQL's NOTIFY, or the session's commit on SQLite).
Reading the feed changes nothing (status 01 is the acknowledgement).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
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
from services.exchange.feed.wakeup import mark_woken
from services.exchange.models import Attachment, Delivery, Document, FeedEntry, messaging
from shared.bulk import deferred_inserts
from shared.clients import DeliveryEndpoint
from shared.db import Database
from shared.errors import DependencyUnavailableError
from shared.pagination import CursorInvalidError, decode_cursor, encode_cursor

OutboxEvent = tuple[str, dict[str, Any], str | None]  # type, payload, ordering key

MAX_WAIT_SECONDS = 25.0  # under the gateway's upstream timeout
RECHECK_SECONDS = 1.0  # a missed wake-up costs at most this

log = logging.getLogger("lienthong.exchange.feed")


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


class DispatchRule:
    """Which agencies' entries the dispatcher must see: all but those whose delivery endpoint is
    ``pull``. The endpoint is the registry client's, cached (``directory_cache_seconds``, emptied
    by the registry's directory events) and shared with the dispatcher: no call per send once
    cached. An unknown agency, or a registry that does not answer, gets the event: the dispatcher
    decides, as it always did. The caller's transaction may hold locks (a delivery's row): the
    endpoints not cached are asked ``LOOKUPS`` at a time, and whatever is not known within
    ``BUDGET_SECONDS`` gets the event rather than a longer wait.

    With ``known`` (the cache, read without asking the registry), a change to more agencies than
    ``LOOKUPS`` whose endpoints are not cached (a broadcast after the cache was emptied) does not
    wait at all: those entries get the event, and their endpoints are looked up after, in the
    background, for the next change to find (a 1,000-agency broadcast otherwise waited the whole
    budget: docs/performance.md, "The sixth session's changes")."""

    LOOKUPS = 8
    BUDGET_SECONDS = 0.5

    def __init__(
        self,
        endpoint: Callable[[str], Awaitable[DeliveryEndpoint | None]],
        known: Callable[[str], DeliveryEndpoint | None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.known = known
        self._warming: asyncio.Task[None] | None = None

    async def needs_dispatch(self, agency_code: str) -> bool:
        try:
            endpoint = await self.endpoint(agency_code)
        except DependencyUnavailableError:
            return True
        return endpoint is None or endpoint.mode != "pull"

    async def dispatched(self, codes: set[str]) -> set[str]:
        """The agencies among ``codes`` whose entries get a ``feed.entry_added.v1`` event."""
        known: dict[str, bool] = {}
        asking = set(codes)
        if self.known is not None:
            for code in codes:
                if (endpoint := self.known(code)) is not None:
                    known[code] = endpoint.mode != "pull"
            asking -= known.keys()
            if len(asking) > self.LOOKUPS:
                self._warm(asking)
                return {code for code in codes if known.get(code, True)}
        slots = asyncio.Semaphore(self.LOOKUPS)

        async def decide(code: str) -> None:
            async with slots:
                known[code] = await self.needs_dispatch(code)

        try:
            async with asyncio.timeout(self.BUDGET_SECONDS):
                if len(asking) == 1:  # the usual send: no gather
                    await decide(next(iter(asking)))
                elif asking:
                    await asyncio.gather(*(decide(code) for code in sorted(asking)))
        except TimeoutError:
            pass  # the registry is slow: the dispatcher decides for the rest
        return {code for code in codes if known.get(code, True)}

    def _warm(self, codes: set[str]) -> None:
        """Look the endpoints up in the background (one warm-up at a time; what fails is left to
        the next change, or the dispatcher)."""
        if self._warming is not None and not self._warming.done():
            return

        async def warm() -> None:
            slots = asyncio.Semaphore(self.LOOKUPS)

            async def look_up(code: str) -> None:
                async with slots:
                    try:
                        await self.endpoint(code)
                    except Exception as exc:  # best effort: the next change asks again, or the dispatcher
                        log.debug("the endpoint of %s was not looked up ahead: %s", code, exc)

            await asyncio.gather(*(look_up(code) for code in sorted(codes)))

        self._warming = asyncio.create_task(warm())

    async def settled(self) -> None:
        """Wait for a background warm-up to end."""
        if self._warming is not None:
            with contextlib.suppress(Exception):
                await self._warming

    async def stop(self) -> None:
        """Cancel a background warm-up (the service's shutdown)."""
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)


class FeedService:
    """Adds entries to agencies' feeds within the caller's transaction.

    Without a ``rule`` every entry gets its ``feed.entry_added.v1`` event (the dispatcher decides)."""

    def __init__(self, feed: FeedRepository, rule: DispatchRule | None = None) -> None:
        self.feed = feed
        self.rule = rule

    async def dispatched(self, codes: set[str]) -> set[str]:
        """The agencies among ``codes`` whose entries get a ``feed.entry_added.v1`` event (and so
        are numbered when they are added, not when the transaction commits)."""
        return codes if self.rule is None else await self.rule.dispatched(codes)

    async def add(
        self,
        entries: Sequence[dict[str, Any]],
        *,
        with_events: Sequence[OutboxEvent] = (),
        dispatched: set[str] | None = None,
    ) -> list[FeedEntryAdded]:
        """Store the entries, and record those whose agency's channel needs the dispatcher
        (outbox), after ``with_events`` (the change's own events): on PostgreSQL the entries and the
        events are one statement (shared.bulk). When the dispatcher gets an entry, the entries are
        numbered now (its event carries the number: the counters' upsert comes first); when it
        gets none (every agency pulls), when the transaction commits (PostgreSQL; see
        ``FeedRepository.append``). The commit wakes the agencies' long-polling readers. Returns
        the entries the dispatcher gets. ``dispatched``: what :meth:`dispatched` answered for the
        entries' agencies, when the caller asked it first."""
        codes = {entry["agency_code"] for entry in entries}
        if dispatched is None:
            # asked before the counters are locked: an endpoint the cache lacks costs one registry call
            dispatched = await self.dispatched(codes)
        async with deferred_inserts(self.feed.session):
            rows = await self.feed.append(entries, number_now=dispatched)
            added = [entry_read(row) for row in rows if row["agency_code"] in dispatched]
            events = [
                *with_events,
                *(("feed.entry_added.v1", payload(e), f"feed:{e.agency_code}") for e in added),
            ]
            await self.feed.record_events(messaging, events)
        mark_woken(self.feed.session.info, codes)  # SQLite: the commit wakes the readers
        return added


MAX_PACED_AGENCIES = 10_000
"""How many agencies' last answers an exchange process remembers for pacing their long polls."""


class FeedNotifier:
    """Wakes the readers long-polling an agency's feed in this process when an entry for it is
    committed (services/exchange/feed/wakeup.py tells it)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        # agency code -> (loop time, last entry number) of the last page with entries a long poll got
        self._answered: dict[str, tuple[float, int]] = {}

    def answered(self, agency_code: str, at: float, last_seq: int) -> None:
        """Note that a long poll of the agency's feed was answered at ``at`` (loop time) with a page
        of entries up to ``last_seq``."""
        self._answered[agency_code] = (at, last_seq)
        if len(self._answered) > MAX_PACED_AGENCIES:  # the oldest half forgotten: their pause is long over
            keep = sorted(self._answered.items(), key=lambda item: item[1][0])[len(self._answered) // 2 :]
            self._answered = dict(keep)

    def last_answered(self, agency_code: str) -> tuple[float, int] | None:
        """When a long poll of the agency's feed last got a page of entries (loop time), and the
        number of that page's last entry; None if none did (or it is long forgotten)."""
        return self._answered.get(agency_code)

    def notify(self, agency_code: str) -> None:
        for event in self._waiters.get(agency_code, ()):
            event.set()

    def readers(self, agency_code: str) -> int:
        """How many readers of the agency's feed are registered for a wake-up now."""
        return len(self._waiters.get(agency_code, ()))

    def notify_all(self) -> None:
        """Wake every reader (the wake-ups were lost for a while: each reads again)."""
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    @contextmanager
    def listening(self, agency_code: str) -> Iterator[asyncio.Event]:
        """An event set by every wake-up for the agency while the block runs: a reader registers
        before it reads, so an entry committed during the read still wakes it."""
        event = asyncio.Event()
        self._waiters.setdefault(agency_code, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(agency_code)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[agency_code]


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Return True when ``event`` is set, False after ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class FeedReader:
    """Reads an agency's feed; each check is one statement (no transaction on PostgreSQL), none held
    while waiting. A long poll woken by a new entry reads ``linger`` seconds later, so that a burst
    of entries (a broadcast, a busy sender) is one page, not a request each. Entries already there
    when the call comes are answered at once, unless the call carries on from the page a long poll
    of the agency got less than ``linger`` ago (its cursor is that page's end) and its own page is
    not full: then it waits until ``linger`` has passed since that answer and takes what was
    committed meanwhile. Under a steady stream a reader that asks again as soon as it has its page
    (every few milliseconds) gets a page every ``linger`` seconds instead of a request per entry or
    two; a reader catching up on a backlog (full pages), another cursor and a call without ``wait``
    are never held. The pacing is per exchange process (a reader whose calls alternate between
    processes is paced less)."""

    def __init__(self, database: Database, notifier: FeedNotifier, *, linger: float = 0.0) -> None:
        self.database = database
        self.notifier = notifier
        self.linger = linger

    async def read(self, agency_code: str, *, cursor: str | None, limit: int, wait: float) -> FeedPage:
        """Return the entries after ``cursor``; with ``wait``, hold the call until one arrives."""
        after = self.seq_of(cursor)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait, MAX_WAIT_SECONDS)
        with self.notifier.listening(agency_code) as woken:
            while True:
                woken.clear()  # before the read: a wake-up during it is kept
                async with self.database.reading() as session:
                    rows = await FeedRepository(session).after(agency_code, after, limit)
                if rows:
                    paced = self._pause(agency_code, after, len(rows), limit, deadline)
                    if paced <= 0:
                        break
                    await asyncio.sleep(paced)  # then once more, with the entries committed meanwhile
                    async with self.database.reading() as session:
                        rows = await FeedRepository(session).after(agency_code, after, limit)
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                if await wait_for_event(woken, min(remaining, RECHECK_SECONDS)) and self.linger > 0:
                    # woken by an entry: read a moment later, with the entries committed meanwhile
                    await asyncio.sleep(min(self.linger, max(0.0, deadline - loop.time())))
        entries = [entry_read(row) for row in rows]
        if entries and wait > 0:
            self.notifier.answered(agency_code, loop.time(), entries[-1].seq)
        last = entries[-1].seq if entries else after
        return FeedPage(entries=entries, next_cursor=encode_cursor(last), last_seq=last)

    def _pause(self, agency_code: str, after: int, found: int, limit: int, deadline: float) -> float:
        """How long a long poll resuming after ``after`` that found ``found`` entries waits before
        it answers (0 or less: at once)."""
        if found >= limit or self.linger <= 0:
            return 0.0
        last = self.notifier.last_answered(agency_code)
        if last is None or last[1] != after:  # not the reader of the last page carrying on
            return 0.0
        now = asyncio.get_running_loop().time()
        return min(last[0] + self.linger - now, deadline - now)

    @staticmethod
    def seq_of(cursor: str | None) -> int:
        """The entry number a cursor resumes after (0: from the start)."""
        if cursor is None:
            return 0
        (seq,) = decode_cursor(cursor, 1)
        if not isinstance(seq, int) or seq < 0:
            raise CursorInvalidError("The cursor is not valid; use next_cursor from a previous page")
        return seq
