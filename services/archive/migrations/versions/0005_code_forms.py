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


def upgrade() -> None:
    with op.batch_alter_table("archive_record") as batch:
        batch.alter_column("sender_code", type_=sa.String(35), existing_type=sa.String(13), existing_nullable=False)
        batch.alter_column("ingested_by", type_=sa.String(35), existing_type=sa.String(13), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("archive_record") as batch:
        batch.alter_column("ingested_by", type_=sa.String(13), existing_type=sa.String(35), existing_nullable=True)
        batch.alter_column("sender_code", type_=sa.String(13), existing_type=sa.String(35), existing_nullable=False)
