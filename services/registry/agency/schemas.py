"""Agency request and response bodies."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl, model_validator

from shared.types import (
    NEW_CODE_PATTERN,
    AgencyCode,
    AgencyStatus,
    AnyAgencyCode,
    NewAgencyCode,
    OptionalText,
    StrictInt,
    VietnameseText,
)

LEVEL_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class AgencyFields(BaseModel):
    """The editable fields of an agency."""

    model_config = ConfigDict(extra="forbid")

    new_code: NewAgencyCode | None = Field(default=None, examples=["H41"])
    name: VietnameseText = Field(max_length=200, examples=["Ủy ban nhân dân tỉnh Nghệ An"])
    short_name: VietnameseText | None = Field(default=None, max_length=100)
    level: str = Field(pattern=LEVEL_PATTERN, examples=["province", "department", "district", "commune"])
    parent_code: AnyAgencyCode | None = None
    email: EmailStr | None = None
    phone: OptionalText | None = Field(default=None, max_length=50)
    address: VietnameseText | None = Field(default=None, max_length=500)
    website: HttpUrl | None = None


class AgencyCreate(AgencyFields):
    code: AgencyCode = Field(
        examples=["000.00.00.H41", "H52.101.114"],
        description="The agency's code: the QCVN 102 form, or the Decision 20/2020 form for an agency known only by it",
    )

    @model_validator(mode="after")
    def _one_new_code(self) -> AgencyCreate:
        """An agency known only by its Decision 20/2020 code has that code as its ``new_code`` too."""
        if NEW_CODE_PATTERN.fullmatch(self.code):
            if self.new_code not in (None, self.code):
                raise ValueError(
                    f"code {self.code} is already in the Decision 20/2020 form: new_code must be empty or the same"
                )
            self.new_code = self.code
        return self


class AgencyUpdate(BaseModel):
    """Fields to change; those left out keep their value (``parent_code: null`` makes a root)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _required_stay(self) -> AgencyUpdate:
        """Refuse ``null`` for ``name`` or ``level``: they change, they are not removed."""
        for field in ("name", "level"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be removed, only changed")
        return self

    new_code: NewAgencyCode | None = None
    name: VietnameseText | None = Field(default=None, max_length=200)
    short_name: VietnameseText | None = Field(default=None, max_length=100)
    level: str | None = Field(default=None, pattern=LEVEL_PATTERN)
    parent_code: AnyAgencyCode | None = None
    email: EmailStr | None = None
    phone: OptionalText | None = Field(default=None, max_length=50)
    address: VietnameseText | None = Field(default=None, max_length=500)
    website: HttpUrl | None = None


class AgencyRead(BaseModel):
    id: uuid.UUID
    code: str
    new_code: str | None
    name: str
    short_name: str | None
    level: str
    parent_code: str | None
    status: AgencyStatus
    status_reason: str | None
    successor_code: str | None
    email: str | None
    phone: str | None
    address: str | None
    website: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class AgencyPage(BaseModel):
    items: list[AgencyRead]
    next_cursor: str | None


class AgencyTreeNode(BaseModel):
    code: str
    name: str
    level: str
    status: str
    children: list[AgencyTreeNode] = []


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: AgencyStatus
    reason: OptionalText | None = Field(default=None, max_length=500)
    successor_code: AnyAgencyCode | None = Field(default=None, description="Required when retiring")


class AgencyChangeRead(BaseModel):
    action: str
    actor: str
    changes: dict[str, Any]
    created_at: dt.datetime


class AgencyLookup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codes: list[str] = Field(min_length=1, max_length=10000)


class AgencyLookupResult(BaseModel):
    found: list[AgencyRead]
    missing: list[str]


class LevelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    rank: int


class LevelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=LEVEL_PATTERN)
    name: VietnameseText = Field(max_length=200)
    rank: StrictInt = Field(default=100, ge=0, le=1000)
