"""Agency users: people's accounts for the web console, bound to an agency with a role.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agency_user",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_sign_in_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["agency_id"], ["agency.id"], name="fk_agency_user_agency_id_agency"),
        sa.PrimaryKeyConstraint("id", name="pk_agency_user"),
        sa.UniqueConstraint("username", name="uq_agency_user_username"),
    )
    op.create_index("ix_agency_user_agency_id", "agency_user", ["agency_id"])


def downgrade() -> None:
    op.drop_index("ix_agency_user_agency_id", table_name="agency_user")
    op.drop_table("agency_user")
