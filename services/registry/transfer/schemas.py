"""Import and export bodies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

TransferFormat = Literal["csv", "json"]
FIELDS = ("code", "new_code", "name", "short_name", "level", "parent_code", "email", "phone", "address", "website")


class ImportProblem(BaseModel):
    row: int
    code: str | None
    field: str | None
    message: str


class UpdatedAgency(BaseModel):
    code: str
    changed: list[str]


class ImportReport(BaseModel):
    dry_run: bool
    total: int
    created: list[str]
    updated: list[UpdatedAgency]
    unchanged: int


def problems_payload(problems: list[ImportProblem]) -> list[dict[str, Any]]:
    """Return import problems as the ``errors`` of a 422 ``import_invalid``."""
    return [p.model_dump() for p in problems]
