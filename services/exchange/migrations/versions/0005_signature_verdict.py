"""The signature policy: each document's verdict on its main file's signatures.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.add_column(sa.Column("signature_verdict", sa.String(16), nullable=True))
        batch.add_column(sa.Column("signature_reasons", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("signature_checked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.drop_column("signature_checked_at")
        batch.drop_column("signature_reasons")
        batch.drop_column("signature_verdict")
