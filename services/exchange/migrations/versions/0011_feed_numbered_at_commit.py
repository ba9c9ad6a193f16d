"""A feed entry numbered when its transaction commits (PostgreSQL): ``feed_entry.seq`` may be NULL
until then, and a deferred constraint trigger gives it its agency's next number at the commit.

An agency's counter row was locked from the send's first write to its commit, across the round
trips between (the send's rows, the COMMIT), so that the agency's entries commit in the order of
their numbers; every send to one agency queued there. Numbered at the commit, the lock is held for
the commit alone, and the order holds: the trigger takes the counter's row lock, which is released
once the transaction is committed. Entries whose agency's channel needs the dispatcher are still
numbered when they are written (their ``feed.entry_added.v1`` event carries the number). On SQLite
(embedded mode: one writer at a time) the exchange numbers every entry as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("feed_entry") as batch:
            batch.alter_column("seq", nullable=True)
        return
    op.alter_column("feed_entry", "seq", nullable=True)
    # created in the service's schema; the tables it names are found there whoever commits
    op.execute(
        """
        CREATE FUNCTION feed_entry_number() RETURNS trigger LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
        DECLARE
            number bigint;
        BEGIN
            INSERT INTO feed_counter AS counter (agency_code, last_seq) VALUES (NEW.agency_code, 1)
            ON CONFLICT (agency_code) DO UPDATE SET last_seq = counter.last_seq + 1
            RETURNING counter.last_seq INTO number;
            UPDATE feed_entry SET seq = number WHERE id = NEW.id;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER feed_entry_number AFTER INSERT ON feed_entry DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW WHEN (NEW.seq IS NULL) EXECUTE FUNCTION feed_entry_number()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("feed_entry") as batch:
            batch.alter_column("seq", nullable=False)
        return
    op.execute("DROP TRIGGER IF EXISTS feed_entry_number ON feed_entry")
    op.execute("DROP FUNCTION IF EXISTS feed_entry_number()")
    op.alter_column("feed_entry", "seq", nullable=False)
