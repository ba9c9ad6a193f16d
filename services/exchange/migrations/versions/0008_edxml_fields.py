"""edXML (QCVN 102) fields: codes of either form, the DocumentId and the packet's other fields.

Code columns widen to the Decision 20/2020 form's 35 characters. ``response_for`` becomes a list
(a stored object is wrapped in one). Nested, rarely queried parts are JSON.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOCUMENT_COLUMNS = (
    ("edxml_document_id", sa.String(100)),
    ("type_number", sa.String(50)),
    ("type_detail", sa.String(50)),
    ("copy_form", sa.String(3)),
    ("circulation", sa.String(100)),
    ("content", sa.Text()),
    ("language", sa.String(30)),
    ("sphere_of_promulgation", sa.String(100)),
    ("typer_notation", sa.String(100)),
    ("promulgation_amount", sa.Integer()),
    ("direction", sa.Boolean()),
    ("to_places", sa.JSON()),
    ("appendixes", sa.JSON()),
    ("sender_organ", sa.JSON()),
    ("trace", sa.JSON()),
    ("business", sa.JSON()),
)


def _wrap_response_for(as_list: bool) -> None:
    """Rewrite ``response_for`` as a list (upgrade) or back to its first item (downgrade)."""
    document = sa.table("document", sa.column("id", sa.Uuid()), sa.column("response_for", sa.JSON()))
    bind = op.get_bind()
    rows = bind.execute(sa.select(document.c.id, document.c.response_for).where(document.c.response_for.isnot(None)))
    for document_id, value in rows.all():
        if as_list and isinstance(value, dict):
            new = [value]
        elif not as_list and isinstance(value, list):
            new = value[0] if value else None
        else:
            continue
        bind.execute(sa.update(document).where(document.c.id == document_id).values(response_for=new))


def _width(table: str, column: str, old: int, new: int) -> None:
    """Change a code column's width. Not on SQLite: it does not hold a VARCHAR to its length, and
    changing a type there rebuilds the table, which loses its expression index (uq_document_number)."""
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column(table, column, type_=sa.String(new), existing_type=sa.String(old), existing_nullable=False)


def upgrade() -> None:
    _width("document", "sender_code", 13, 35)
    _width("delivery", "recipient_code", 13, 35)
    _width("delivery_event", "actor_code", 13, 35)
    with op.batch_alter_table("document") as batch:  # columns added: no rebuild on SQLite
        for name, type_ in DOCUMENT_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_index(
        "uq_document_edxml_id",
        "document",
        ["edxml_document_id", "sender_code"],  # the DocumentId first (the number check keeps its own index)
        unique=True,
        sqlite_where=sa.text("kind = 'new'"),
        postgresql_where=sa.text("kind = 'new'"),
    )
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("organ", sa.JSON(), nullable=True))
    with op.batch_alter_table("attachment") as batch:
        batch.add_column(sa.Column("content_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("description", sa.String(500), nullable=True))
    _wrap_response_for(as_list=True)


def downgrade() -> None:
    # codes longer than 13 characters must be removed first: narrowing fails on them (PostgreSQL)
    _wrap_response_for(as_list=False)
    op.drop_index("uq_document_edxml_id", table_name="document")
    for table, columns in (
        ("attachment", ("description", "content_id")),
        ("delivery", ("organ",)),
        ("document", tuple(name for name, _type in reversed(DOCUMENT_COLUMNS))),
    ):
        for column in columns:  # one at a time: SQLite drops a column without rebuilding the table
            op.drop_column(table, column)
    _width("delivery_event", "actor_code", 35, 13)
    _width("delivery", "recipient_code", 35, 13)
    _width("document", "sender_code", 35, 13)
