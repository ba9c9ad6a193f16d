"""Documents, attachments, deliveries and their history, outbox.

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
        "document",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sender_code", sa.String(13), nullable=False),
        sa.Column("sender_client_id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("code_number", sa.String(11), nullable=False),
        sa.Column("code_notation", sa.String(30), nullable=False),
        sa.Column("type_name", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("promulgation_place", sa.String(100), nullable=True),
        sa.Column("promulgation_date", sa.Date(), nullable=False),
        sa.Column("signer_competence", sa.String(100), nullable=True),
        sa.Column("signer_position", sa.String(100), nullable=True),
        sa.Column("signer_name", sa.String(50), nullable=True),
        sa.Column("urgency", sa.SmallInteger(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("steering_type", sa.SmallInteger(), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("response_for", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_document"),
        sa.UniqueConstraint("sender_code", "idempotency_key", name="uq_document_sender_idempotency"),
    )
    op.create_index("ix_document_sender_code", "document", ["sender_code"])
    op.create_index("ix_document_created_at", "document", ["created_at"])
    op.create_table(
        "attachment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["document.id"], name="fk_attachment_document_id_document"),
        sa.PrimaryKeyConstraint("id", name="pk_attachment"),
    )
    op.create_index("ix_attachment_document_id", "attachment", ["document_id"])
    op.create_table(
        "delivery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_code", sa.String(13), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["document.id"], name="fk_delivery_document_id_document"),
        sa.PrimaryKeyConstraint("id", name="pk_delivery"),
        sa.UniqueConstraint("document_id", "recipient_code", name="uq_delivery_document_recipient"),
    )
    op.create_index("ix_delivery_document_id", "delivery", ["document_id"])
    op.create_index("ix_delivery_recipient_code", "delivery", ["recipient_code"])
    op.create_table(
        "delivery_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("actor_code", sa.String(13), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"], name="fk_delivery_event_delivery_id_delivery"),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_event"),
    )
    op.create_index("ix_delivery_event_delivery_id", "delivery_event", ["delivery_id"])
    create_messaging_tables()


def downgrade() -> None:
    drop_messaging_tables()
    op.drop_table("delivery_event")
    op.drop_table("delivery")
    op.drop_table("attachment")
    op.drop_table("document")
