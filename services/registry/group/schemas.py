"""Recipient group and recipient resolution bodies."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.registry.agency.schemas import LEVEL_PATTERN
from shared.types import AnyAgencyCode, VietnameseText

GROUP_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


class GroupRule(BaseModel):
    """Every active agency matching the rule: at ``level`` (any level if left out), below ``under``
    at any depth (anywhere if left out). "All departments" is ``{"level": "department"}``; "all
    communes under district X" is ``{"level": "commune", "under": "X"}``."""

    model_config = ConfigDict(extra="forbid")

    level: str | None = Field(default=None, pattern=LEVEL_PATTERN)
    under: AnyAgencyCode | None = None

    @model_validator(mode="after")
    def _not_everything(self) -> GroupRule:
        """Refuse a rule that would match every agency."""
        if self.level is None and self.under is None:
            raise ValueError("a rule needs a level, an `under` agency, or both")
        return self


class GroupDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: VietnameseText = Field(max_length=200, examples=["Các sở, ban, ngành"])
    description: VietnameseText | None = Field(default=None, max_length=1000)
    members: list[AnyAgencyCode] = Field(default_factory=list, max_length=10000)
    rules: list[GroupRule] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _not_empty(self) -> GroupDefinition:
        """Refuse a group without members or rules; keep each member once."""
        if not self.members and not self.rules:
            raise ValueError("a group needs static members, rules, or both")
        self.members = list(dict.fromkeys(self.members))
        return self


class GroupCreate(GroupDefinition):
    name: str = Field(pattern=GROUP_NAME_PATTERN, examples=["all-departments"])


class GroupRead(BaseModel):
    name: str
    title: str
    description: str | None
    members: list[str]
    rules: list[GroupRule]
    created_at: dt.datetime
    updated_at: dt.datetime


class ResolvedAgency(BaseModel):
    code: str
    name: str
    level: str
    via: str = Field(description="`code`, `group:<name>`, or `successor:<retired code>`")
    # its contact details, frozen by the exchange into each delivery (the edXML To of the packet)
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    website: str | None = None


class GroupMembers(BaseModel):
    name: str
    count: int
    members: list[ResolvedAgency]
    skipped: list[str] = Field(description="Static members that are suspended or retired without an active successor")


class RecipientQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codes: list[str] = Field(default_factory=list, max_length=10000)
    groups: list[str] = Field(default_factory=list, max_length=100)


class Redirect(BaseModel):
    from_code: str
    to_code: str


class InactiveRecipient(BaseModel):
    code: str
    status: Literal["suspended", "retired"]


class RecipientResolution(BaseModel):
    """The agencies a document addressed to ``codes`` and ``groups`` goes to, and what stands in the way."""

    recipients: list[ResolvedAgency]
    redirected: list[Redirect]
    unknown_codes: list[str]
    unknown_groups: list[str]
    inactive: list[InactiveRecipient]
