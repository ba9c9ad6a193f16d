"""Batch consumers: one transaction per batch, idempotent per message, acknowledged after the commit,
a poison message handled alone — on the real RabbitMQ and PostgreSQL, and on the in-process bus."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Sequence

import aio_pika
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.archive.models import messaging
from shared.config import OutboxSection
from shared.db import Database
from shared.messaging import (
    Batching,
    Envelope,
    Gatherer,
    IdempotentBatchConsumer,
    InProcessBroker,
    Outbox,
    OutboxRelay,
    RabbitBroker,
    Subscription,
    record_event,
)
from tests.conftest import AMQP_URL
from tests.helpers import wait_until

CONSUMER = "test.batch"


def envelope(n: int) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()), type="batch.item.v1", source="test", occurred_at=dt.datetime.now(dt.UTC), data={"n": n}
    )


class Effects:
    """A batch handler whose effect is an outbox row per message (rolled back with its transaction);
    it records each call's message ids and transaction, and fails on the poisoned ids."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.calls: list[list[str]] = []
        self.transactions: list[int] = []
        self.poison: set[str] = set()
        self.hold: asyncio.Event | None = None  # set: wait for it after writing the effects
        self.holding = asyncio.Event()

    async def handle(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        self.calls.append([e.id for e in envelopes])
        if self.poison & {e.id for e in envelopes}:
            raise RuntimeError("poisoned message")
        for e in envelopes:
            await record_event(session, messaging, "test.effect.v1", {"of": e.id})
        if not self.database.is_sqlite:
            self.transactions.append(int((await session.execute(text("SELECT txid_current()"))).scalar_one()))
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()

    async def applied(self) -> list[str]:
        """The message ids whose effect committed, in commit order (duplicates kept)."""
        outbox = messaging.outbox
        query = select(outbox.c.payload).where(outbox.c.routing_key == "test.effect.v1").order_by(outbox.c.id)
        async with self.database.session() as session:
            return [row["of"] for row in (await session.execute(query)).scalars()]


def batch_subscription(consumer: IdempotentBatchConsumer, *, size: int, linger: float) -> Subscription:
    """What ``ServiceRuntime`` subscribes for a ``BatchConsumer``."""
    return Subscription("batch", ("batch.#",), consumer, batch=Batching(consumer.handle_batch, size, linger))


async def processed(database: Database) -> dict[str, int]:
    """The processed message ids of the test consumer, with the transaction that wrote each (PostgreSQL)."""
    table = messaging.processed
    xmin = text("xmin::text::bigint") if not database.is_sqlite else text("0")
    query = select(table.c.message_id, xmin).where(table.c.consumer == CONSUMER)
    async with database.session() as session:
        return {message_id: int(x) for message_id, x in (await session.execute(query)).all()}


QUEUES = ("batch",)  # deleted at the end (the rabbit fixture)


async def ready_in_queue(broker: RabbitBroker, queue: str) -> int:
    """Messages ready in a queue (neither delivered nor unacknowledged)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


# --- the gatherer -------------------------------------------------------------------------------


async def test_the_gatherer_flushes_full_batches_at_once_and_a_lone_item_after_the_linger() -> None:
    flushed: list[list[int]] = []
    done = asyncio.Event()

    async def flush(batch: list[int]) -> None:
        flushed.append(batch)
        if sum(len(b) for b in flushed) == 8:
            done.set()

    gatherer: Gatherer[int] = Gatherer(3, 30.0, flush, name="test")  # a linger no test waits for
    gatherer.start()
    try:
        for n in range(6):
            gatherer.add(n)
        await wait_until(lambda: len(flushed) == 2, 5, "two full batches")
        assert flushed == [[0, 1, 2], [3, 4, 5]]
    finally:
        await gatherer.stop()

    lone: Gatherer[int] = Gatherer(64, 0.02, flush, name="test")
    lone.start()
    try:
        lone.add(6)
        lone.add(7)
        await asyncio.wait_for(done.wait(), 5)  # far fewer than 64: flushed once the linger passed
        assert flushed[2:] == [[6, 7]]
    finally:
        await lone.stop()


# --- idempotency, on both databases ---------------------------------------------------------------


async def test_messages_processed_before_are_skipped_and_each_takes_effect_once(archive_database: Database) -> None:
    database = archive_database
    effects = Effects(database)
    consumer = IdempotentBatchConsumer(database, messaging, CONSUMER, effects.handle)
    a, b, c, d = (envelope(n) for n in range(4))
    await consumer.handle_batch([a, b])
    await consumer(c)  # the single-message path records it the same way
    await consumer.handle_batch([a, b, c, d, d])  # a redelivery, and a message twice in one batch
    await consumer.handle_batch([a, d])
    assert effects.calls == [[a.id, b.id], [c.id], [d.id]]  # only what was new reached the handler
    assert sorted(await effects.applied()) == sorted([a.id, b.id, c.id, d.id])
    assert set(await processed(database)) == {a.id, b.id, c.id, d.id}

    effects.poison = {(e := envelope(9)).id}
    with pytest.raises(RuntimeError, match="poisoned"):
        await consumer.handle_batch([e, envelope(10)])
    assert set(await processed(database)) == {a.id, b.id, c.id, d.id}  # a failed batch records nothing


# --- RabbitMQ -------------------------------------------------------------------------------------


async def test_a_batch_is_one_transaction_acknowledged_after_its_commit(database, rabbit):
    effects = Effects(database)
    consumer = IdempotentBatchConsumer(database, messaging, CONSUMER, effects.handle)
    await rabbit.subscribe(batch_subscription(consumer, size=5, linger=30.0))  # flushed when 5 are there
    sent = [envelope(n) for n in range(5)]
    for e in sent:
        await rabbit.publish(e)
    await wait_until(lambda: effects.calls, 10, "the batch")
    assert effects.calls == [[e.id for e in sent]]

    async def committed() -> bool:
        return len(await processed(database)) == 5

    await wait_until(committed, 10, "the batch's commit")
    rows = await processed(database)
    assert set(rows) == {e.id for e in sent}
    assert set(rows.values()) == set(effects.transactions)  # the ids recorded in the handler's transaction
    assert sorted(await effects.applied()) == sorted(e.id for e in sent)

    await rabbit.unsubscribe("batch")  # lets a batch being handled finish; unacknowledged ones go back
    assert await ready_in_queue(rabbit, rabbit.queue_name("batch")) == 0  # every one was acknowledged


async def test_a_lone_message_is_handled_after_the_linger_without_waiting_for_a_full_batch(database, rabbit):
    effects = Effects(database)
    consumer = IdempotentBatchConsumer(database, messaging, CONSUMER, effects.handle)
    await rabbit.subscribe(batch_subscription(consumer, size=64, linger=0.05))
    lone = envelope(1)
    await rabbit.publish(lone)
    await wait_until(lambda: effects.transactions, 10, "the lone message")
    assert effects.calls == [[lone.id]]


async def test_a_poison_message_does_not_stop_its_batch_and_is_dead_lettered(database, rabbit):
    effects = Effects(database)
    consumer = IdempotentBatchConsumer(database, messaging, CONSUMER, effects.handle)
    await rabbit.subscribe(batch_subscription(consumer, size=4, linger=0.05))
    await rabbit.unsubscribe("batch")  # the queue is declared: the four wait in it, delivered at once
    sent = [envelope(n) for n in range(4)]
    poison = sent[1]
    effects.poison = {poison.id}
    for e in sent:
        await rabbit.publish(e)
    await rabbit.subscribe(batch_subscription(consumer, size=4, linger=0.05))

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        dead = await channel.declare_queue(f"{rabbit.queue_name('batch')}.dead", passive=True)
        found: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def dead_lettered() -> bool:
            if (message := await dead.get(fail=False)) is not None:
                found.append(message)
            return bool(found)

        await wait_until(dead_lettered, 15, "the poison message in the dead-letter queue", interval=0.05)
        assert Envelope.from_json(found[0].body).id == poison.id
        await found[0].ack()

    good = [e.id for e in sent if e is not poison]
    assert sorted(await effects.applied()) == sorted(good)  # the others took effect, once each
    assert set(await processed(database)) == set(good)
    assert effects.calls[0] == [e.id for e in sent]  # the batch failed, then each alone, in order
    assert effects.calls[1:5] == [[e.id] for e in sent]
    assert all(call == [poison.id] for call in effects.calls[5:])  # redelivered: alone, up to the limit
    assert 1 <= len(effects.calls[5:]) <= 2


async def test_a_batch_not_committed_goes_back_to_the_queue_and_is_applied_once(database, rabbit, broker_prefix):
    effects = Effects(database)
    effects.hold = asyncio.Event()  # never set: the first consumer stops inside the transaction
    consumer = IdempotentBatchConsumer(database, messaging, CONSUMER, effects.handle)
    await rabbit.subscribe(batch_subscription(consumer, size=3, linger=30.0))
    sent = [envelope(n) for n in range(3)]
    for e in sent:
        await rabbit.publish(e)
    await asyncio.wait_for(effects.holding.wait(), 10)  # effects written, not committed, nothing acked
    await rabbit._gatherers["batch"].stop(grace=0)  # the process dies: its transaction rolls back
    await rabbit.unsubscribe("batch")
    assert await effects.applied() == [] and await processed(database) == {}

    async def back_in_queue() -> bool:
        return await ready_in_queue(rabbit, rabbit.queue_name("batch")) == 3

    await wait_until(back_in_queue, 10, "the three messages back in the queue")

    second = RabbitBroker(AMQP_URL, broker_prefix, delivery_limit=2)
    await second.start()
    try:
        effects.hold = None
        await second.subscribe(batch_subscription(consumer, size=3, linger=30.0))
        await wait_until(lambda: len(effects.transactions) >= 3, 10, "the redelivered messages")
    finally:
        await second.close()
    assert sorted(await effects.applied()) == sorted(e.id for e in sent)  # once each
    assert sorted(effects.calls[1:]) == sorted([e.id] for e in sent)  # redelivered: each alone


class _DiesBeforeAcknowledging(RabbitBroker):
    """Commits its batches and never acknowledges them: a crash between the commit and the ack."""

    committed = asyncio.Event()

    @staticmethod
    async def _ack_all(messages: list[aio_pika.abc.AbstractIncomingMessage]) -> None:
        _DiesBeforeAcknowledging.committed.set()


async def test_a_batch_committed_and_not_acknowledged_is_redelivered_and_skipped(
    database, rabbit, broker_prefix, caplog
):
    effects = Effects(database)
    consumer = IdempotentBatchConsumer(database, messaging, CONSUMER, effects.handle)
    crashing = _DiesBeforeAcknowledging(AMQP_URL, broker_prefix, delivery_limit=2)
    _DiesBeforeAcknowledging.committed = asyncio.Event()
    await crashing.start()
    try:
        await crashing.subscribe(batch_subscription(consumer, size=3, linger=30.0))
        sent = [envelope(n) for n in range(3)]
        for e in sent:
            await rabbit.publish(e)
        await asyncio.wait_for(_DiesBeforeAcknowledging.committed.wait(), 10)
    finally:
        await crashing.close()  # unacknowledged: RabbitMQ puts them back
    assert effects.calls == [[e.id for e in sent]]

    def skipped() -> int:
        return sum("already processed, skipped" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.INFO, logger="lienthong.consumer"):
        await rabbit.subscribe(batch_subscription(consumer, size=3, linger=30.0))
        await wait_until(lambda: skipped() == 3, 10, "the redelivered messages to be skipped")
        await rabbit.unsubscribe("batch")
    assert await ready_in_queue(rabbit, rabbit.queue_name("batch")) == 0  # skipped, and acknowledged
    assert effects.calls == [[e.id for e in sent]]  # the handler never saw them again
    assert sorted(await effects.applied()) == sorted(e.id for e in sent)


# --- the in-process bus ---------------------------------------------------------------------------


async def _record_items(database: Database, count: int) -> list[str]:
    ids = []
    for n in range(count):
        async with database.session() as session:
            ids.append(await record_event(session, messaging, "batch.item.v1", {"n": n}, ordering_key=f"k{n}"))
    return ids


async def test_the_in_process_bus_handles_a_relay_pass_as_one_batch(database):
    effects = Effects(database)
    consumer = IdempotentBatchConsumer(database, messaging, CONSUMER, effects.handle)
    bus = InProcessBroker()
    await bus.subscribe(batch_subscription(consumer, size=4, linger=30.0))  # no linger in-process
    seen: list[str] = []

    async def plain(e: Envelope) -> None:
        seen.append(e.id)

    await bus.subscribe(Subscription("plain", ("batch.#",), plain))
    ids = await _record_items(database, 5)
    relay = OutboxRelay(database, messaging, bus, "test")
    assert await relay.publish_pending() == 5
    assert effects.calls == [ids[:4], [ids[4]]]  # batches of at most 4; the lone one on the single path
    rows = await processed(database)
    assert {rows[i] for i in ids[:4]} == {effects.transactions[0]}  # the four in one transaction
    assert seen == ids  # other subscribers get every event as before

    await bus.publish(Envelope(ids[0], "batch.item.v1", "test", dt.datetime.now(dt.UTC), {}))  # a redelivery
    assert len(effects.calls) == 2 and len(await effects.applied()) == 5


async def test_a_poison_message_on_the_in_process_bus_stays_in_the_outbox_and_the_others_go_on(database):
    effects = Effects(database)
    consumer = IdempotentBatchConsumer(database, messaging, CONSUMER, effects.handle)
    bus = InProcessBroker()
    await bus.subscribe(batch_subscription(consumer, size=64, linger=30.0))
    ids = await _record_items(database, 4)
    effects.poison = {ids[2]}
    relay = OutboxRelay(database, messaging, bus, "test", policy=OutboxSection(retry_initial_seconds=30))
    assert await relay.publish_pending() == 3
    assert effects.calls == [ids, *([i] for i in ids)]  # the batch failed; then each alone, in order
    assert sorted(await effects.applied()) == sorted(i for i in ids if i != ids[2])
    (pending,) = [p for p in await Outbox(database, messaging).pending() if p.routing_key == "batch.item.v1"]
    assert (pending.id, pending.attempts) == (ids[2], 1)  # the outbox's retry path, as before
    assert pending.last_error == "RuntimeError: poisoned message"

    effects.poison = set()
    assert await Outbox(database, messaging).redrive([ids[2]]) == 1
    await relay.publish_pending()  # the poison row, and the effects' own outbox rows (no subscriber)
    assert effects.calls[5:] == [[ids[2]]]  # tried before: alone, not in a batch
    assert sorted(await effects.applied()) == sorted(ids)
    assert await processed(database) and len(await processed(database)) == 4


def test_a_work_queue_cannot_take_batches() -> None:
    from shared.messaging import RetryPolicy

    async def handler(_e: Envelope) -> None:
        return None

    async def batch(_es: Sequence[Envelope]) -> None:
        return None

    with pytest.raises(ValueError, match="one by one"):
        Subscription("q", ("x",), handler, retry=RetryPolicy((1.0,)), batch=Batching(batch))
    with pytest.raises(ValueError):
        Batching(batch, size=0)


def test_a_batch_subscription_prefetches_at_least_a_batch() -> None:
    async def handler(_e: Envelope) -> None:
        return None

    async def batch(_es: Sequence[Envelope]) -> None:
        return None

    broker = RabbitBroker(AMQP_URL, "unused", prefetch=32)
    assert broker.batch_prefetch(Subscription("q", ("x",), handler, batch=Batching(batch, size=64))) == 128
    assert broker.batch_prefetch(Subscription("q", ("x",), handler, batch=Batching(batch, size=4))) == 32
    assert broker.batch_prefetch(Subscription("q", ("x",), handler, prefetch=10, batch=Batching(batch, size=64))) == 64
