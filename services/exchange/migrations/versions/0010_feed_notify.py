"""The feed's wake-up off the broker: on PostgreSQL, a trigger on ``feed_entry`` that NOTIFYs
``lienthong_feed`` with the entry's agency code (services/exchange/feed/wakeup.py listens).

PostgreSQL delivers a notification at commit only, and one per transaction for a repeated channel
and payload: a transaction that adds several entries for one agency wakes its readers once.
Nothing on SQLite (embedded mode, one process: the session's commit wakes the readers).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "lienthong_feed"  # services/exchange/feed/wakeup.py: FEED_CHANNEL, frozen here


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # created in the service's schema (the migration's search_path), as the table is
    op.execute(
        f"""
        CREATE FUNCTION feed_entry_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', NEW.agency_code);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER feed_entry_notify AFTER INSERT ON feed_entry FOR EACH ROW EXECUTE FUNCTION feed_entry_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS feed_entry_notify ON feed_entry")
    op.execute("DROP FUNCTION IF EXISTS feed_entry_notify()")
