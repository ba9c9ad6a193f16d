"""The archive's tables: one record per document, exchanged or digitised; the source of truth the
search index is derived from (``lienthong archive reindex`` rebuilds it from these rows)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Date, Index, Integer, String, Text, Uuid
from sqlalchemy import text as sql_text  # the class has a column named text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, new_metadata
from shared.messaging import define_messaging_tables
from shared.types import CODE_MAX_LENGTH

TEXT_WAITING = "text_status IN ('pending', 'extracting')"  # the records the text enricher may claim


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)


class ArchiveRecord(Base):
    """What the archive knows of a document: its metadata, who may read it, its text."""

    __tablename__ = "archive_record"

    document_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(10), default="exchanged")  # exchanged | digitised
    kind: Mapped[str] = mapped_column(String(10), default="new")  # new | update | replace
    original_document_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    sender_code: Mapped[str] = mapped_column(String(CODE_MAX_LENGTH), index=True)  # the issuing agency
    code: Mapped[str] = mapped_column(String(42))  # number/notation as issued: 24/KH-UBND
    type_name: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(500))
    urgency: Mapped[int] = mapped_column(Integer, default=0)
    promulgation_date: Mapped[dt.date | None] = mapped_column(Date, default=None)
    due_date: Mapped[dt.date | None] = mapped_column(Date, default=None)
    signature_verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    recipient_codes: Mapped[list[str]] = mapped_column(JSON)
    # recipient code -> {"delivery_id", "status" (pending, 01…06), "recall_status" (13, 15, 16 or None)}
    deliveries: Mapped[dict[str, dict[str, Any]]] = mapped_column(JSON, default=dict)
    readers: Mapped[list[str]] = mapped_column(JSON, default=list)  # the agencies that may read it
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # place, signer, description …
    text: Mapped[str] = mapped_column(Text, default="")
    text_status: Mapped[str] = mapped_column(String(10), default="none")  # none|pending|extracting|done|failed
    text_error: Mapped[str | None] = mapped_column(String(500), default=None)
    text_claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    retention_years: Mapped[int | None] = mapped_column(Integer, default=None)  # None: permanent
    file_name: Mapped[str | None] = mapped_column(String(255), default=None)
    file_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    content_type: Mapped[str | None] = mapped_column(String(100), default=None)
    ingested_by: Mapped[str | None] = mapped_column(String(CODE_MAX_LENGTH), default=None)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    # the index feeder's keyset: a page of changes is a range scan of this index
    __table_args__ = (
        Index("ix_archive_record_change_key", "changed_at", "document_id"),
        # the text enricher's claim: only the records waiting for their text (its statuses written in
        # the claim's text, so every plan can use it; migration 0006)
        Index(
            "ix_archive_record_text_waiting",
            "text_claimed_at",
            postgresql_where=sql_text(TEXT_WAITING),
            sqlite_where=sql_text(TEXT_WAITING),
        ),
    )
