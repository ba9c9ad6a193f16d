"""Archive record bodies."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict


class ArchiveRecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    document_id: uuid.UUID
    sender_code: str
    code: str
    type_name: str
    subject: str
    recipient_codes: list[str]
    submitted_at: dt.datetime
    archived_at: dt.datetime
