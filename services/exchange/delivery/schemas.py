"""Delivery status request and response bodies."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.types import OptionalText


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["01", "02", "03", "04", "05", "06", "15", "16"] = Field(
        description=(
            "01 arrived, 02 rejected (note required), 03 accepted, 04 assigned, 05 processing, 06 completed; "
            "answers to a recall (13): 15 agreed (the copy is withdrawn), 16 refused"
        )
    )
    note: OptionalText | None = Field(default=None, max_length=2000, description="The reason, required for 02")


class StatusReported(BaseModel):
    delivery_id: uuid.UUID
    document_id: uuid.UUID
    recipient_code: str
    previous_status: str
    status: str
    updated_at: dt.datetime
