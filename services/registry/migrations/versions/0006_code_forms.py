"""Agency codes of either form: the code columns widened to the Decision 20/2020 form's 35 characters.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agency") as batch:
        batch.alter_column("code", type_=sa.String(35), existing_type=sa.String(13), existing_nullable=False)
        batch.alter_column("new_code", type_=sa.String(35), existing_type=sa.String(30), existing_nullable=True)
    with op.batch_alter_table("audit_entry") as batch:
        batch.alter_column("agency_code", type_=sa.String(35), existing_type=sa.String(30), existing_nullable=True)


def downgrade() -> None:
    # codes longer than the old widths must be removed first: narrowing would fail on them
    with op.batch_alter_table("audit_entry") as batch:
        batch.alter_column("agency_code", type_=sa.String(30), existing_type=sa.String(35), existing_nullable=True)
    with op.batch_alter_table("agency") as batch:
        batch.alter_column("new_code", type_=sa.String(30), existing_type=sa.String(35), existing_nullable=True)
        batch.alter_column("code", type_=sa.String(13), existing_type=sa.String(35), existing_nullable=False)
