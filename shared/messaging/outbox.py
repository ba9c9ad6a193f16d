"""The transactional outbox: events are rows written in the same transaction as the state change.

``record_event`` adds the row to the caller's session; nothing reaches the broker until the
transaction commits, and nothing committed is lost: the relay publishes it, even after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database, new_id, utcnow
from shared.messaging.broker import Broker
from shared.messaging.envelope import Envelope
from shared.messaging.tables import MessagingTables
from shared.observability import current_request_id

log = logging.getLogger("lienthong.outbox")

WAKE_KEY = "outbox_wake"


async def record_event(session: AsyncSession, tables: MessagingTables, event_type: str, data: dict[str, Any]) -> str:
    """Write an event to the outbox in the session's transaction; the relay wakes on commit."""
    message_id = new_id()
    await session.execute(
        insert(tables.outbox).values(
            id=message_id,
            routing_key=event_type,
            payload=data,
            request_id=current_request_id(),
            created_at=utcnow(),
            attempts=0,
        )
    )
    wake: Callable[[], None] | None = session.info.get(WAKE_KEY)
    if wake is not None and not session.info.get("_outbox_hooked"):
        session.info["_outbox_hooked"] = True
        sa_event.listen(session.sync_session, "after_commit", lambda _s: wake(), once=True)
    return str(message_id)


class OutboxRelay:
    """Publishes committed outbox rows in order, marks them published, retries failures.

    Wakes on commit in this process and polls as a fallback (rows written by another replica).
    On PostgreSQL several relays may run: rows are claimed with ``FOR UPDATE SKIP LOCKED``.
    A crash after publishing and before marking publishes the row again: consumers are idempotent.
    """

    def __init__(
        self,
        database: Database,
        tables: MessagingTables,
        broker: Broker,
        source: str,
        *,
        poll_seconds: float = 2.0,
        batch_size: int = 100,
        max_attempts: int = 20,
    ) -> None:
        self.database = database
        self.tables = tables
        self.broker = broker
        self.source = source
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        database.sessionmaker.configure(info={WAKE_KEY: self.wake})

    def wake(self) -> None:
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; return how many were published."""
        outbox = self.tables.outbox
        published: list[object] = []
        async with self.database.session() as session:
            query = (
                select(outbox)
                .where(outbox.c.published_at.is_(None), outbox.c.attempts < self.max_attempts)
                .order_by(outbox.c.created_at, outbox.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = (await session.execute(query)).mappings().all()
            for row in rows:
                envelope = Envelope(
                    id=str(row["id"]),
                    type=row["routing_key"],
                    source=self.source,
                    occurred_at=row["created_at"],
                    data=row["payload"],
                    request_id=row["request_id"],
                )
                try:
                    await self.broker.publish(envelope)
                except Exception as exc:  # the row stays pending; later rows wait to keep order
                    log.warning("publishing %s %s failed: %s", envelope.type, envelope.id, exc)
                    await session.execute(
                        update(outbox)
                        .where(outbox.c.id == row["id"])
                        .values(attempts=outbox.c.attempts + 1, last_error=str(exc)[:2000])
                    )
                    break
                published.append(row["id"])
            if published:  # one statement for the batch; a crash before it re-publishes (consumers dedupe)
                await session.execute(update(outbox).where(outbox.c.id.in_(published)).values(published_at=utcnow()))
        return len(published)

    async def run(self) -> None:
        """Publish until cancelled."""
        while True:
            self._wake.clear()
            try:
                count = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                count = 0
            if count >= self.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.source}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
