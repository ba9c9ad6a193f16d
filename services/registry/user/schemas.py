"""Agency user bodies: a person's console account, bound to an agency with a role."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.roles import Role
from shared.types import AnyAgencyCode, VietnameseText

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_.@-]{2,63}$"
PASSWORD_MIN_LENGTH = 12

UserStatus = Literal["active", "disabled"]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN, examples=["van.thu.soyte"], description="lower case, kept as given")
    display_name: VietnameseText = Field(max_length=200, examples=["Nguyễn Thị Văn Thư"])
    agency_code: AnyAgencyCode = Field(description="the agency the user acts for")
    role: Role = Field(default=Role.AGENCY, description="gives the user's scopes, as an API client's role does")
    password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=200, description="stored as an argon2id hash")


class UserUpdate(BaseModel):
    """What an admin may change: the name, the role, the status, the password (left out: unchanged)."""

    model_config = ConfigDict(extra="forbid")

    display_name: VietnameseText | None = Field(default=None, max_length=200)
    role: Role | None = None
    status: UserStatus | None = Field(default=None, description="`disabled`: no sign-in, live sessions refused")
    password: str | None = Field(default=None, min_length=PASSWORD_MIN_LENGTH, max_length=200)


class UserRead(BaseModel):
    username: str
    display_name: str
    agency_code: str
    role: Role
    status: UserStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    last_sign_in_at: dt.datetime | None


class SignInCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class SignedIn(BaseModel):
    """A user whose name and password were right: what the console's token may carry."""

    client_id: str = Field(description="`user:<username>`, the token's subject")
    username: str
    display_name: str
    agency_code: str
    role: Role
    scopes: list[str]
