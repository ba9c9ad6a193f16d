"""The outbox, the relay and idempotent consumers against the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.archive.models import messaging
from services.settings import Settings
from shared.config import OutboxSection
from shared.db import Database
from shared.messaging import (
    Envelope,
    IdempotentConsumer,
    InProcessBroker,
    Outbox,
    OutboxRelay,
    RabbitBroker,
    Subscription,
    record_event,
)
from tests.conftest import AMQP_URL, TEMPLATES
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


QUEUES = ("effects", "poison")  # deleted at the end (the rabbit fixture)


class Effects:
    """A consumer whose effect is a row per message; counts how often the handler really ran, and
    how many copies were delivered to the idempotent consumer in front of it (duplicates included)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.delivered: list[str] = []
        self.arrived = asyncio.Event()

    async def handle(self, _session, envelope: Envelope) -> None:
        self.seen.append(envelope.id)
        self.arrived.set()


async def _processed_count(database: Database) -> int:
    async with database.session() as session:
        return int((await session.execute(select(func.count()).select_from(messaging.processed))).scalar_one())


async def _pending_count(database: Database) -> int:
    outbox = messaging.outbox
    async with database.session() as session:
        query = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        return int((await session.execute(query)).scalar_one())


async def _subscribe(rabbit: RabbitBroker, database: Database, effects: Effects, binding: str) -> None:
    consumer = IdempotentConsumer(database, messaging, "test.effects", effects.handle)

    async def deliver(envelope: Envelope) -> None:
        await consumer(envelope)
        effects.delivered.append(envelope.id)

    await rabbit.subscribe(Subscription("effects", (binding,), deliver))


async def test_committed_event_reaches_a_rabbitmq_consumer_once(database, rabbit):
    effects = Effects()
    await _subscribe(rabbit, database, effects, "test.#")
    async with database.session() as session:
        message_id = await record_event(session, messaging, "test.created.v1", {"x": 1})
    relay = OutboxRelay(database, messaging, rabbit, "test")
    assert await relay.publish_pending() == 1
    await asyncio.wait_for(effects.arrived.wait(), 10)
    assert effects.seen == [message_id]
    assert await _pending_count(database) == 0
    assert await relay.publish_pending() == 0


async def test_rolled_back_transaction_publishes_nothing(database, rabbit):
    with pytest.raises(RuntimeError):
        async with database.session() as session:
            await record_event(session, messaging, "test.created.v1", {"x": 1})
            raise RuntimeError("the state change failed")
    assert await _pending_count(database) == 0
    assert await OutboxRelay(database, messaging, rabbit, "test").publish_pending() == 0


async def test_relay_wakes_on_commit_without_waiting_for_the_poll(database, rabbit):
    effects = Effects()
    await _subscribe(rabbit, database, effects, "test.#")
    async with database.session() as session:
        first = await record_event(session, messaging, "test.created.v1", {"x": 1})
    relay = OutboxRelay(database, messaging, rabbit, "test", policy=OutboxSection(poll_seconds=60))
    relay.start()
    try:
        # the first event arrived: the pass that published it has claimed its rows, and the next
        # pass is due in 60 s unless a commit wakes the relay
        await wait_until(lambda: effects.seen == [first], 5, "the relay's first pass")
        async with database.session() as session:
            second = await record_event(session, messaging, "test.created.v1", {"x": 2})
        await wait_until(lambda: len(effects.seen) == 2, 5, "the relay to wake on the commit")
    finally:
        await relay.stop()
    assert effects.seen == [first, second]


@pytest.mark.parametrize("when", ["after-commit", "after-publish"])
async def test_relay_killed_loses_nothing_and_duplicates_nothing(database, rabbit, broker_prefix, when):
    """A relay process killed (SIGKILL) after the commit, or after publishing but before marking the
    row, loses nothing: a new relay publishes the row, and the consumer's effect happens once."""
    effects = Effects()
    await _subscribe(rabbit, database, effects, "test.#")
    crashed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.shared.relay_crash", database.url, AMQP_URL, broker_prefix, when],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == -9, crashed.stderr
    message_id = crashed.stdout.strip()
    assert await _pending_count(database) == 1  # committed, never marked published

    if when == "after-publish":  # the first copy is already in RabbitMQ: it takes effect once
        await asyncio.wait_for(effects.arrived.wait(), 10)
    assert await OutboxRelay(database, messaging, rabbit, "restarted").publish_pending() == 1
    copies = 2 if when == "after-publish" else 1  # the killed relay's copy, then the restarted one's
    await wait_until(lambda: len(effects.delivered) >= copies, 10, f"{copies} deliveries")
    assert effects.delivered == [message_id] * copies
    assert effects.seen == [message_id]
    assert await _processed_count(database) == 1
    assert await _pending_count(database) == 0


async def test_poison_message_is_dead_lettered_after_the_delivery_limit(database, rabbit):
    attempts: list[str] = []

    async def always_fails(envelope: Envelope) -> None:
        attempts.append(envelope.id)
        raise RuntimeError("cannot handle")

    await rabbit.subscribe(Subscription("poison", ("poison.#",), always_fails))
    async with database.session() as session:
        message_id = await record_event(session, messaging, "poison.created.v1", {})
    await OutboxRelay(database, messaging, rabbit, "test").publish_pending()

    assert rabbit._connection is not None
    channel = await rabbit._connection.channel()
    dead = await channel.declare_queue(f"{rabbit.queue_name('poison')}.dead", passive=True)
    message = None

    async def dead_lettered() -> bool:
        nonlocal message
        message = await dead.get(fail=False)
        return message is not None

    await wait_until(dead_lettered, 10, "the poison message to reach the dead-letter queue", interval=0.05)
    assert message is not None
    await message.ack()
    assert Envelope.from_json(message.body).id == message_id
    assert 2 <= len(attempts) <= 3  # bounded by x-delivery-limit (2) on the quorum queue
    await channel.close()


async def test_in_process_bus_retries_a_failed_handler_from_the_outbox(tmp_path):
    """Embedded mode: a failing handler leaves the row pending; the next pass delivers it once."""
    settings = Settings(var_dir=tmp_path)
    await TEMPLATES.copy_sqlite(settings, ("archive",))
    database = Database(settings.database_url_for("archive"), "archive")
    broker = InProcessBroker()
    effects = Effects()
    failures = {"left": 1}

    async def flaky(session, envelope: Envelope) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("temporary failure")
        await effects.handle(session, envelope)

    consumer = IdempotentConsumer(database, messaging, "test.flaky", flaky)
    await broker.subscribe(Subscription("flaky", ("test.#",), consumer))
    async with database.session() as session:
        message_id = await record_event(session, messaging, "test.created.v1", {})
    relay = OutboxRelay(database, messaging, broker, "test", policy=OutboxSection(retry_initial_seconds=30))
    assert await relay.publish_pending() == 0
    assert await _pending_count(database) == 1
    assert await relay.publish_pending() == 0  # waiting its back-off, not retried in a tight loop
    assert await Outbox(database, messaging).redrive([message_id]) == 1  # an operator: now, please
    assert await relay.publish_pending() == 1
    assert effects.seen == [message_id]
    assert await relay.publish_pending() == 0
    await consumer(Envelope(message_id, "test.created.v1", "test", dt.datetime.now(dt.UTC), {}))  # a redelivery
    assert effects.seen == [message_id]
    await database.dispose()
