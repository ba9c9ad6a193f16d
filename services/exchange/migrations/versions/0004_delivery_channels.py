"""Delivery channels: each agency's feed, its counter, and the transfers that failed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_entry",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("agency_code", sa.String(35), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("agency_code", "seq", name="uq_feed_entry_agency_seq"),
    )
    op.create_table(
        "feed_counter",
        sa.Column("agency_code", sa.String(35), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "transfer_failure",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("agency_code", sa.String(35), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("target", sa.String(2000), nullable=True),
        sa.Column("entry_type", sa.String(50), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("failed_at", UTCDateTime(), nullable=False),
        sa.Column("resent_at", UTCDateTime(), nullable=True),
        sa.Column("resend_count", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("entry_id", name="uq_transfer_failure_entry_id"),
    )
    op.create_index("ix_transfer_failure_agency_code", "transfer_failure", ["agency_code"])
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("transfer_failed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("transfer_error", sa.String(2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("transfer_error")
        batch.drop_column("transfer_failed_at")
    op.drop_index("ix_transfer_failure_agency_code", table_name="transfer_failure")
    op.drop_table("transfer_failure")
    op.drop_table("feed_counter")
    op.drop_table("feed_entry")
