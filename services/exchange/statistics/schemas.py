"""The statistics API's tables: aggregates of the delivery history, never a document.

Every row carries the same figures (:class:`Figures`); a table adds what it is grouped by. Times are
hours from sending (the delivery's creation) to the recipient's first report of the status, read
from the rollups' histograms (docs/operations.md says their precision)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, Field


class Figures(BaseModel):
    """What was sent and received, and how fast it was handled, in a selection of months."""

    documents_sent: int = Field(description="documents the agencies sent (new, updates, replacements)")
    deliveries_sent: int = Field(description="recipients those documents were addressed to (one delivery each)")
    recipients_reached: int = Field(description="of those deliveries, how many the recipient reported arrived (01)")
    documents_received: int = Field(description="deliveries addressed to the agencies")
    answered_01: int = Field(description="of those, how many the agencies reported arrived (01)")
    answered_01_in_time: int = Field(description="of those, how many by the arrival deadline (same working day)")
    answered_01_in_time_share: float | None = Field(
        description="answered_01_in_time / documents_received (None when nothing was received)"
    )
    median_hours_to_01: float | None
    p90_hours_to_01: float | None
    median_hours_to_03: float | None
    p90_hours_to_03: float | None
    median_hours_to_06: float | None
    p90_hours_to_06: float | None
    rejected: int = Field(description="received deliveries the agencies rejected (02)")
    completed: int = Field(description="received deliveries the agencies completed (06)")
    recalls_requested: int = Field(description="recalls (13) the agencies asked of their recipients")
    recalls_agreed: int = Field(description="recalls their recipients agreed to (15)")


class Adoption(BaseModel):
    """Directive 15's adoption figure: active agencies that exchanged in the last 30 days."""

    agencies: int = Field(description="active agencies in the directory (the selection's)")
    agencies_active_30d: int = Field(description="of those, how many sent a document or reported a status in 30 days")
    adoption_share: float | None = Field(description="agencies_active_30d / agencies")


class LevelRow(Figures, Adoption):
    level: str
    level_name: str | None
    overdue_now: int = Field(description="deliveries to the level's agencies overdue at the last refresh")


class AgencyRow(Figures):
    agency_code: str
    agency_name: str | None
    level: str | None
    parent_code: str | None
    status: str | None
    overdue_now: int
    last_active_at: dt.datetime | None


class MonthRow(Figures):
    month: str = Field(description="YYYY-MM, in the exchange's time zone")


class SummaryRow(Figures, Adoption):
    overdue_now: int


class Selection(BaseModel):
    """What a table covers: the months (inclusive), the subtree and the level asked for."""

    from_month: str = Field(serialization_alias="from")
    to_month: str = Field(serialization_alias="to")
    root: str | None
    level: str | None
    as_of: dt.datetime | None = Field(description="the history is counted up to this time (the last refresh)")


class LevelTable(Selection):
    rows: list[LevelRow]


class AgencyTable(Selection):
    rows: list[AgencyRow]


class MonthTable(Selection):
    rows: list[MonthRow]


class SummaryTable(Selection):
    rows: list[SummaryRow]


class TableName(StrEnum):
    SUMMARY = "summary"
    LEVELS = "levels"
    MONTHS = "months"
    AGENCIES = "agencies"


class AgencySort(StrEnum):
    CODE = "code"
    SENT = "sent"
    RECEIVED = "received"
    SLOWEST = "slowest"  # p90 hours to 01, the slowest first
    OVERDUE = "overdue"


class ExportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
