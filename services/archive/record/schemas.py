"""Archive record bodies."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.text import storable
from shared.types import CODE_MAX_LENGTH


class DeliveryView(BaseModel):
    recipient_code: str
    status: str = Field(description="pending, 01…06")
    recall_status: str | None = Field(default=None, description="13 requested, 15 agreed (withdrawn), 16 refused")


class ArchiveRecordRead(BaseModel):
    """A record as its reader may see it: the sender every recipient's delivery, a recipient its own
    (what the exchange's ``GET /v1/documents/{id}`` shows the same reader)."""

    document_id: uuid.UUID
    source: Literal["exchanged", "digitised"]
    kind: str
    original_document_id: uuid.UUID | None
    superseded_by: uuid.UUID | None
    sender_code: str
    code: str
    type_name: str
    subject: str
    urgency: int
    promulgation_date: dt.date | None
    due_date: dt.date | None
    signature_verdict: str | None
    recipient_codes: list[str]
    deliveries: list[DeliveryView]
    details: dict[str, object]
    text_status: str
    retention_years: int | None = Field(description="None: kept permanently")
    file_name: str | None
    submitted_at: dt.datetime
    archived_at: dt.datetime


class DigitisedRecordCreate(BaseModel):
    """The metadata of a digitised paper record (số hoá), sent with its scan."""

    code_number: str = Field(min_length=1, max_length=11)
    code_notation: str = Field(min_length=1, max_length=30)
    type_name: str = Field(min_length=1, max_length=100)
    subject: str = Field(min_length=1, max_length=500)
    promulgation_date: dt.date
    issuer_code: str = Field(min_length=1, max_length=CODE_MAX_LENGTH, description="the agency that issued the paper")
    retention_years: int | None = Field(
        default=None, ge=1, le=200, description="years to keep it after its date; omitted: permanent"
    )
    urgency: int = Field(default=0, ge=0, le=4)

    @field_validator("code_number", "code_notation", "type_name", "subject", "issuer_code")
    @classmethod
    def _storable(cls, value: str) -> str:
        value = storable(value)
        if not value:
            raise ValueError("must not be blank")
        return value


class RetentionItem(BaseModel):
    document_id: uuid.UUID
    code: str
    subject: str
    sender_code: str
    promulgation_date: dt.date
    retention_years: int
    ends_on: dt.date


class RetentionPage(BaseModel):
    as_of: dt.date
    items: list[RetentionItem]
    next_cursor: str | None
