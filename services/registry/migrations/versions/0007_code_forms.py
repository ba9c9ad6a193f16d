"""Agency codes of either form: the code columns widened to the Decision 20/2020 form's 35 characters.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


COLUMNS = (("agency", "code", 13, False), ("agency", "new_code", 30, True), ("audit_entry", "agency_code", 30, True))


def _width(table: str, column: str, old: int, new: int, nullable: bool) -> None:
    """Not on SQLite: it does not hold a VARCHAR to its length (and a type change rebuilds the table)."""
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column(table, column, type_=sa.String(new), existing_type=sa.String(old), existing_nullable=nullable)


def upgrade() -> None:
    for table, column, old, nullable in COLUMNS:
        _width(table, column, old, 35, nullable)


def downgrade() -> None:
    # codes longer than the old widths must be removed first: narrowing would fail on them
    for table, column, old, nullable in reversed(COLUMNS):
        _width(table, column, 35, old, nullable)
