"""Status reports as real traffic sends them, and "5" = "05" for duplicate numbers.

Each history event keeps the reporter's own timestamp, its StaffInfo and what the report did
(applied, repeated, stale); a delivery keeps the latest reporter timestamp (older reports are
stale) and the answer to an update or a replacement (15/16). The number index compares numbers
without their leading zeros.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_NEW = sa.text("kind = 'new'")


def refuse_colliding_numbers() -> None:
    """Stop, naming them, if new documents of one sender and year already hold "5" and "05": the
    new index could not be built (an operator decides which one is an update of the other)."""
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT sender_code, ltrim(code_number, '0') AS number, code_notation, promulgation_year, count(*) "
                "FROM document WHERE kind = 'new' "
                "GROUP BY sender_code, ltrim(code_number, '0'), code_notation, promulgation_year HAVING count(*) > 1"
            )
        )
        .all()
    )
    if rows:
        listed = "; ".join(f"{r[0]} {r[1]}/{r[2]} in {r[3]} ({r[4]} documents)" for r in rows[:20])
        raise RuntimeError(
            "exchange 0007: documents share a number once its leading zeros are dropped (5 = 05); mark all but"
            f" one of each as an update (kind = 'update', original_id = the first) and migrate again: {listed}"
        )


def upgrade() -> None:
    # first, before any DDL: on SQLite a failed migration does not undo the columns already added
    refuse_colliding_numbers()
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("reported_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("update_answer", sa.String(2), nullable=True))
    with op.batch_alter_table("delivery_event") as batch:
        batch.add_column(sa.Column("reported_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("staff", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(10), nullable=True))
    op.drop_index("uq_document_number", table_name="document")
    op.create_index(
        "uq_document_number",
        "document",
        ["sender_code", sa.text("ltrim(code_number, '0')"), "code_notation", "promulgation_year"],
        unique=True,
        sqlite_where=KIND_NEW,
        postgresql_where=KIND_NEW,
    )


def downgrade() -> None:
    op.drop_index("uq_document_number", table_name="document")
    op.create_index(
        "uq_document_number",
        "document",
        ["sender_code", "code_number", "code_notation", "promulgation_year"],
        unique=True,
        sqlite_where=KIND_NEW,
        postgresql_where=KIND_NEW,
    )
    with op.batch_alter_table("delivery_event") as batch:
        batch.drop_column("outcome")
        batch.drop_column("staff")
        batch.drop_column("reported_at")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("update_answer")
        batch.drop_column("reported_at")
