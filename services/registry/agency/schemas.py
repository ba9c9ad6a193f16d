"""Agency request and response bodies."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

CODE_PATTERN = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")


def _valid_code(value: str) -> str:
    value = value.strip().upper()
    if not CODE_PATTERN.fullmatch(value):
        raise ValueError("must be a national agency code in the QCVN 102 form NNN.NN.NN.Lnn, e.g. 000.00.00.H41")
    return value


def _nfc(value: str) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        raise ValueError("must not be blank")
    return value


AgencyCode = Annotated[str, AfterValidator(_valid_code)]
VietnameseText = Annotated[str, AfterValidator(_nfc)]


class AgencyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: AgencyCode = Field(examples=["000.00.00.H41"])
    name: VietnameseText = Field(max_length=200, examples=["Ủy ban nhân dân tỉnh Nghệ An"])
    short_name: VietnameseText | None = Field(default=None, max_length=100)
    level: str = Field(
        min_length=1,
        max_length=40,
        pattern=r"^[a-z][a-z0-9_]*$",
        examples=["province", "department", "commune"],
    )
    parent_code: AgencyCode | None = None
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=50)
    address: VietnameseText | None = Field(default=None, max_length=500)


class AgencyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    short_name: str | None
    level: str
    parent_code: str | None
    status: str
    email: str | None
    phone: str | None
    address: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class AgencyPage(BaseModel):
    items: list[AgencyRead]
    next_cursor: str | None


class AgencyLookup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codes: list[str] = Field(min_length=1, max_length=10000)


class AgencyLookupResult(BaseModel):
    found: list[AgencyRead]
    missing: list[str]
