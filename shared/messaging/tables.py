"""The two tables every service carries for reliable messaging: its outbox and its processed messages."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table, Text, Uuid

from shared.db import UTCDateTime


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    processed: Table


def _outbox_columns() -> list[Column[object]]:
    return [
        Column("id", Uuid, primary_key=True),
        Column("routing_key", String(200), nullable=False),
        Column("payload", JSON, nullable=False),
        Column("request_id", String(100), nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("published_at", UTCDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
        *_outbox_retry_columns(),
    ]


def _outbox_retry_columns() -> list[Column[object]]:
    # ordering_key: rows sharing it are published in order; next_attempt_at: a failed row's back-off
    return [
        Column("ordering_key", String(200), nullable=True),
        Column("next_attempt_at", UTCDateTime, nullable=True),
    ]


def _processed_columns() -> list[Column[object]]:
    return [
        Column("consumer", String(200), primary_key=True),
        Column("message_id", String(100), primary_key=True),
        Column("processed_at", UTCDateTime, nullable=False),
    ]


def define_messaging_tables(metadata: MetaData) -> MessagingTables:
    """Add ``outbox_message`` and ``processed_message`` to a service's metadata."""
    outbox = Table("outbox_message", metadata, *_outbox_columns())
    Index("ix_outbox_message_pending", outbox.c.published_at, outbox.c.created_at)
    processed = Table("processed_message", metadata, *_processed_columns())
    return MessagingTables(outbox=outbox, processed=processed)


def create_messaging_tables() -> None:
    """Migration step: create both tables (call from a service's first Alembic revision)."""
    from alembic import op

    columns = [c for c in _outbox_columns() if c.name not in {"ordering_key", "next_attempt_at"}]
    op.create_table("outbox_message", *columns)
    op.create_index("ix_outbox_message_pending", "outbox_message", ["published_at", "created_at"])
    op.create_table("processed_message", *_processed_columns())


def add_outbox_retry_columns() -> None:
    """Migration step: the outbox's ordering key and per-row back-off (the relay never gives a row up).

    Rows an older relay gave up after 20 tries are pending again: the new relay publishes them."""
    from alembic import op

    with op.batch_alter_table("outbox_message") as batch:
        for column in _outbox_retry_columns():
            batch.add_column(column)


def drop_outbox_retry_columns() -> None:
    """Migration step: undo :func:`add_outbox_retry_columns`."""
    from alembic import op

    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("next_attempt_at")
        batch.drop_column("ordering_key")


def drop_messaging_tables() -> None:
    """Migration step: drop both tables."""
    from alembic import op

    op.drop_table("processed_message")
    op.drop_index("ix_outbox_message_pending", table_name="outbox_message")
    op.drop_table("outbox_message")
