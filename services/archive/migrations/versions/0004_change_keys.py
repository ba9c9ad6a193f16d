"""The index feeder's keyset over (changed_at, document_id): one composite index, so a page of
changes is an index range scan that stops at its limit, not a sort of every later change.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_archive_record_change_key", "archive_record", ["changed_at", "document_id"])
    op.drop_index("ix_archive_record_changed_at", table_name="archive_record")


def downgrade() -> None:
    op.create_index("ix_archive_record_changed_at", "archive_record", ["changed_at"])
    op.drop_index("ix_archive_record_change_key", table_name="archive_record")
