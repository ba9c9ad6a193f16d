"""Trust-store bodies."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CertificateKind = Literal["root", "intermediate"]


class TrustCertificateUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: CertificateKind = Field(description="root: a trust anchor; intermediate: a CA below one, for chain building")
    certificate: str = Field(min_length=1, max_length=200_000, description="PEM text, or the DER bytes in base64")


class TrustCertificateRead(BaseModel):
    id: uuid.UUID
    kind: CertificateKind
    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    created_by: str
    created_at: dt.datetime


class TrustCertificatePage(BaseModel):
    items: list[TrustCertificateRead]
    next_cursor: str | None


class CrlUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crl: str = Field(min_length=1, max_length=20_000_000, description="PEM text (X509 CRL), or the DER bytes in base64")


class CrlRead(BaseModel):
    id: uuid.UUID
    issuer: str
    this_update: dt.datetime
    next_update: dt.datetime | None
    revoked_count: int
    sha256: str
    created_by: str
    created_at: dt.datetime


class CrlPage(BaseModel):
    items: list[CrlRead]
    next_cursor: str | None


class TrustChangeRead(BaseModel):
    version: int
    action: Literal["added", "removed"]
    item: Literal["root", "intermediate", "crl"]
    item_id: uuid.UUID
    subject: str
    sha256: str
    actor: str
    at: dt.datetime


class TrustChangePage(BaseModel):
    items: list[TrustChangeRead]
    next_cursor: str | None


class TrustStoreSummary(BaseModel):
    """The trust store's state and the deployment's revocation policy."""

    version: int
    changed_at: dt.datetime
    roots: int
    intermediates: int
    crls: int
    revocation_mode: Literal["soft-fail", "hard-fail"]
    fetch_revocation: bool
