"""The trust store: CA certificates, CRLs, its version and its change history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trust_certificate",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("issuer", sa.String(1000), nullable=False),
        sa.Column("serial", sa.String(100), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trust_certificate"),
        sa.UniqueConstraint("sha256", name="uq_trust_certificate_sha256"),
    )
    op.create_index("ix_trust_certificate_kind", "trust_certificate", ["kind"])
    op.create_table(
        "trust_crl",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(1000), nullable=False),
        sa.Column("this_update", UTCDateTime(), nullable=False),
        sa.Column("next_update", UTCDateTime(), nullable=True),
        sa.Column("revoked_count", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trust_crl"),
        sa.UniqueConstraint("sha256", name="uq_trust_crl_sha256"),
    )
    version = op.create_table(
        "trust_store_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trust_store_version"),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0, "changed_at": dt.datetime.now(dt.UTC)}])
    op.create_table(
        "trust_change",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("item", sa.String(20), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trust_change"),
    )
    op.create_index("ix_trust_change_version", "trust_change", ["version"])


def downgrade() -> None:
    op.drop_index("ix_trust_change_version", table_name="trust_change")
    op.drop_table("trust_change")
    op.drop_table("trust_store_version")
    op.drop_table("trust_crl")
    op.drop_index("ix_trust_certificate_kind", table_name="trust_certificate")
    op.drop_table("trust_certificate")
