"""Transfer failure bodies: what failed, where, why; what a re-send did."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.exchange.events import FeedEntryAdded
from shared.types import AgencyCode, StrictInt


class TransferFailureRead(BaseModel):
    id: uuid.UUID
    entry_id: uuid.UUID = Field(description="the feed entry (the receiver's X-LienThong-Delivery)")
    agency_code: str
    channel: Literal["push", "amqp", "hub"]
    target: str | None = Field(description="the webhook URL, bus queue or national hub tried")
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


class TransferFailureReport(BaseModel):
    """A feed entry another process of the deployment could not deliver after every try (the hub
    connector: the national hub did not take it): recorded as the dispatcher records its own."""

    model_config = ConfigDict(extra="forbid")

    entry: FeedEntryAdded
    channel: Literal["hub"]
    target: str | None = Field(default=None, max_length=2000)
    attempts: StrictInt = Field(ge=1, le=1000)
    reason: str = Field(min_length=1, max_length=2000)
