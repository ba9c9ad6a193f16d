"""The signature service's tables: the trust store (anchors and intermediates, CRLs), its version
and its change history, beside the outbox and processed messages."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, new_id, new_metadata, utcnow
from shared.messaging import define_messaging_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)


class TrustCertificate(Base):
    """A CA certificate of the trust store: a root (trust anchor) or an intermediate."""

    __tablename__ = "trust_certificate"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    subject: Mapped[str] = mapped_column(String(1000))
    issuer: Mapped[str] = mapped_column(String(1000))
    serial: Mapped[str] = mapped_column(String(100))
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrustCrl(Base):
    """A certificate revocation list, uploaded by an administrator."""

    __tablename__ = "trust_crl"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    issuer: Mapped[str] = mapped_column(String(1000))
    this_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_count: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrustStoreVersion(Base):
    """The trust store's version: one row, incremented by every change (results are cached per version)."""

    __tablename__ = "trust_store_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrustChange(Base):
    """One change of the trust store: what was added or removed, by whom, when, at which version."""

    __tablename__ = "trust_change"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    version: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(20))
    item: Mapped[str] = mapped_column(String(20))
    item_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    subject: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
