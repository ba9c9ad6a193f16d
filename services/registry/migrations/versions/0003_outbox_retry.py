"""The outbox never gives a row up: an ordering key and a per-row back-off.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from shared.messaging.tables import add_outbox_retry_columns, drop_outbox_retry_columns

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_retry_columns()


def downgrade() -> None:
    drop_outbox_retry_columns()
