"""The records waiting for their text found through a partial index of those records alone, not an
index of every record's text status.

The claim of the text enricher (``text_status`` pending, or extracting and claimed too long ago,
``LIMIT n FOR UPDATE SKIP LOCKED``) was planned against the index of all statuses with its values as
parameters: once the table had statistics, PostgreSQL's generic plan took a status to match a
third of the records and read the table from its start for the few waiting ones at its end (1,900
blocks a claim at 4,600 records; docs/performance.md, "The tenth session's changes"). The claim now
names its statuses in its text, which the partial index's condition matches in every plan, and the
index holds only the waiting records (none once the text is in), so it stays small as the archive
grows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "text_status IN ('pending', 'extracting')"  # as services.archive.models.TEXT_WAITING


def upgrade() -> None:
    op.drop_index("ix_archive_record_text_status", table_name="archive_record")
    op.create_index(
        "ix_archive_record_text_waiting",
        "archive_record",
        ["text_claimed_at"],
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )


def downgrade() -> None:
    op.drop_index("ix_archive_record_text_waiting", table_name="archive_record")
    op.create_index("ix_archive_record_text_status", "archive_record", ["text_status"])
