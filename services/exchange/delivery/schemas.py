"""Delivery status request and response bodies."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.exchange.events import StaffInfo
from shared.types import EARLIEST_DATE, OptionalText

# a reporter's clock may run ahead of ours by this much; a timestamp further ahead is refused, or
# it would make every later report of the delivery look stale
CLOCK_SKEW = dt.timedelta(minutes=15)


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["01", "02", "03", "04", "05", "06", "15", "16"] = Field(
        description=(
            "01 arrived, 02 rejected (note required), 03 accepted, 04 assigned, 05 processing, 06 completed; "
            "answers to a recall (13) or to an update or replacement: 15 agreed, 16 refused"
        )
    )
    note: OptionalText | None = Field(default=None, max_length=2000, description="The reason, required for 02")
    timestamp: AwareDatetime | None = Field(
        default=None,
        description="when the reporter's system made the report (edXML Timestamp), with a time zone; a report"
        " older than the one stored is recorded as stale and changes nothing",
    )
    staff: StaffInfo | None = Field(default=None, description="who reported it (edXML StaffInfo)")

    @field_validator("timestamp")
    @classmethod
    def _sane_timestamp(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return value
        if value.date() < EARLIEST_DATE:  # before any document; also keeps the UTC conversion in range
            raise ValueError(f"must not be before {EARLIEST_DATE.isoformat()}")
        if value > dt.datetime.now(dt.UTC) + CLOCK_SKEW:
            raise ValueError(f"must not be more than {CLOCK_SKEW.seconds // 60} minutes in the future")
        return value


class StatusReported(BaseModel):
    delivery_id: uuid.UUID
    document_id: uuid.UUID
    recipient_code: str
    previous_status: str = Field(description="the delivery's status (or 13, a pending recall) before the report")
    status: str = Field(description="the status reported")
    outcome: Literal["applied", "repeated", "stale"] = Field(
        description="applied: the delivery moved to `status` (or the answer was recorded); repeated: a further"
        " 04/05, logged with its note, the delivery stays in `previous_status`; stale: older than the report"
        " stored (by `timestamp`), logged, nothing changed"
    )
    timestamp: dt.datetime | None = Field(default=None, description="the reporter's own time, as sent")
    updated_at: dt.datetime = Field(description="when the exchange received the report")
