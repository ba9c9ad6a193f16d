"""What the auditor API shows of the audit chain (never document content)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class AuditEntryRead(BaseModel):
    seq: int = Field(description="Position in the chain, from 1")
    message_id: str = Field(description="The id of the event that carried the entry (appended once)")
    source: str = Field(description="The service that recorded the action")
    action: str = Field(examples=["document.sent"])
    outcome: str = Field(examples=["success", "refused", "throttled"])
    actor: str | None = Field(description="The API client id that acted (or a service name)")
    agency_code: str | None
    document_id: str | None
    target: str | None
    details: dict[str, Any]
    request_id: str | None
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryRead]
    next_cursor: str | None


class AnchorRead(BaseModel):
    seq: int
    hash: str
    signed_at: dt.datetime
    kid: str | None
    key_fingerprint: str = Field(description="RFC 7638 thumbprint of the gateway key that signed")


class AuditHeadRead(BaseModel):
    seq: int = Field(description="The last entry's position (0: empty chain)")
    hash: str
    last_anchor: AnchorRead | None
