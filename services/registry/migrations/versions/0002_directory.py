"""The complete directory: levels as data, new-form codes, lifecycle and history, groups, delivery
endpoints, certificates, client secrets with rotation.

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

LEVELS = [
    ("province", "Ủy ban nhân dân tỉnh, thành phố trực thuộc trung ương", 10),
    ("department", "Sở, ban, ngành cấp tỉnh", 20),
    ("district", "Ủy ban nhân dân cấp huyện", 30),
    ("commune", "Ủy ban nhân dân cấp xã", 40),
    ("other", "Đơn vị khác", 90),
]


def upgrade() -> None:
    level = op.create_table(
        "agency_level",
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_agency_level"),
    )
    op.bulk_insert(level, [{"code": c, "name": n, "rank": r} for c, n, r in LEVELS])
    # levels used by agencies created before this revision become data too
    op.execute(
        "INSERT INTO agency_level (code, name, rank) SELECT DISTINCT level, level, 100 FROM agency "
        "WHERE level NOT IN (SELECT code FROM agency_level)"
    )
    with op.batch_alter_table("agency") as batch:
        batch.add_column(sa.Column("new_code", sa.String(30), nullable=True))
        batch.add_column(sa.Column("search_text", sa.String(400), nullable=False, server_default=""))
        batch.add_column(sa.Column("status_reason", sa.String(500), nullable=True))
        batch.add_column(sa.Column("successor_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("website", sa.String(300), nullable=True))
        batch.create_unique_constraint("uq_agency_new_code", ["new_code"])
        batch.create_foreign_key("fk_agency_successor_id_agency", "agency", ["successor_id"], ["id"])
        batch.create_foreign_key("fk_agency_level_agency_level", "agency_level", ["level"], ["code"])
        batch.create_index("ix_agency_level", ["level"])
        batch.create_index("ix_agency_status", ["status"])
    op.create_table(
        "agency_change",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agency.id"], name="fk_agency_change_agency_id_agency"),
        sa.PrimaryKeyConstraint("id", name="pk_agency_change"),
    )
    op.create_index("ix_agency_change_agency_id", "agency_change", ["agency_id"])
    op.create_table(
        "recipient_group",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recipient_group"),
        sa.UniqueConstraint("name", name="uq_recipient_group_name"),
    )
    op.create_table(
        "group_member",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["recipient_group.id"], name="fk_group_member_group_id_recipient_group"),
        sa.ForeignKeyConstraint(["agency_id"], ["agency.id"], name="fk_group_member_agency_id_agency"),
        sa.PrimaryKeyConstraint("group_id", "agency_id", name="pk_group_member"),
    )
    op.create_index("ix_group_member_agency_id", "group_member", ["agency_id"])
    op.create_table(
        "delivery_endpoint",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("webhook_url", sa.String(2000), nullable=True),
        sa.Column("webhook_secret", sa.String(200), nullable=True),
        sa.Column("amqp_queue", sa.String(255), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agency.id"], name="fk_delivery_endpoint_agency_id_agency"),
        sa.PrimaryKeyConstraint("agency_id", name="pk_delivery_endpoint"),
    )
    op.create_table(
        "agency_certificate",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("issuer", sa.String(1000), nullable=False),
        sa.Column("serial", sa.String(100), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("sha1", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("key_usage", sa.JSON(), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agency.id"], name="fk_agency_certificate_agency_id_agency"),
        sa.PrimaryKeyConstraint("id", name="pk_agency_certificate"),
        sa.UniqueConstraint("agency_id", "sha256", name="uq_agency_certificate_agency_sha256"),
    )
    op.create_index("ix_agency_certificate_agency_id", "agency_certificate", ["agency_id"])
    op.create_index("ix_agency_certificate_sha256", "agency_certificate", ["sha256"])
    op.create_table(
        "client_secret",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_pk", sa.Uuid(), nullable=False),
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["client_pk"], ["api_client.id"], name="fk_client_secret_client_pk_api_client"),
        sa.PrimaryKeyConstraint("id", name="pk_client_secret"),
    )
    op.create_index("ix_client_secret_client_pk", "client_secret", ["client_pk"])
    conn = op.get_bind()
    from shared.text import fold

    for row in conn.execute(sa.text("SELECT id, name, short_name FROM agency")).mappings().all():
        text = fold(" ".join(filter(None, [row["name"], row["short_name"]])))[:400]
        conn.execute(sa.text("UPDATE agency SET search_text = :t WHERE id = :i"), {"t": text, "i": row["id"]})
    # existing secrets move to the new table (one each, no expiry)
    # one secret per client so far: its id can be the client's own
    op.execute(
        "INSERT INTO client_secret (id, client_pk, secret_hash, created_at) "
        "SELECT id, id, secret_hash, created_at FROM api_client"
    )
    with op.batch_alter_table("api_client") as batch:
        batch.drop_column("secret_hash")


def downgrade() -> None:
    with op.batch_alter_table("api_client") as batch:
        batch.add_column(sa.Column("secret_hash", sa.String(200), nullable=False, server_default=""))
    op.drop_index("ix_client_secret_client_pk", table_name="client_secret")
    op.drop_table("client_secret")
    op.drop_index("ix_agency_certificate_sha256", table_name="agency_certificate")
    op.drop_index("ix_agency_certificate_agency_id", table_name="agency_certificate")
    op.drop_table("agency_certificate")
    op.drop_table("delivery_endpoint")
    op.drop_index("ix_group_member_agency_id", table_name="group_member")
    op.drop_table("group_member")
    op.drop_table("recipient_group")
    op.drop_index("ix_agency_change_agency_id", table_name="agency_change")
    op.drop_table("agency_change")
    with op.batch_alter_table("agency") as batch:
        batch.drop_index("ix_agency_status")
        batch.drop_index("ix_agency_level")
        batch.drop_constraint("fk_agency_level_agency_level", type_="foreignkey")
        batch.drop_constraint("fk_agency_successor_id_agency", type_="foreignkey")
        batch.drop_constraint("uq_agency_new_code", type_="unique")
        for column in ("website", "successor_id", "status_reason", "search_text", "new_code"):
            batch.drop_column(column)
    op.drop_table("agency_level")
