"""Statistics: monthly rollups per agency of the delivery history, activity, the overdue snapshot,
the refresh watermark; an index on the history's time, partial indexes on pending deliveries by
deadline and on open deliveries with a due date.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SENDER = ("documents_sent", "deliveries_sent", "recipients_reached", "recalls_requested", "recalls_agreed")
SENDER += ("recalls_refused",)
RECIPIENT = ("received", "arrived", "arrived_in_time", "rejected", "accepted", "assigned", "processing", "completed")
BUCKETS = 33  # services/exchange/statistics/histogram.py: len(BOUNDS) + 1, frozen here
HISTOGRAMS = tuple(f"h{m}_{b:02d}" for m in ("01", "03", "06") for b in range(BUCKETS))


def upgrade() -> None:
    op.create_table(
        "stat_agency_month",
        sa.Column("agency_code", sa.String(13), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        *(
            sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
            for name in SENDER + RECIPIENT + HISTOGRAMS
        ),
    )
    op.create_table(
        "stat_agency_activity",
        sa.Column("agency_code", sa.String(13), primary_key=True),
        sa.Column("last_active_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "stat_overdue",
        sa.Column("agency_code", sa.String(13), primary_key=True),
        sa.Column("overdue", sa.Integer(), nullable=False),
    )
    op.create_table(
        "stat_state",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("watermark", UTCDateTime(), nullable=False),
        sa.Column("refreshed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_delivery_event_created_at", "delivery_event", ["created_at"])
    op.create_index(
        "ix_delivery_pending_deadline",
        "delivery",
        ["arrival_deadline", "recipient_code"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_delivery_open_due",
        "delivery",
        ["due_date", "recipient_code"],
        sqlite_where=sa.text("due_date IS NOT NULL AND status NOT IN ('02', '06')"),
        postgresql_where=sa.text("due_date IS NOT NULL AND status NOT IN ('02', '06')"),
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_open_due", table_name="delivery")
    op.drop_index("ix_delivery_pending_deadline", table_name="delivery")
    op.drop_index("ix_delivery_event_created_at", table_name="delivery_event")
    op.drop_table("stat_state")
    op.drop_table("stat_overdue")
    op.drop_table("stat_agency_activity")
    op.drop_table("stat_agency_month")
