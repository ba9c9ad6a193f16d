"""TLS client certificates of API clients (mutual TLS at the token endpoint, RFC 8705).

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
        "client_certificate",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_pk", sa.Uuid(), nullable=False),
        sa.Column("thumbprint", sa.String(43), nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("issuer", sa.String(1000), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["client_pk"], ["api_client.id"], name="fk_client_certificate_client_pk_api_client"),
        sa.PrimaryKeyConstraint("id", name="pk_client_certificate"),
        sa.UniqueConstraint("thumbprint", name="uq_client_certificate_thumbprint"),
    )
    op.create_index("ix_client_certificate_client_pk", "client_certificate", ["client_pk"])


def downgrade() -> None:
    op.drop_index("ix_client_certificate_client_pk", table_name="client_certificate")
    op.drop_table("client_certificate")
