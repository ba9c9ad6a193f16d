"""The hub connector: outbox, processed messages, and the packets across the hub.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime
from shared.messaging.tables import add_outbox_retry_columns, create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_messaging_tables()
    add_outbox_retry_columns()
    op.create_table(
        "hub_message",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("key", sa.String(120), nullable=False, unique=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("hub_message_id", sa.String(200)),
        sa.Column("edxml_document_id", sa.String(200)),
        sa.Column("peer_code", sa.String(35), nullable=False),
        sa.Column("document_id", sa.Uuid()),
        sa.Column("delivery_id", sa.Uuid()),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(2000)),
        sa.Column("recipients", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_hub_message_document", "hub_message", ["edxml_document_id", "peer_code"])
    op.create_index("ix_hub_message_local_document", "hub_message", ["document_id"])


def downgrade() -> None:
    op.drop_table("hub_message")
    drop_messaging_tables()
