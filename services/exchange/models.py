"""The exchange's tables: documents, their attachments, one delivery per recipient and its history."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, Date, ForeignKey, Integer, SmallInteger, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, new_id, new_metadata, utcnow
from shared.messaging import define_messaging_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)


class Document(Base):
    """An official document as sent, with its Decree 30/2020 metadata. The sender is an agency code."""

    __tablename__ = "document"
    __table_args__ = (UniqueConstraint("sender_code", "idempotency_key", name="uq_document_sender_idempotency"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    sender_code: Mapped[str] = mapped_column(String(13), index=True)
    sender_client_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    code_number: Mapped[str] = mapped_column(String(11))
    code_notation: Mapped[str] = mapped_column(String(30))
    type_name: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(500))
    promulgation_place: Mapped[str | None] = mapped_column(String(100))
    promulgation_date: Mapped[dt.date] = mapped_column(Date)
    signer_competence: Mapped[str | None] = mapped_column(String(100))
    signer_position: Mapped[str | None] = mapped_column(String(100))
    signer_name: Mapped[str | None] = mapped_column(String(50))
    urgency: Mapped[int] = mapped_column(SmallInteger, default=0)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    steering_type: Mapped[int] = mapped_column(SmallInteger, default=0)
    page_count: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(String(500))
    response_for: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Attachment(Base):
    """A file of a document; its bytes live in the content-addressed blob store under ``sha256``."""

    __tablename__ = "attachment"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("document.id"), index=True)
    position: Mapped[int] = mapped_column(SmallInteger)
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))


class Delivery(Base):
    """One recipient's copy of a document and its national status."""

    __tablename__ = "delivery"
    __table_args__ = (UniqueConstraint("document_id", "recipient_code", name="uq_delivery_document_recipient"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("document.id"), index=True)
    recipient_code: Mapped[str] = mapped_column(String(13), index=True)
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryEvent(Base):
    """One change in a delivery's life: the status reached, who reported it, when, why."""

    __tablename__ = "delivery_event"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("delivery.id"), index=True)
    status: Mapped[str] = mapped_column(String(10))
    actor_code: Mapped[str] = mapped_column(String(13))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
