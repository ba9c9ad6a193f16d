"""The registry's tables: the province's directory of agencies, their levels, history, groups,
delivery endpoints, certificates, and the API clients (with their secrets) acting for them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, new_id, new_metadata, utcnow
from shared.messaging import define_messaging_tables
from shared.types import CODE_MAX_LENGTH


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)


class AgencyLevel(Base):
    """An administrative level (province, department, district, commune …): data, not code."""

    __tablename__ = "agency_level"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int] = mapped_column(Integer, default=100)


class Agency(Base):
    """An agency of the province, identified by its national code (mã định danh)."""

    __tablename__ = "agency"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # either form (an agency known only by its Decision 20/2020 code has it in both columns)
    code: Mapped[str] = mapped_column(String(CODE_MAX_LENGTH), unique=True)
    new_code: Mapped[str | None] = mapped_column(String(CODE_MAX_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    short_name: Mapped[str | None] = mapped_column(String(100))
    search_text: Mapped[str] = mapped_column(String(400), default="")
    level: Mapped[str] = mapped_column(ForeignKey("agency_level.code"), index=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agency.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    successor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agency.id"))
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    address: Mapped[str | None] = mapped_column(Text)
    website: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AgencyChange(Base):
    """One change to an agency: what changed, who changed it, when."""

    __tablename__ = "agency_change"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecipientGroup(Base):
    """A named recipient group for broadcast: static members plus rules resolved at send time."""

    __tablename__ = "recipient_group"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(1000))
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupMember(Base):
    """A static member of a recipient group."""

    __tablename__ = "group_member"

    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipient_group.id"), primary_key=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), primary_key=True, index=True)


class DeliveryEndpoint(Base):
    """How an agency receives: pull (REST inbox, the default), push (webhook) or amqp (provincial bus)."""

    __tablename__ = "delivery_endpoint"

    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(10))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    amqp_queue: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgencyCertificate(Base):
    """An X.509 certificate of an agency: its seal certificate or one of its signers'."""

    __tablename__ = "agency_certificate"
    __table_args__ = (UniqueConstraint("agency_id", "sha256", name="uq_agency_certificate_agency_sha256"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(1000))
    issuer: Mapped[str] = mapped_column(String(1000))
    serial: Mapped[str] = mapped_column(String(100))
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sha1: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    key_usage: Mapped[list[str]] = mapped_column(JSON)
    pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiClient(Base):
    """A credential a system uses to act for an agency (or, without agency, the bootstrap admin)."""

    __tablename__ = "api_client"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    agency_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agency.id"), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ClientSecret(Base):
    """A secret of an API client (argon2id hash); during a rotation the old one lives until it expires."""

    __tablename__ = "client_secret"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_pk: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_client.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ClientCertificate(Base):
    """A TLS client certificate that identifies an API client's system at the token endpoint instead
    of a secret (RFC 8705); its tokens are bound to it (``cnf.x5t#S256``). One certificate, one client."""

    __tablename__ = "client_certificate"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    client_pk: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_client.id"), index=True)
    thumbprint: Mapped[str] = mapped_column(String(43), unique=True)  # x5t#S256: base64url SHA-256 of the DER
    subject: Mapped[str] = mapped_column(String(1000))
    issuer: Mapped[str] = mapped_column(String(1000))
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# a chain position: BIGINT on PostgreSQL; INTEGER on SQLite (its 64-bit integer) keeps the rowid alias
AUDIT_SEQ = BigInteger().with_variant(Integer, "sqlite")


class AuditEntry(Base):
    """One entry of the audit chain (services/registry/audit): a security-relevant action of any
    service, hash-chained to the entry before it. Never document content."""

    __tablename__ = "audit_entry"

    seq: Mapped[int] = mapped_column(AUDIT_SEQ, primary_key=True, autoincrement=False)
    message_id: Mapped[str] = mapped_column(String(100), unique=True)
    source: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(60), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(String(64), index=True)
    agency_code: Mapped[str | None] = mapped_column(String(CODE_MAX_LENGTH), index=True)
    document_id: Mapped[str | None] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head (one row): the last entry's sequence number and hash. Appending locks it,
    so appends are serial whatever the number of registry replicas."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(AUDIT_SEQ)
    hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AuditAnchor(Base):
    """The chain head at ``seq``, signed with the gateway's Ed25519 key (named by its fingerprint,
    and ``kid`` when the key has one), so that rewriting the chain up to there is detected."""

    __tablename__ = "audit_anchor"

    seq: Mapped[int] = mapped_column(AUDIT_SEQ, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kid: Mapped[str | None] = mapped_column(String(100))
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(100))
    signature: Mapped[str] = mapped_column(String(200))


class AgencyUser(Base):
    """A person's account for the web console, bound to one agency with one role (its scopes are
    the role's, ``shared.roles``); the password is stored as an argon2id hash only."""

    __tablename__ = "agency_user"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agency.id"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    password_hash: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
