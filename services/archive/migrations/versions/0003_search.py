"""Archive records for search: Decree 30 metadata, deliveries and readers, text, digitised records.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("source", sa.String(10), nullable=False, server_default="exchanged"),
        sa.Column("kind", sa.String(10), nullable=False, server_default="new"),
        sa.Column("original_document_id", sa.Uuid(), nullable=True),
        sa.Column("superseded_by", sa.Uuid(), nullable=True),
        sa.Column("urgency", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("promulgation_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("signature_verdict", sa.String(16), nullable=True),
        sa.Column("deliveries", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("readers", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("details", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("text", sa.Text(), nullable=False, server_default=""),
        sa.Column("text_status", sa.String(10), nullable=False, server_default="none"),
        sa.Column("text_error", sa.String(500), nullable=True),
        sa.Column("text_claimed_at", UTCDateTime(), nullable=True),
        sa.Column("retention_years", sa.Integer(), nullable=True),
        sa.Column("file_name", sa.String(255), nullable=True),
        sa.Column("file_sha256", sa.String(64), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("ingested_by", sa.String(13), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=True),
    )


def upgrade() -> None:
    with op.batch_alter_table("archive_record") as batch:
        for column in _columns():
            batch.add_column(column)
    # records kept before this revision: readable by their sender and every recipient, as they were
    op.execute("UPDATE archive_record SET changed_at = archived_at, readers = recipient_codes WHERE changed_at IS NULL")
    with op.batch_alter_table("archive_record") as batch:
        batch.alter_column("changed_at", existing_type=UTCDateTime(), nullable=False)
    op.create_index("ix_archive_record_changed_at", "archive_record", ["changed_at"])
    op.create_index("ix_archive_record_text_status", "archive_record", ["text_status"])


def downgrade() -> None:
    op.drop_index("ix_archive_record_text_status", table_name="archive_record")
    op.drop_index("ix_archive_record_changed_at", table_name="archive_record")
    with op.batch_alter_table("archive_record") as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
