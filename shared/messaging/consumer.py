"""Idempotent consumers: at-least-once transport, exactly-once effect.

The handler runs in one transaction with the insert of ``(consumer, message id)`` into
``processed_message``; a redelivered message finds its row and is skipped.

A batch consumer (:class:`IdempotentBatchConsumer`) does the same for many messages in one
transaction: one statement records the batch's ids as processed and returns those that were not
yet (the others are skipped), the handler takes those, one commit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import String, bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database, UTCDateTime, utcnow
from shared.messaging.envelope import Envelope
from shared.messaging.tables import MessagingTables

log = logging.getLogger("lienthong.consumer")

EventHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]
BatchEventHandler = Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]]


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


class IdempotentBatchConsumer:
    """Wraps a batch handler so that each message id takes effect once per consumer name.

    Called with one envelope it is an :class:`IdempotentConsumer` (the single-message path: the
    handler gets a list of one); :meth:`handle_batch` takes many in one transaction."""

    def __init__(self, database: Database, tables: MessagingTables, name: str, handler: BatchEventHandler) -> None:
        self.database = database
        self.tables = tables
        self.name = name
        self.handler = handler
        self.single = IdempotentConsumer(database, tables, name, self._handle_one)
        self._claim = self._claim_statement()

    async def _handle_one(self, session: AsyncSession, envelope: Envelope) -> None:
        await self.handler(session, [envelope])

    async def __call__(self, envelope: Envelope) -> None:
        await self.single(envelope)

    def _claim_statement(self) -> Any:
        """``INSERT INTO processed_message … SELECT`` the batch's ids ``ON CONFLICT DO NOTHING
        RETURNING message_id``: one statement records them and names those not processed before.
        The ids travel as one parameter (an array; JSON on SQLite), so the statement is the same
        whatever the batch's size (compiled and prepared once)."""
        processed = self.tables.processed
        message_id: Any
        if self.database.is_sqlite:
            message_id = func.json_each(bindparam("ids", type_=String)).table_valued("value").c.value
            insert: Any = sqlite.insert
        else:
            message_id = func.unnest(bindparam("ids", type_=postgresql.ARRAY(String))).column_valued("message_id")
            insert = postgresql.insert
        rows = select(
            bindparam("consumer", type_=String),
            message_id,
            bindparam("processed_at", type_=UTCDateTime),
        ).where(text("1 = 1"))  # SQLite: an upsert's SELECT needs a WHERE to parse
        return (
            insert(processed)
            .from_select(["consumer", "message_id", "processed_at"], rows)
            .on_conflict_do_nothing()
            .returning(processed.c.message_id)
        )

    async def handle_batch(self, envelopes: Sequence[Envelope]) -> None:
        """Handle the messages not processed before in one transaction, their ids recorded processed
        in it; raises (nothing committed) when the handler does."""
        first: dict[str, Envelope] = {}
        for envelope in envelopes:  # a message delivered twice in one batch counts once
            first.setdefault(envelope.id, envelope)
        unique = list(first.values())
        ids = list(first)
        async with self.database.session() as session:
            result = await session.execute(
                self._claim,
                {
                    "consumer": self.name,
                    "ids": json.dumps(ids) if self.database.is_sqlite else ids,
                    "processed_at": utcnow(),
                },
            )
            fresh = set(result.scalars().all())
            if len(fresh) < len(unique):
                log.info("%s: %d messages already processed, skipped", self.name, len(unique) - len(fresh))
            todo = [e for e in unique if e.id in fresh]
            if todo:
                await self.handler(session, todo)
