"""Archive records, outbox and processed messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime
from shared.messaging import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "archive_record",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("sender_code", sa.String(13), nullable=False),
        sa.Column("code", sa.String(42), nullable=False),
        sa.Column("type_name", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("recipient_codes", sa.JSON(), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("archived_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("document_id", name="pk_archive_record"),
    )
    op.create_index("ix_archive_record_sender_code", "archive_record", ["sender_code"])
    create_messaging_tables()


def downgrade() -> None:
    drop_messaging_tables()
    op.drop_index("ix_archive_record_sender_code", table_name="archive_record")
    op.drop_table("archive_record")
