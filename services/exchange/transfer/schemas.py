"""Transfer failure bodies: what failed, where, why; what a re-send did."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.types import AgencyCode, StrictInt


class TransferFailureRead(BaseModel):
    id: uuid.UUID
    entry_id: uuid.UUID = Field(description="the feed entry (the receiver's X-LienThong-Delivery)")
    agency_code: str
    channel: Literal["push", "amqp"]
    target: str | None = Field(description="the webhook URL or bus queue tried")
    entry_type: str
    document_id: uuid.UUID
    delivery_id: uuid.UUID | None
    attempts: int
    reason: str
    failed_at: dt.datetime
    resent_at: dt.datetime | None
    resend_count: int


class TransferFailurePage(BaseModel):
    items: list[TransferFailureRead]
    next_cursor: str | None


class ResendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency_code: AgencyCode | None = Field(default=None, description="only this agency's failures (default: all)")
    limit: StrictInt = Field(default=1000, ge=1, le=10000, description="at most this many, oldest first")


class Resent(BaseModel):
    resent: list[uuid.UUID] = Field(description="the failures whose entries are queued again")
