"""The transactional outbox: events are rows written in the same transaction as the state change.

``record_event`` adds the row to the caller's session; nothing reaches the broker until the
transaction commits, and nothing committed is lost: the relay publishes it, even after a crash,
however long the broker is away. No row is ever given up: a row that keeps failing is retried at a
capped interval, logged, counted in ``/metrics`` and listed by ``lienthong outbox list``.

Ordering: rows that share an ``ordering_key`` (the exchange uses the document id) are published in
the order they were written; while one of them waits for a retry, the rows after it wait too,
and rows of other keys go on.

Bundles: on a broker that bundles (RabbitMQ), the rows of one pass whose type is one of
``BUNDLED_TYPES`` are published a bundle per type (up to the broker's ``bundle_limit``), as long as
that keeps every key's order: a row joins its type's open bundle unless a row of its key went into
a later message; the send path's many events cost a message per pass, not one each. A row tried
before is published alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import and_, case, delete, func, or_, select, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bulk import insert_rows
from shared.config import OutboxSection
from shared.db import Database, new_id, utcnow
from shared.messaging.broker import Broker
from shared.messaging.envelope import BUNDLED_TYPES, Envelope
from shared.messaging.tables import MessagingTables
from shared.observability import current_request_id

log = logging.getLogger("lienthong.outbox")

PENDING_KEY = "outbox_pending"  # set on a session that recorded events: its commit wakes the relay


async def record_event(
    session: AsyncSession,
    tables: MessagingTables,
    event_type: str,
    data: dict[str, Any],
    *,
    ordering_key: str | None = None,
) -> str:
    """Write an event to the outbox in the session's transaction; the relay wakes on commit.

    Events with the same ``ordering_key`` are published in the order they were recorded."""
    [message_id] = await record_events(session, tables, [(event_type, data, ordering_key)])
    return message_id


async def record_events(
    session: AsyncSession, tables: MessagingTables, events: Sequence[tuple[str, dict[str, Any], str | None]]
) -> list[str]:
    """Write events (type, data, ordering key) to the outbox in one statement, in this order."""
    if not events:
        return []
    now = utcnow()
    request_id = current_request_id()
    rows = [
        {
            "id": new_id(),  # time-ordered: the relay publishes rows of one key by (created_at, id)
            "routing_key": event_type,
            "payload": data,
            "ordering_key": ordering_key[:200] if ordering_key else None,
            "request_id": request_id,
            "created_at": now,
            "attempts": 0,
        }
        for event_type, data, ordering_key in events
    ]
    await insert_rows(session, tables.outbox, rows)  # deferred with the others in a deferred_inserts block
    session.info[PENDING_KEY] = True  # the relay's listener on commit wakes it
    return [str(row["id"]) for row in rows]


def publishing_units(rows: Sequence[Any], limit: int, bundled: frozenset[str] = BUNDLED_TYPES) -> list[list[int]]:
    """Split a pass's rows (``routing_key``, ``ordering_key``; in publishing order) into messages,
    the rows' indexes each, in the order they are published.

    A row of a bundled type joins the open bundle of its type unless the bundle is full or a row of
    its ordering key already went into a later message (it would overtake it); otherwise it starts
    a message. Rows of one key are thus published in order, and every other row is as well. A row
    tried before goes alone: a bundle the broker refused is not built again the same way."""
    units: list[list[int]] = []
    open_unit: dict[str, int] = {}  # routing key -> its open bundle (an index into units)
    last_unit: dict[str, int] = {}  # ordering key -> the last message holding one of its rows
    for index, row in enumerate(rows):
        kind, key = row["routing_key"], row["ordering_key"]
        bundles = limit > 1 and kind in bundled and not row.get("attempts")
        unit = open_unit.get(kind) if bundles else None
        if unit is not None and (len(units[unit]) >= limit or (key is not None and last_unit.get(key, -1) > unit)):
            unit = None
        if unit is None:
            units.append([])
            unit = len(units) - 1
            if bundles:
                open_unit[kind] = unit
        units[unit].append(index)
        if key is not None:
            last_unit[key] = max(last_unit.get(key, -1), unit)
    return units


def describe_error(exc: BaseException) -> str:
    """Return the reason a publish failed in words an operator can act on (never an object's repr)."""
    message = str(exc).strip()
    if not message and exc.args:
        message = ", ".join(str(a) for a in exc.args if str(a))
    name = type(exc).__name__
    if isinstance(exc, TimeoutError | asyncio.TimeoutError) and not message:
        message = "the broker did not confirm in time"
    cause = exc.__cause__ or exc.__context__
    if not message and cause is not None:
        return f"{name}: {describe_error(cause)}"[:2000]
    return f"{name}: {message or 'no detail given'}"[:2000]


def retry_delay(attempts: int, policy: OutboxSection) -> float:
    """Return the wait before try number ``attempts + 1``: doubling from the initial delay, capped."""
    exponent = min(max(attempts - 1, 0), 30)
    return float(min(policy.retry_max_seconds, policy.retry_initial_seconds * math.pow(2, exponent)))


class BrokerUnavailableError(Exception):
    """The broker is away: the relay stops the pass and backs off instead of spending attempts."""


class OutboxMetrics:
    """The outbox's Prometheus metrics, in the service's registry."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.published = Counter(
            "lienthong_outbox_published_total", "Outbox events published", ["service"], registry=registry
        )
        self.failures = Counter(
            "lienthong_outbox_publish_failures_total",
            "Outbox publish tries that failed (each is retried)",
            ["service"],
            registry=registry,
        )
        self.pending = Gauge(
            "lienthong_outbox_pending", "Outbox events committed, not yet published", ["service"], registry=registry
        )
        self.oldest_age = Gauge(
            "lienthong_outbox_oldest_pending_seconds",
            "Age of the oldest unpublished outbox event (0 when none)",
            ["service"],
            registry=registry,
        )
        self.stuck = Gauge(
            "lienthong_outbox_stuck",
            "Unpublished outbox events that failed at least stuck_after_attempts times",
            ["service"],
            registry=registry,
        )
        self.broker_up = Gauge(
            "lienthong_broker_up", "1 when the relay's broker connection is up", ["service"], registry=registry
        )

        for metric in (self.published, self.failures, self.pending, self.oldest_age, self.stuck):
            metric.labels(service)  # shown as 0 from the first scrape

    def observe(self, stats: OutboxStats) -> None:
        self.pending.labels(self.service).set(stats.pending)
        self.oldest_age.labels(self.service).set(stats.oldest_age_seconds)
        self.stuck.labels(self.service).set(stats.stuck)


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    stuck: int
    oldest_created_at: dt.datetime | None

    @property
    def oldest_age_seconds(self) -> float:
        if self.oldest_created_at is None:
            return 0.0
        return max(0.0, (utcnow() - self.oldest_created_at).total_seconds())


@dataclass(frozen=True)
class PendingEvent:
    """An unpublished outbox row, as an operator sees it."""

    id: str
    routing_key: str
    ordering_key: str | None
    created_at: dt.datetime
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None


class Outbox:
    """Queries on one service's outbox table: statistics, the pending rows, re-driving stuck rows."""

    def __init__(self, database: Database, tables: MessagingTables) -> None:
        self.database = database
        self.table = tables.outbox

    async def stats(self, stuck_after_attempts: int) -> OutboxStats:
        """Count pending and stuck rows and find the oldest pending one."""
        outbox = self.table
        query = select(
            func.count(),
            func.coalesce(func.sum(case((outbox.c.attempts >= stuck_after_attempts, 1), else_=0)), 0),
            func.min(outbox.c.created_at),
        ).where(outbox.c.published_at.is_(None))
        async with self.database.session() as session:
            pending, stuck, oldest = (await session.execute(query)).one()
        if isinstance(oldest, str):  # SQLite's MIN() loses the column type
            oldest = dt.datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        return OutboxStats(pending=int(pending), stuck=int(stuck or 0), oldest_created_at=oldest)

    async def pending(self, *, min_attempts: int = 0, limit: int = 100) -> list[PendingEvent]:
        """Return unpublished rows in publishing order, those tried at least ``min_attempts`` times."""
        outbox = self.table
        query = (
            select(outbox)
            .where(outbox.c.published_at.is_(None), outbox.c.attempts >= min_attempts)
            .order_by(outbox.c.created_at, outbox.c.id)
            .limit(limit)
        )
        async with self.database.session() as session:
            rows = (await session.execute(query)).mappings().all()
        return [
            PendingEvent(
                id=str(row["id"]),
                routing_key=row["routing_key"],
                ordering_key=row["ordering_key"],
                created_at=row["created_at"],
                attempts=row["attempts"],
                next_attempt_at=row["next_attempt_at"],
                last_error=row["last_error"],
            )
            for row in rows
        ]

    async def redrive(self, ids: Sequence[str] | None = None, *, min_attempts: int = 0) -> int:
        """Make rows due now with a fresh attempt count (all pending rows tried ``min_attempts`` times,
        or the given ids); return how many. The relay picks them up at its next pass."""
        outbox = self.table
        condition = and_(outbox.c.published_at.is_(None), outbox.c.attempts >= min_attempts)
        if ids is not None:
            condition = and_(condition, outbox.c.id.in_([uuid.UUID(i) for i in ids]))
        statement = update(outbox).where(condition).values(attempts=0, next_attempt_at=None)
        async with self.database.session() as session:
            result = await session.execute(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def purge_published(self, older_than: dt.timedelta) -> int:
        """Delete rows published more than ``older_than`` ago; return how many."""
        outbox = self.table
        cutoff = utcnow() - older_than
        statement = delete(outbox).where(outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff)
        async with self.database.session() as session:
            result = await session.execute(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]


class OutboxRelay:
    """Publishes committed outbox rows, marks them published, retries failures without giving up.

    - Wakes on commit in this process and polls as a fallback (rows written by another replica).
    - While the broker is away it backs off between passes (doubling up to
      ``retry_max_seconds``) and spends no attempts: a row's ``attempts`` counts real tries only.
    - A row that fails while the broker is up (a handler error in embedded mode, a refused publish)
      waits its own back-off; its ordering key waits with it, other keys go on.
    - A row tried ``stuck_after_attempts`` times is logged as stuck and counted in
      ``lienthong_outbox_stuck``; it is still retried, and ``lienthong outbox redrive`` retries it now.
    - On PostgreSQL one relay per service publishes at a time (an advisory lock per pass), so that
      replicas cannot reorder a key's rows between them; the others stand by.
    - A crash after publishing and before marking publishes the row again: consumers are idempotent.
    """

    def __init__(
        self,
        database: Database,
        tables: MessagingTables,
        broker: Broker,
        source: str,
        *,
        policy: OutboxSection | None = None,
        metrics: OutboxMetrics | None = None,
        batch_size: int = 100,
    ) -> None:
        self.database = database
        self.tables = tables
        self.broker = broker
        self.source = source
        self.policy = policy or OutboxSection()
        self.metrics = metrics
        self.batch_size = batch_size
        self.outbox = Outbox(database, tables)
        self.broker_down_since: dt.datetime | None = None
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._outage_passes = 0
        self._last_purge = 0.0
        self._session_class = database.session_class

    def wake(self) -> None:
        self._wake.set()

    def _after_commit(self, session: Any) -> None:
        if session.info.pop(PENDING_KEY, False):
            self.wake()

    async def _broker_up(self) -> bool:
        try:
            await self.broker.ping()
        except Exception as exc:
            self.last_error = describe_error(exc)
            return False
        return True

    def _note_broker(self, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.broker_up.labels(self.source).set(1 if up else 0)
        if up and self.broker_down_since is not None:
            away = (utcnow() - self.broker_down_since).total_seconds()
            log.warning("%s: broker is back after %.1f s; publishing the outbox backlog", self.source, away)
            self.broker_down_since = None
            self._outage_passes = 0
        elif not up and self.broker_down_since is None:
            self.broker_down_since = utcnow()
            log.error(
                "%s: broker unavailable (%s); events stay in the outbox and are published when it is back",
                self.source,
                self.last_error,
            )

    def _claim_query(self, now: dt.datetime) -> Any:
        outbox = self.tables.outbox
        waiting_keys = select(outbox.c.ordering_key).where(
            outbox.c.published_at.is_(None),
            outbox.c.next_attempt_at > now,
            outbox.c.ordering_key.is_not(None),
        )
        return (
            select(outbox)
            .where(
                outbox.c.published_at.is_(None),
                or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now),
                or_(outbox.c.ordering_key.is_(None), outbox.c.ordering_key.not_in(waiting_keys)),
            )
            .order_by(outbox.c.created_at, outbox.c.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )

    async def publish_pending(self) -> int:
        """Publish one batch of due rows; return how many were published.

        Raises BrokerUnavailableError when a publish failed because the broker is away (the rows
        published before it are marked)."""
        outbox = self.tables.outbox
        published: list[object] = []
        blocked: set[str] = set()
        now = utcnow()
        unavailable: str | None = None
        async with self.database.session() as session:
            if not self.database.is_sqlite:
                lock = text("SELECT pg_try_advisory_xact_lock(hashtext(:k))")
                if not (await session.execute(lock, {"k": f"outbox:{self.database.schema}"})).scalar_one():
                    return 0  # another replica is relaying this service's outbox
            rows = (await session.execute(self._claim_query(now))).mappings().all()
            envelopes = [
                Envelope(
                    id=str(row["id"]),
                    type=row["routing_key"],
                    source=self.source,
                    occurred_at=row["created_at"],
                    data=row["payload"],
                    request_id=row["request_id"],
                )
                for row in rows
            ]
            # the in-process bus handles its batch consumers' share of the pass first, a transaction
            # per batch; rows tried before go one by one (a poison row fails no batch twice)
            await self.broker.deliver_batches(
                [e for e, row in zip(envelopes, rows, strict=True) if not row["attempts"]]
            )
            for unit in publishing_units(rows, self.broker.bundle_limit):
                # a row whose key waits (an earlier row of it failed in this pass) waits too
                due = [i for i in unit if rows[i]["ordering_key"] is None or rows[i]["ordering_key"] not in blocked]
                if not due:
                    continue
                try:  # one envelope goes as itself
                    await self.broker.publish_bundle([envelopes[i] for i in due])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    reason = describe_error(exc)
                    broker_up = await self._broker_up()
                    for i in due:
                        await self._record_failure(session, rows[i], reason, broker_up=broker_up)
                    if not broker_up:
                        unavailable = reason
                        break
                    # no key: nothing after it depends on it
                    blocked.update(rows[i]["ordering_key"] for i in due if rows[i]["ordering_key"] is not None)
                    continue
                published.extend(rows[i]["id"] for i in due)
            if published:  # one statement for the batch; a crash before it re-publishes (consumers dedupe)
                await session.execute(
                    update(outbox).where(outbox.c.id.in_(published)).values(published_at=utcnow(), next_attempt_at=None)
                )
        if published and self.metrics is not None:
            self.metrics.published.labels(self.source).inc(len(published))
        if unavailable is not None:
            raise BrokerUnavailableError(unavailable)
        return len(published)

    async def _record_failure(self, session: AsyncSession, row: Any, reason: str, *, broker_up: bool) -> None:
        """Count a real try; a row whose broker is up waits its own back-off, else the pass backs off."""
        outbox = self.tables.outbox
        attempts = int(row["attempts"]) + 1
        next_attempt_at = utcnow() + dt.timedelta(seconds=retry_delay(attempts, self.policy)) if broker_up else None
        await session.execute(
            update(outbox)
            .where(outbox.c.id == row["id"])
            .values(attempts=attempts, last_error=reason, next_attempt_at=next_attempt_at)
        )
        if self.metrics is not None:
            self.metrics.failures.labels(self.source).inc()
        self.last_error = reason
        extra = {"event_id": str(row["id"]), "event_type": row["routing_key"], "attempts": attempts}
        if attempts == self.policy.stuck_after_attempts:
            log.error(
                "%s: outbox event %s (%s) failed %d times and is stuck: %s; it is still retried every %.0f s "
                "at most; see `lienthong outbox list --stuck`",
                self.source,
                row["id"],
                row["routing_key"],
                attempts,
                reason,
                self.policy.retry_max_seconds,
                extra=extra,
            )
        else:
            log.warning(
                "%s: publishing %s %s failed: %s", self.source, row["routing_key"], row["id"], reason, extra=extra
            )

    def _outage_delay(self) -> float:
        self._outage_passes += 1
        return retry_delay(self._outage_passes, self.policy)

    async def _pause(self, seconds: float, *, wakeable: bool) -> None:
        if not wakeable:
            await asyncio.sleep(seconds)
            return
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for may swallow the cancellation that
        # stops the relay when a wake-up comes at the same moment
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def run(self) -> None:
        """Publish until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            if not await self._broker_up():
                self._note_broker(False)
                await self._pause(self._outage_delay(), wakeable=False)  # commits do not hurry an outage
                continue
            try:
                count = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except BrokerUnavailableError:
                self._note_broker(False)
                await self._pause(self._outage_delay(), wakeable=False)
                continue
            except Exception as exc:  # the database is away, say: back off the same way
                self.last_error = describe_error(exc)
                log.exception("%s: outbox relay pass failed; retrying", self.source)
                await self._pause(self._outage_delay(), wakeable=False)
                continue
            self._note_broker(True)
            self._outage_passes = 0
            if self.policy.retention_hours and loop.time() - self._last_purge > 600:
                self._last_purge = loop.time()
                try:
                    await self.outbox.purge_published(dt.timedelta(hours=self.policy.retention_hours))
                except Exception as exc:  # housekeeping: the next pass in ten minutes tries again
                    log.warning("%s: deleting old published outbox rows failed: %s", self.source, describe_error(exc))
            if count >= self.batch_size:
                continue
            await self._pause(self.policy.poll_seconds, wakeable=True)

    def start(self) -> None:
        # one listener on the database's session class (not one per session): a commit that
        # recorded events wakes the relay at once
        sa_event.listen(self._session_class, "after_commit", self._after_commit)
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.source}")

    async def stop(self) -> None:
        if sa_event.contains(self._session_class, "after_commit", self._after_commit):
            sa_event.remove(self._session_class, "after_commit", self._after_commit)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
