"""The relay's failure path on the embedded bus (SQLite): back-off, per-key order, stuck rows, re-drive."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from services.archive.models import messaging
from services.cli import app as cli
from services.settings import Settings
from shared.config import OutboxSection
from shared.db import Database, utcnow
from shared.messaging import (
    Envelope,
    InProcessBroker,
    Outbox,
    OutboxRelay,
    Subscription,
    describe_error,
    record_event,
    retry_delay,
)
from tests.conftest import TEMPLATES
from tests.helpers import wait_until

FAST = OutboxSection(retry_initial_seconds=0.05, retry_max_seconds=0.2, stuck_after_attempts=3, poll_seconds=0.05)


class Bus(InProcessBroker):
    """The embedded bus, with a switch that takes it away as an outage would."""

    def __init__(self) -> None:
        super().__init__()
        self.away = False
        self.publish_calls = 0

    async def ping(self) -> None:
        if self.away:
            raise ConnectionError("bus unreachable")

    async def publish(self, envelope: Envelope) -> None:
        self.publish_calls += 1
        if self.away:
            raise ConnectionError("bus unreachable")
        await super().publish(envelope)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.failing: set[str] = set()

    async def handle(self, envelope: Envelope) -> None:
        if envelope.data["key"] in self.failing:
            raise RuntimeError(f"cannot handle {envelope.data['key']} yet")
        self.seen.append((envelope.data["key"], envelope.data["seq"]))


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    settings = Settings(var_dir=tmp_path)  # the CLI finds it there too (LIENTHONG_VAR_DIR)
    await TEMPLATES.copy_sqlite(settings, ("archive",))
    db = Database(settings.database_url_for("archive"), "archive")
    yield db
    await db.dispose()


async def _record(database: Database, key: str, seq: int) -> str:
    async with database.session() as session:
        return await record_event(session, messaging, "t.changed.v1", {"key": key, "seq": seq}, ordering_key=key)


async def _rows(database: Database) -> list[dict]:
    async with database.session() as session:
        result = await session.execute(select(messaging.outbox).order_by(messaging.outbox.c.created_at))
        return [dict(r) for r in result.mappings().all()]


async def _subscribed(bus: Bus, recorder: Recorder) -> None:
    await bus.subscribe(Subscription("rec", ("t.#",), recorder.handle))


async def test_a_failing_key_waits_in_order_while_other_keys_go_on(database):
    bus, recorder = Bus(), Recorder()
    await _subscribed(bus, recorder)
    recorder.failing.add("a")
    for seq in range(3):
        await _record(database, "a", seq)
        await _record(database, "b", seq)
    relay = OutboxRelay(database, messaging, bus, "t", policy=FAST)
    assert await relay.publish_pending() == 3
    assert recorder.seen == [("b", 0), ("b", 1), ("b", 2)]
    rows = {(r["payload"]["key"], r["payload"]["seq"]): r for r in await _rows(database)}
    assert rows[("a", 0)]["attempts"] == 1  # tried once; a:1 and a:2 were not tried: they wait behind it
    assert rows[("a", 1)]["attempts"] == 0 and rows[("a", 2)]["attempts"] == 0
    assert rows[("a", 0)]["last_error"] == "RuntimeError: cannot handle a yet"
    assert rows[("a", 0)]["next_attempt_at"] is not None
    assert await relay.publish_pending() == 0  # within its back-off: not retried in a tight loop

    recorder.failing.clear()
    await asyncio.sleep(0.1)
    assert await relay.publish_pending() == 3
    assert recorder.seen[3:] == [("a", 0), ("a", 1), ("a", 2)]


async def test_no_attempt_is_spent_while_the_broker_is_away_and_nothing_is_given_up(database):
    bus, recorder = Bus(), Recorder()
    await _subscribed(bus, recorder)
    ids = [await _record(database, "k", seq) for seq in range(5)]
    bus.away = True
    relay = OutboxRelay(database, messaging, bus, "t", policy=FAST)
    relay.start()
    try:
        await asyncio.sleep(0.6)  # the outage lasts: a dozen of the old relay's passes (one per 0.05 s poll)
        rows = await _rows(database)
        assert all(r["published_at"] is None for r in rows)
        assert max(r["attempts"] for r in rows) <= 1  # at most the one try that found the broker away
        assert bus.publish_calls <= 1
        assert relay.broker_down_since is not None

        bus.away = False  # the broker is back: the relay notices within its capped back-off

        async def all_published() -> bool:
            return all(r["published_at"] is not None for r in await _rows(database))

        # handlers run inside publish, the row is marked published after: wait for the mark
        await wait_until(all_published, 5, "the backlog to be published")
    finally:
        await relay.stop()
    assert recorder.seen == [("k", s) for s in range(5)]
    assert [str(r["id"]) for r in await _rows(database)] == ids
    assert relay.broker_down_since is None


async def test_a_stuck_row_is_reported_retried_forever_and_redriven(database, caplog):
    bus, recorder = Bus(), Recorder()
    await _subscribed(bus, recorder)
    recorder.failing.add("poison")
    stuck_id = await _record(database, "poison", 0)
    relay = OutboxRelay(database, messaging, bus, "t", policy=FAST)
    with caplog.at_level(logging.WARNING, logger="lienthong.outbox"):
        for attempt in range(1, 7):
            await relay.publish_pending()
            if attempt < 6:  # the row is due again once its back-off has passed
                await asyncio.sleep(retry_delay(attempt, FAST) + 0.01)
    (row,) = await _rows(database)
    assert row["published_at"] is None and row["attempts"] == 6  # still tried after it became stuck
    stuck_logs = [r for r in caplog.records if r.levelno == logging.ERROR and "stuck" in r.getMessage()]
    assert len(stuck_logs) == 1 and stuck_id in stuck_logs[0].getMessage()

    outbox = Outbox(database, messaging)
    stats = await outbox.stats(FAST.stuck_after_attempts)
    assert (stats.pending, stats.stuck) == (1, 1)
    assert [p.id for p in await outbox.pending(min_attempts=3)] == [stuck_id]
    assert await outbox.redrive([stuck_id]) == 1
    (row,) = await _rows(database)
    assert row["attempts"] == 0 and row["next_attempt_at"] is None

    recorder.failing.clear()
    assert await relay.publish_pending() == 1
    assert recorder.seen == [("poison", 0)]
    assert (await outbox.stats(3)).pending == 0


def test_retry_delay_doubles_and_is_capped():
    policy = OutboxSection(retry_initial_seconds=0.5, retry_max_seconds=30)
    assert [retry_delay(n, policy) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_delay(50, policy) == 30 and retry_delay(10**6, policy) == 30


def test_errors_are_described_in_words_not_reprs():
    assert describe_error(ConnectionError("bus unreachable")) == "ConnectionError: bus unreachable"
    assert describe_error(TimeoutError()) == "TimeoutError: the broker did not confirm in time"
    try:
        try:
            raise OSError("connection refused")
        except OSError as inner:
            raise RuntimeError() from inner
    except RuntimeError as outer:
        assert describe_error(outer) == "RuntimeError: OSError: connection refused"


async def test_operator_lists_and_redrives_stuck_events_from_the_command_line(database, tmp_path, monkeypatch):
    from services import cli as cli_module

    monkeypatch.setattr(cli_module.console, "width", 250)  # one table row per event
    for seq in range(2):
        await _record(database, "stuck", seq)
    async with database.session() as session:
        await session.execute(messaging.outbox.update().values(attempts=12, last_error="ConnectionError: refused"))
    env = {**os.environ, "LIENTHONG_VAR_DIR": str(tmp_path), "LIENTHONG_OUTBOX__STUCK_AFTER_ATTEMPTS": "10"}
    runner = CliRunner()

    listed = await asyncio.to_thread(runner.invoke, cli, ["outbox", "list", "--service", "archive", "--stuck"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "archive: 2 pending, 2 stuck" in listed.output
    assert "ConnectionError: refused" in listed.output

    refused = await asyncio.to_thread(runner.invoke, cli, ["outbox", "redrive", "not-an-id"], env=env)
    assert refused.exit_code != 0 and "not an event id" in refused.output
    assert all(r["attempts"] == 12 for r in await _rows(database))

    redriven = await asyncio.to_thread(
        runner.invoke, cli, ["outbox", "redrive", "--all-stuck", "--service", "archive"], env=env
    )
    assert redriven.exit_code == 0, redriven.output
    assert "re-drove 2 event(s)" in redriven.output
    assert all(r["attempts"] == 0 and r["next_attempt_at"] is None for r in await _rows(database))


async def test_published_rows_past_their_retention_are_deleted_and_pending_ones_never(database):
    bus, recorder = Bus(), Recorder()
    await _subscribed(bus, recorder)
    old, recent = await _record(database, "a", 0), await _record(database, "a", 1)
    pending = await _record(database, "b", 0)
    recorder.failing.add("b")
    assert await OutboxRelay(database, messaging, bus, "t", policy=FAST).publish_pending() == 2
    async with database.session() as session:  # "old" was published two weeks ago
        outbox = messaging.outbox
        two_weeks_ago = utcnow() - dt.timedelta(days=14)
        await session.execute(outbox.update().where(outbox.c.id == uuid.UUID(old)).values(published_at=two_weeks_ago))
        await session.execute(outbox.update().where(outbox.c.id == uuid.UUID(pending)).values(created_at=two_weeks_ago))
    assert await Outbox(database, messaging).purge_published(dt.timedelta(hours=168)) == 1
    assert {str(r["id"]) for r in await _rows(database)} == {recent, pending}
