"""Update, replace and recall; duplicate numbers; the sender's own document id; overdue deadlines.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.add_column(sa.Column("sender_document_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("request_fingerprint", sa.String(64), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(10), nullable=False, server_default="new"))
        batch.add_column(sa.Column("original_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("update_info", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("superseded_by_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("recall_reason", sa.String(2000), nullable=True))
        batch.add_column(sa.Column("type_code", sa.String(10), nullable=True))
        batch.add_column(sa.Column("redirected", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("promulgation_year", sa.Integer(), nullable=False, server_default="0"))
        batch.create_foreign_key("fk_document_original_id_document", "document", ["original_id"], ["id"])
        batch.create_unique_constraint("uq_document_sender_document_id", ["sender_code", "sender_document_id"])
    # years of documents stored before this revision (portable SQL: the date's first four characters)
    op.execute("UPDATE document SET promulgation_year = CAST(SUBSTR(CAST(promulgation_date AS TEXT), 1, 4) AS INTEGER)")
    op.create_index(
        "uq_document_number",
        "document",
        ["sender_code", "code_number", "code_notation", "promulgation_year"],
        unique=True,
        sqlite_where=sa.text("kind = 'new'"),
        postgresql_where=sa.text("kind = 'new'"),
    )
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("recall_status", sa.String(2), nullable=True))
        batch.add_column(sa.Column("recalled_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("arrival_deadline", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("due_date", sa.Date(), nullable=True))
    op.execute("UPDATE delivery SET arrival_deadline = created_at")
    with op.batch_alter_table("delivery") as batch:
        batch.alter_column("arrival_deadline", existing_type=UTCDateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        for column in ("due_date", "arrival_deadline", "recalled_at", "recall_status"):
            batch.drop_column(column)
    op.drop_index("uq_document_number", table_name="document")
    with op.batch_alter_table("document") as batch:
        batch.drop_constraint("uq_document_sender_document_id", type_="unique")
        batch.drop_constraint("fk_document_original_id_document", type_="foreignkey")
        for column in (
            "promulgation_year",
            "redirected",
            "type_code",
            "recall_reason",
            "superseded_by_id",
            "update_info",
            "original_id",
            "kind",
            "request_fingerprint",
            "sender_document_id",
        ):
            batch.drop_column(column)
