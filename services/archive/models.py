"""The archive's tables: one record per document exchanged (full-text index to come)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, new_metadata
from shared.messaging import define_messaging_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)


class ArchiveRecord(Base):
    """What the archive knows of a document, from its ``document.submitted.v1`` event."""

    __tablename__ = "archive_record"

    document_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    sender_code: Mapped[str] = mapped_column(String(13), index=True)
    code: Mapped[str] = mapped_column(String(42))
    type_name: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(500))
    recipient_codes: Mapped[list[str]] = mapped_column(JSON)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
