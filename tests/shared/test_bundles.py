"""Bundles: the relay publishes a pass's events of a bundled type as one message per type, in an
order that keeps every key's; consumers take each envelope of a bundle once — on the real
RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aio_pika
import pytest
from sqlalchemy import select

from services.archive.models import messaging
from shared.config import OutboxSection
from shared.db import Database
from shared.messaging import (
    Envelope,
    Gatherer,
    IdempotentBatchConsumer,
    Outbox,
    OutboxRelay,
    RabbitBroker,
    RetryPolicy,
    Subscription,
    record_event,
)
from shared.messaging.envelope import BUNDLE_HEADER, BUNDLED_TYPES, bundle_json, envelopes_from_json
from shared.messaging.outbox import publishing_units
from tests.conftest import AMQP_URL
from tests.helpers import wait_until
from tests.shared.test_batch_consumer import Effects, batch_subscription

SUBMITTED = "document.submitted.v1"
AUDIT = "audit.recorded.v1"
OTHER = "feed.entry_added.v1"  # a work queue's type: never bundled
FAST = OutboxSection(retry_initial_seconds=0.05, retry_max_seconds=0.2, stuck_after_attempts=5, poll_seconds=0.05)


def row(kind: str, key: str | None = None) -> dict[str, Any]:
    return {"routing_key": kind, "ordering_key": key}


def envelope(kind: str, n: int) -> Envelope:
    return Envelope(str(uuid.uuid4()), kind, "test", dt.datetime.now(dt.UTC), {"n": n})


# --- which rows go together ---------------------------------------------------------------------


def test_a_pass_of_sends_is_a_message_per_type() -> None:
    rows = [row(SUBMITTED, "a"), row(AUDIT), row(SUBMITTED, "b"), row(AUDIT), row(SUBMITTED, "c"), row(AUDIT)]
    assert publishing_units(rows, 32) == [[0, 2, 4], [1, 3, 5]]


def test_a_row_does_not_join_a_bundle_that_would_overtake_its_key() -> None:
    # a's status change comes between its two submissions: the second cannot go with the first
    rows = [row(SUBMITTED, "a"), row("delivery.status_changed.v1", "a"), row(SUBMITTED, "a"), row(SUBMITTED, "b")]
    units = publishing_units(rows, 32)
    assert units == [[0], [1], [2, 3]]
    order = [i for unit in units for i in unit]
    assert [i for i in order if rows[i]["ordering_key"] == "a"] == [0, 1, 2]


def test_unbundled_types_the_limit_and_a_broker_that_does_not_bundle() -> None:
    assert OTHER not in BUNDLED_TYPES
    rows = [row(OTHER, "a"), row(OTHER, "b"), row(AUDIT), row(AUDIT), row(AUDIT)]
    assert publishing_units(rows, 2) == [[0], [1], [2, 3], [4]]
    assert publishing_units(rows, 1) == [[0], [1], [2], [3], [4]]


def test_a_row_tried_before_goes_alone() -> None:
    rows = [row(AUDIT), {**row(AUDIT), "attempts": 2}, row(AUDIT)]
    assert publishing_units(rows, 32) == [[0, 2], [1]]


def test_a_bundle_reads_back_as_its_envelopes_and_a_bad_one_is_refused() -> None:
    envelopes = [envelope(AUDIT, n) for n in range(3)]
    assert [e.id for e in envelopes_from_json(bundle_json(envelopes))] == [e.id for e in envelopes]
    assert envelopes_from_json(envelopes[0].to_json())[0].id == envelopes[0].id
    for bad in (b"[]", b"[1]", b'["x"]', b"[{}]", b"3"):
        with pytest.raises((ValueError, KeyError, TypeError)):
            envelopes_from_json(bad)


async def test_the_gatherer_counts_a_bundle_for_its_envelopes() -> None:
    flushed: list[list[int]] = []
    done = asyncio.Event()

    async def flush(batch: list[int]) -> None:
        flushed.append(batch)
        if sum(len(b) for b in flushed) == 4:
            done.set()

    gatherer: Gatherer[int] = Gatherer(5, 0.05, flush, name="test", weight=lambda item: item)
    for item in (2, 2, 3, 9):  # 9 is more than a batch: it goes alone
        gatherer.add(item)
    gatherer.start()
    await asyncio.wait_for(done.wait(), 5)
    await gatherer.stop()
    assert flushed == [[2, 2], [3], [9]]


# --- on RabbitMQ --------------------------------------------------------------------------------


QUEUES = ("batch", "raw", "work")  # deleted at the end (the rabbit fixture)
RETRY_DELAYS = (1.0, 5.0)


@contextlib.asynccontextmanager
async def raw_messages(broker: RabbitBroker, bindings: Sequence[str]) -> AsyncIterator[list[Any]]:
    """A queue of the test's own bound to the events exchange; yields the list its messages go to."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    queue = await channel.declare_queue(broker.queue_name("raw"), durable=True, arguments={"x-queue-type": "quorum"})
    exchange = await channel.declare_exchange(broker.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    for pattern in bindings:
        await queue.bind(exchange, routing_key=pattern)
    seen: list[Any] = []

    async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.append(message)
        await message.ack()

    await queue.consume(take)
    yield seen
    await connection.close()


@pytest.fixture
async def seen(rabbit: RabbitBroker) -> AsyncIterator[list[Any]]:
    async with raw_messages(rabbit, (SUBMITTED, AUDIT, OTHER)) as each:
        yield each


async def record(database: Database, events: Sequence[tuple[str, dict[str, Any], str | None]]) -> list[str]:
    ids = []
    for kind, data, key in events:  # one transaction each, as sends are
        async with database.session() as session:
            ids.append(await record_event(session, messaging, kind, data, ordering_key=key))
    return ids


async def test_the_relay_publishes_a_pass_of_sends_as_a_bundle_per_type(
    database: Database, rabbit: RabbitBroker, seen: list[Any]
) -> None:
    events: list[tuple[str, dict[str, Any], str | None]] = []
    for n in range(6):
        events += [(SUBMITTED, {"n": n}, f"doc-{n}"), (AUDIT, {"n": n}, None)]
    events += [(OTHER, {"n": 0}, "doc-0"), (OTHER, {"n": 1}, "doc-1")]
    ids = await record(database, events)

    assert await OutboxRelay(database, messaging, rabbit, "test").publish_pending() == len(events)
    await wait_until(lambda: len(seen) >= 4, what="the messages")
    await asyncio.sleep(0.2)
    assert len(seen) == 4  # two bundles of six, and each work-queue event alone
    by_type: dict[str, list[Any]] = {}
    for message in seen:
        by_type.setdefault(message.type, []).append(message)
    for kind in (SUBMITTED, AUDIT):
        [message] = by_type[kind]
        assert message.headers[BUNDLE_HEADER] == 6
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        carried = envelopes_from_json(message.body)
        assert [e.id for e in carried] == [i for i, (k, _, _) in zip(ids, events, strict=True) if k == kind]
        assert [e.data["n"] for e in carried] == list(range(6))
    assert [json.loads(m.body)["data"]["n"] for m in by_type[OTHER]] == [0, 1]
    assert BUNDLE_HEADER not in (by_type[OTHER][0].headers or {})
    assert (await Outbox(database, messaging).stats(5)).pending == 0


class _RefusesBundlesOnce(RabbitBroker):
    refused = 0

    async def publish_bundle(self, envelopes: Sequence[Envelope]) -> None:
        if not self.refused:
            self.refused += 1
            raise RuntimeError("the broker refused the message")
        await super().publish_bundle(envelopes)


async def test_a_refused_bundle_is_retried_whole_and_its_keys_wait(database: Database, broker_prefix: str) -> None:
    broker = _RefusesBundlesOnce(AMQP_URL, broker_prefix)
    await broker.start()
    try:
        async with raw_messages(broker, ("#",)) as seen:
            ids = await record(
                database,
                [
                    (SUBMITTED, {"n": 0}, "a"),
                    (SUBMITTED, {"n": 1}, "b"),
                    ("delivery.status_changed.v1", {"n": 2}, "a"),  # after a's submission: waits for it
                    ("delivery.status_changed.v1", {"n": 3}, "c"),  # another key: goes on
                ],
            )
            relay = OutboxRelay(database, messaging, broker, "test", policy=FAST)
            # the submissions' bundle is refused; a's status change waits for a, c's goes on alone
            assert await relay.publish_pending() == 1
            await wait_until(lambda: len(seen) >= 1, what="the first message")
            pending = await Outbox(database, messaging).pending()
            assert {p.id for p in pending} == {ids[0], ids[1], ids[2]}
            assert all(p.last_error and "refused" in p.last_error for p in pending if p.id != ids[2])
            await asyncio.sleep(0.1)  # the back-off
            assert await relay.publish_pending() == 3
            await wait_until(lambda: sum(len(envelopes_from_json(m.body)) for m in seen) == 4, what="every event")
            order = [e.data["n"] for m in seen for e in envelopes_from_json(m.body)]
            assert order.index(0) < order.index(2)  # a's submission before its status change
    finally:
        await broker.delete_all(["raw"])
        await broker.close()


async def test_a_batch_consumer_takes_each_envelope_of_a_bundle_once(database: Database, rabbit: RabbitBroker) -> None:
    effects = Effects(database)
    consumer = IdempotentBatchConsumer(database, messaging, "test.batch", effects.handle)
    await rabbit.subscribe(
        Subscription("batch", (SUBMITTED,), consumer, batch=batch_subscription(consumer, size=50, linger=0.05).batch)
    )
    bundle = [envelope(SUBMITTED, n) for n in range(5)]
    await rabbit.publish_bundle(bundle)
    await rabbit.publish_bundle(bundle[2:])  # published again (a relay that crashed before marking)
    lone = envelope(SUBMITTED, 5)
    await rabbit.publish(lone)
    expected = [e.id for e in bundle] + [lone.id]
    await wait_until(lambda: _applied(effects, len(expected)), what="every effect")
    await asyncio.sleep(0.2)
    assert await effects.applied() == expected


async def _applied(effects: Effects, count: int) -> bool:
    return len(await effects.applied()) >= count


async def test_a_poisoned_envelope_of_a_bundle_is_dead_lettered_alone_and_the_others_taken_once(
    database: Database, rabbit: RabbitBroker
) -> None:
    effects = Effects(database)
    bundle = [envelope(SUBMITTED, n) for n in range(4)]
    effects.poison.add(bundle[2].id)
    consumer = IdempotentBatchConsumer(database, messaging, "test.batch", effects.handle)
    await rabbit.subscribe(
        Subscription("batch", (SUBMITTED,), consumer, batch=batch_subscription(consumer, size=50, linger=0.02).batch)
    )
    await rabbit.publish_bundle(bundle)
    dead = rabbit.queue_name("batch") + ".dead"
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(dead, passive=True)

        async def dead_letter() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await declared.get(no_ack=True, fail=False)

        found: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def one_dead() -> bool:
            message = await dead_letter()
            if message is not None:
                found.append(message)
            return bool(found)

        await wait_until(one_dead, within=20, what="the poisoned envelope dead-lettered")
    # the batch failed, then the bundle went envelope by envelope: the others took effect once,
    # the one after the poisoned one too; the poisoned one came back alone until the delivery
    # limit and went to the dead-letter queue alone
    assert await effects.applied() == [bundle[0].id, bundle[1].id, bundle[3].id]
    assert [e.id for e in envelopes_from_json(found[0].body)] == [bundle[2].id]


async def test_a_work_queue_bound_to_a_bundled_type_is_refused(rabbit: RabbitBroker) -> None:
    async def handler(_: Envelope) -> None:
        return None

    for bindings in ((AUDIT,), ("document.#",), ("#",)):
        with pytest.raises(ValueError, match="bundles"):
            await rabbit.subscribe(Subscription("work", bindings, handler, retry=RetryPolicy((1.0,))))
    await rabbit.subscribe(Subscription("work", (OTHER,), handler, retry=RetryPolicy((1.0,))))  # not bundled


async def test_the_outbox_rows_are_the_bundle_ids(database: Database, rabbit: RabbitBroker, seen: list[Any]) -> None:
    """Each envelope of a bundle keeps its outbox row's id: what consumers deduplicate on."""
    ids = await record(database, [(AUDIT, {"n": n}, None) for n in range(3)])
    await OutboxRelay(database, messaging, rabbit, "test").publish_pending()
    await wait_until(lambda: len(seen) >= 1, what="the bundle")
    [message] = seen
    assert [e.id for e in envelopes_from_json(message.body)] == ids
    outbox = messaging.outbox
    async with database.session() as session:
        published = (await session.execute(select(outbox.c.published_at).where(outbox.c.id.in_(ids)))).scalars()
        assert all(at is not None for at in published)


async def test_a_bundle_past_the_size_limit_goes_in_halves_in_order(broker_prefix: str) -> None:
    broker = RabbitBroker(AMQP_URL, broker_prefix, bundle_max_bytes=600)
    await broker.start()
    try:
        async with raw_messages(broker, (AUDIT,)) as seen:
            bundle = [envelope(AUDIT, n) for n in range(8)]  # about 170 bytes each
            await broker.publish_bundle(bundle)
            await wait_until(lambda: sum(len(envelopes_from_json(m.body)) for m in seen) == 8, what="every envelope")
            assert len(seen) > 1
            assert all(len(m.body) <= 600 for m in seen)
            assert [e.id for m in seen for e in envelopes_from_json(m.body)] == [e.id for e in bundle]
    finally:
        await broker.delete_all(["raw"])
        await broker.close()
