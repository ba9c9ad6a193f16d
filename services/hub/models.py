"""The hub connector's tables: one row per packet it sent to or took from the national hub,
beside the outbox and processed messages."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Index, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, new_id, new_metadata, utcnow
from shared.messaging import define_messaging_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)


class HubMessage(Base):
    """A packet across the hub: ``out`` (a delivery sent, a status carried back) or ``in`` (a
    document or a status taken), with the hub's message id and what it is locally.

    ``key`` makes each one happen once: ``delivery:<id>`` for a document sent, ``entry:<id>`` for a
    status carried back, ``hub:<message id>`` for a packet taken."""

    __tablename__ = "hub_message"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    direction: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(10))
    hub_message_id: Mapped[str | None] = mapped_column(String(200))
    edxml_document_id: Mapped[str | None] = mapped_column(String(200))
    peer_code: Mapped[str] = mapped_column(String(35))
    document_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    outcome: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(2000))
    recipients: Mapped[str | None] = mapped_column(Text)  # a document taken: the local recipients it went to
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_hub_message_document", "edxml_document_id", "peer_code"),
        Index("ix_hub_message_local_document", "document_id"),
    )
