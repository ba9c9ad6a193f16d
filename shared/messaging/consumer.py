"""Idempotent consumers: at-least-once transport, exactly-once effect.

The handler runs in one transaction with the insert of ``(consumer, message id)`` into
``processed_message``; a redelivered message finds its row and is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database, utcnow
from shared.messaging.envelope import Envelope
from shared.messaging.tables import MessagingTables

log = logging.getLogger("lienthong.consumer")

EventHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]


class IdempotentConsumer:
    """Wraps a handler so that each message id takes effect once per consumer name."""

    def __init__(self, database: Database, tables: MessagingTables, name: str, handler: EventHandler) -> None:
        self.database = database
        self.tables = tables
        self.name = name
        self.handler = handler

    async def __call__(self, envelope: Envelope) -> None:
        dialect_insert = sqlite.insert if self.database.is_sqlite else postgresql.insert
        statement = (
            dialect_insert(self.tables.processed)
            .values(consumer=self.name, message_id=envelope.id, processed_at=utcnow())
            .on_conflict_do_nothing()
        )
        async with self.database.session() as session:
            result = await session.execute(statement)
            if result.rowcount == 0:  # type: ignore[attr-defined]
                log.info("%s: message %s already processed, skipped", self.name, envelope.id)
                return
            await self.handler(session, envelope)
