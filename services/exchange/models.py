"""The exchange's tables: documents, their attachments, one delivery per recipient and its history."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.exchange.statistics.histogram import HISTOGRAM_COLUMNS
from shared.db import UTCDateTime, new_id, new_metadata, utcnow
from shared.messaging import define_messaging_tables
from shared.types import CODE_MAX_LENGTH

# The number as the duplicate check compares it: without leading zeros. The index and the query
# (services/exchange/document/repository.py) use this exact expression, so the index serves it.
NUMBER_KEY_SQL = "ltrim(code_number, '0')"


def number_key(code_number: str) -> str:
    """A document number as the duplicate check compares it ("05" and "5" are one number)."""
    return code_number.lstrip("0")


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)


class Document(Base):
    """An official document as sent, with its Decree 30/2020 metadata. The sender is an agency code.

    ``kind`` is ``new``, ``update`` (metadata or recipients of ``original_id`` changed) or
    ``replace`` (supersedes ``original_id``). A number and notation is unique per sender and year
    among new documents, the number compared without its leading zeros, and so is its edXML
    DocumentId (``OrganId,yyyy/MM/dd,Number/Notation``).

    The edXML (QCVN 102) parts that are nested and rarely queried are JSON: ``to_places``,
    ``appendixes``, ``response_for`` (a list), ``sender_organ`` (the sender's organ info frozen at
    send time), ``trace`` (TraceHeader hops) and ``business`` (the Bussiness block)."""

    __tablename__ = "document"
    __table_args__ = (
        UniqueConstraint("sender_code", "idempotency_key", name="uq_document_sender_idempotency"),
        UniqueConstraint("sender_code", "sender_document_id", name="uq_document_sender_document_id"),
        # "5" and "05" are the same number (Decree 30 writes numbers below 10 with a leading zero)
        Index(
            "uq_document_number",
            "sender_code",
            text(NUMBER_KEY_SQL),
            "code_notation",
            "promulgation_year",
            unique=True,
            sqlite_where=text("kind = 'new'"),
            postgresql_where=text("kind = 'new'"),
        ),
        Index(
            "uq_document_edxml_id",  # the DocumentId first: never a candidate for a sender's other look-ups
            "edxml_document_id",
            "sender_code",
            unique=True,
            sqlite_where=text("kind = 'new'"),
            postgresql_where=text("kind = 'new'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    sender_code: Mapped[str] = mapped_column(String(CODE_MAX_LENGTH), index=True)
    sender_client_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    sender_document_id: Mapped[str | None] = mapped_column(String(100))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10), default="new")
    original_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("document.id"))
    update_info: Mapped[dict[str, bool] | None] = mapped_column(JSON)
    superseded_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    recall_reason: Mapped[str | None] = mapped_column(String(2000))
    type_code: Mapped[str | None] = mapped_column(String(10))
    promulgation_year: Mapped[int] = mapped_column(Integer)
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
    response_for: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    # edXML (QCVN 102) fields beside the Decree 30 ones
    edxml_document_id: Mapped[str | None] = mapped_column(String(100))
    # DocumentType/Type and TypeDetail: numbers that differ between systems, kept as written
    type_number: Mapped[str | None] = mapped_column(String(50))
    type_detail: Mapped[str | None] = mapped_column(String(50))
    copy_form: Mapped[str | None] = mapped_column(String(3))  # SY, TrS, SL: a copy, not a type
    circulation: Mapped[str | None] = mapped_column(String(100))  # Lưu hành nội bộ, Xem xong trả lại
    content: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(30))
    sphere_of_promulgation: Mapped[str | None] = mapped_column(String(100))
    typer_notation: Mapped[str | None] = mapped_column(String(100))
    promulgation_amount: Mapped[int | None] = mapped_column(Integer)
    direction: Mapped[bool | None] = mapped_column(Boolean)
    to_places: Mapped[list[str] | None] = mapped_column(JSON)
    appendixes: Mapped[list[str] | None] = mapped_column(JSON)
    sender_organ: Mapped[dict[str, str | None] | None] = mapped_column(JSON)
    trace: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    business: Mapped[dict[str, object] | None] = mapped_column(JSON)
    redirected: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    # the main file's signatures (the signature policy): valid, invalid, indeterminate, unsigned, or
    # pending until a flagged document is verified; None when its type's policy is off
    signature_verdict: Mapped[str | None] = mapped_column(String(16))
    signature_reasons: Mapped[list[str] | None] = mapped_column(JSON)
    signature_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
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
    content_id: Mapped[str | None] = mapped_column(String(100))  # edXML ContentId (the packet links cid:)
    description: Mapped[str | None] = mapped_column(String(500))


class Delivery(Base):
    """One recipient's copy of a document and its national status."""

    __tablename__ = "delivery"
    __table_args__ = (UniqueConstraint("document_id", "recipient_code", name="uq_delivery_document_recipient"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("document.id"), index=True)
    recipient_code: Mapped[str] = mapped_column(String(CODE_MAX_LENGTH), index=True)
    status: Mapped[str] = mapped_column(String(10))
    recall_status: Mapped[str | None] = mapped_column(String(2))
    recalled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # by then the recipient registers (03) or returns (02) it: Decree 30, Art. 4 (services/exchange/calendar.py)
    arrival_deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the reporter's own timestamp of the latest report counted: an older one is stale
    reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # the recipient's answer to an update or a replacement: 15 agreed, 16 refused
    update_answer: Mapped[str | None] = mapped_column(String(2))
    # the recipient's webhook or bus queue refused it after every try (cleared by a re-send)
    transfer_failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    transfer_error: Mapped[str | None] = mapped_column(String(2000))
    # the recipient's organ info (edXML To) frozen at send time
    organ: Mapped[dict[str, str | None] | None] = mapped_column(JSON)


class DeliveryEvent(Base):
    """One change in a delivery's life: the status reached, who reported it, when, why."""

    __tablename__ = "delivery_event"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("delivery.id"), index=True)
    status: Mapped[str] = mapped_column(String(10))
    actor_code: Mapped[str] = mapped_column(String(CODE_MAX_LENGTH))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the reporter's own timestamp (``created_at`` is when the exchange received it)
    reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # who reported it: Department, Staff, Email, Mobile (edXML StaffInfo)
    staff: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # applied, repeated (a further 04/05: logged only) or stale (older than the report stored);
    # None: a change made by the exchange or the sender (pending, 13)
    outcome: Mapped[str | None] = mapped_column(String(10))


class FeedEntry(Base):
    """One entry of an agency's feed: what was addressed to it (a delivery, a recall) or what
    happened to what it sent (a status, a failed transfer), numbered 1, 2, 3 … per agency in the
    order the transactions committed."""

    __tablename__ = "feed_entry"
    __table_args__ = (UniqueConstraint("agency_code", "seq", name="uq_feed_entry_agency_seq"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_code: Mapped[str] = mapped_column(String(35))
    # NULL only inside the transaction that adds it, on PostgreSQL: numbered at its commit (0011)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(50))
    document_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    data: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedCounter(Base):
    """The last number given in an agency's feed; its row lock orders the agency's entries."""

    __tablename__ = "feed_counter"

    agency_code: Mapped[str] = mapped_column(String(35), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class TransferFailure(Base):
    """A feed entry a webhook or bus queue did not take after every try (re-sent by an admin)."""

    __tablename__ = "transfer_failure"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    agency_code: Mapped[str] = mapped_column(String(35), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    target: Mapped[str | None] = mapped_column(String(2000))
    entry_type: Mapped[str] = mapped_column(String(50))
    document_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    attempts: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resend_count: Mapped[int] = mapped_column(Integer, default=0)


# --- statistics: rollups of the delivery history (services/exchange/statistics) -----------------

# the counters of one agency in one month: as a sender (documents, deliveries, recipients reached,
# recalls) and as a recipient (received, each status reached, 01 in time); then the histograms of
# the time from sending to 01, 03 and 06 of the deliveries it received (histogram.BOUNDS)
STAT_SENDER_COUNTERS = (
    "documents_sent",
    "deliveries_sent",
    "recipients_reached",
    "recalls_requested",
    "recalls_agreed",
    "recalls_refused",
)
STAT_RECIPIENT_COUNTERS = (
    "received",
    "arrived",
    "arrived_in_time",
    "rejected",
    "accepted",
    "assigned",
    "processing",
    "completed",
)
STAT_COUNTERS = STAT_SENDER_COUNTERS + STAT_RECIPIENT_COUNTERS + HISTOGRAM_COLUMNS

stat_agency_month = Table(
    "stat_agency_month",
    Base.metadata,
    Column("agency_code", String(13), primary_key=True),
    Column("month", String(7), primary_key=True),  # YYYY-MM in the exchange's time zone
    *(Column(name, Integer, nullable=False, server_default=text("0")) for name in STAT_COUNTERS),
)

stat_agency_activity = Table(
    "stat_agency_activity",
    Base.metadata,
    Column("agency_code", String(13), primary_key=True),
    Column("last_active_at", UTCDateTime, nullable=False),
)

stat_overdue = Table(
    "stat_overdue",
    Base.metadata,
    Column("agency_code", String(13), primary_key=True),
    Column("overdue", Integer, nullable=False),
)

stat_state = Table(
    "stat_state",
    Base.metadata,
    Column("name", String(40), primary_key=True),
    Column("watermark", UTCDateTime, nullable=False),
    Column("refreshed_at", UTCDateTime, nullable=False),
)

# the refresh reads the history by time, and the overdue snapshot only the deliveries past their
# arrival deadline or due date (not every open one: informational documents stay open for ever)
Index("ix_delivery_event_created_at", DeliveryEvent.created_at)
Index(
    "ix_delivery_pending_deadline",
    Delivery.arrival_deadline,
    Delivery.recipient_code,
    sqlite_where=text("status = 'pending'"),
    postgresql_where=text("status = 'pending'"),
)
Index(
    "ix_delivery_open_due",
    Delivery.due_date,
    Delivery.recipient_code,
    sqlite_where=text("due_date IS NOT NULL AND status NOT IN ('02', '06')"),
    postgresql_where=text("due_date IS NOT NULL AND status NOT IN ('02', '06')"),
)
