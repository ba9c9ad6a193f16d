"""Agency codes of either form: the issuer's and the ingesting agency's code widened to the
Decision 20/2020 form's 35 characters.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


COLUMNS = (("sender_code", False), ("ingested_by", True))


def _width(column: str, old: int, new: int, nullable: bool) -> None:
    """Not on SQLite: it does not hold a VARCHAR to its length (and a type change rebuilds the table)."""
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column(
        "archive_record", column, type_=sa.String(new), existing_type=sa.String(old), existing_nullable=nullable
    )


def upgrade() -> None:
    for column, nullable in COLUMNS:
        _width(column, 13, 35, nullable)


def downgrade() -> None:
    for column, nullable in reversed(COLUMNS):
        _width(column, 35, 13, nullable)
