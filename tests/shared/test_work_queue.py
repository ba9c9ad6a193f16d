"""Work queues: retries with increasing delays, then the dead-letter queue with the reason — on the
real RabbitMQ and on the in-process bus alike."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from shared.messaging import (
    ATTEMPT_HEADER,
    DEAD_REASON_HEADER,
    Broker,
    DeadLetter,
    Envelope,
    InProcessBroker,
    RabbitBroker,
    RetryLater,
    RetryPolicy,
    Subscription,
)
from tests.conftest import AMQP_URL
from tests.helpers import wait_until

POLICY = RetryPolicy(delays=(0.2, 0.4), defer_seconds=0.1)


def envelope(n: int, kind: str = "work.item.v1") -> Envelope:
    return Envelope(id=f"m-{n}", type=kind, source="test", occurred_at=dt.datetime.now(dt.UTC), data={"n": n})


class Recorder:
    """A handler that fails as told and records each try with its attempt number."""

    def __init__(self, fail_first: int = 0, dead: bool = False, defer_first: int = 0) -> None:
        self.fail_first = fail_first
        self.defer_first = defer_first
        self.dead = dead
        self.tries: list[tuple[str, int]] = []
        self.handled: list[str] = []
        self.buried: list[tuple[str, str]] = []

    async def handle(self, env: Envelope) -> None:
        self.tries.append((env.id, int(env.headers[ATTEMPT_HEADER])))
        if self.dead:
            raise DeadLetter("cannot ever work")
        if len(self.tries) <= self.defer_first:
            raise RetryLater("busy", counts=False)
        if len(self.tries) <= self.defer_first + self.fail_first:
            raise RetryLater("receiver answered 503")
        self.handled.append(env.id)

    async def on_dead(self, env: Envelope, reason: str) -> None:
        self.buried.append((env.id, reason))


@pytest.fixture(params=["rabbit", "local"])
async def bus(request: pytest.FixtureRequest, broker_prefix: str, tmp_path: Path) -> AsyncIterator[Broker]:
    if request.param == "rabbit":
        broker = RabbitBroker(AMQP_URL, broker_prefix)
        await broker.start()
        yield broker
        await broker.delete_all(["work"], retry_delays=(*POLICY.delays, POLICY.defer_seconds))
        await broker.close()
    else:
        local = InProcessBroker(tmp_path / "bus.sqlite3")
        await local.start()
        yield local
        await local.close()


async def dead_letters(bus: Broker) -> list[tuple[dict[str, object], str]]:
    """The dead-lettered messages of the ``work`` queue: their body and reason."""
    if isinstance(bus, InProcessBroker):
        return [(json.loads(m.body), m.dead_reason or "") for m in await bus.store.dead("work")]
    assert isinstance(bus, RabbitBroker)
    found = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{bus.queue_name('work')}.dead", passive=True)
        while (message := await queue.get(fail=False)) is not None:
            # not acknowledged: closing the channel puts it back
            found.append((json.loads(message.body), str((message.headers or {}).get(DEAD_REASON_HEADER))))
    return found


async def test_a_message_failing_twice_is_tried_again_with_a_higher_attempt_and_handled_once(bus: Broker) -> None:
    recorder = Recorder(fail_first=2)
    await bus.subscribe(Subscription("work", ("work.#",), recorder.handle, retry=POLICY, on_dead=recorder.on_dead))
    await bus.publish(envelope(1))
    await wait_until(lambda: recorder.handled, within=10, what="the third try")
    assert recorder.tries == [("m-1", 1), ("m-1", 2), ("m-1", 3)]
    assert recorder.handled == ["m-1"] and recorder.buried == []


async def test_a_deferred_message_spends_no_try(bus: Broker) -> None:
    recorder = Recorder(defer_first=2)
    await bus.subscribe(Subscription("work", ("work.#",), recorder.handle, retry=POLICY, on_dead=recorder.on_dead))
    await bus.publish(envelope(1))
    await wait_until(lambda: recorder.handled, within=10, what="the try after two deferrals")
    assert [attempt for _, attempt in recorder.tries] == [1, 1, 1]


async def test_a_message_failing_every_try_is_dead_lettered_with_its_reason_after_on_dead(bus: Broker) -> None:
    recorder = Recorder(fail_first=100)
    await bus.subscribe(Subscription("work", ("work.#",), recorder.handle, retry=POLICY, on_dead=recorder.on_dead))
    await bus.publish(envelope(7))
    await wait_until(lambda: recorder.buried, within=10, what="the message given up")
    assert [attempt for _, attempt in recorder.tries] == [1, 2, 3]
    assert recorder.buried == [("m-7", "gave up after 3 tries: receiver answered 503")]
    dead: list[tuple[dict[str, object], str]] = []

    async def dead_found() -> bool:
        dead[:] = await dead_letters(bus)
        return bool(dead)

    await wait_until(dead_found, within=5, what="the dead letter")
    assert [(body["id"], reason) for body, reason in dead] == [("m-7", "gave up after 3 tries: receiver answered 503")]


async def test_dead_letter_from_the_handler_is_not_retried(bus: Broker) -> None:
    recorder = Recorder(dead=True)
    await bus.subscribe(Subscription("work", ("work.#",), recorder.handle, retry=POLICY, on_dead=recorder.on_dead))
    await bus.publish(envelope(3))
    await wait_until(lambda: recorder.buried, within=10, what="the message dead-lettered")
    assert recorder.tries == [("m-3", 1)]
    assert recorder.buried == [("m-3", "cannot ever work")]

    async def counted() -> bool:  # what /metrics shows: lienthong_consumer_lag_messages, lienthong_dead_letters
        return await bus.queue_depths(["work", "unknown"]) == {"work": (0, 1)}

    await wait_until(counted, within=5, what="the queue's depths: none waiting, one dead")


async def test_an_unreadable_message_goes_to_the_dead_letter_queue_with_the_reason(broker_prefix: str) -> None:
    broker = RabbitBroker(AMQP_URL, broker_prefix)
    await broker.start()
    try:
        recorder = Recorder()
        await broker.subscribe(Subscription("work", ("work.#",), recorder.handle, retry=POLICY))
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(broker.exchange_name)
            await exchange.publish(aio_pika.Message(body=b"{not json"), routing_key="work.item.v1")
        found: list[tuple[dict[str, object], str]] = []

        async def dead_found() -> bool:
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue(f"{broker.queue_name('work')}.dead", passive=True)
                message = await queue.get(fail=False)
                if message is not None:
                    found.append(({"body": message.body.decode()}, str(message.headers.get(DEAD_REASON_HEADER))))
            return bool(found)

        await wait_until(dead_found, within=5, what="the unreadable message dead-lettered")
        assert found[0][1].startswith("unreadable message")
        assert recorder.tries == []
    finally:
        await broker.delete_all(["work"], retry_delays=(*POLICY.delays, POLICY.defer_seconds))
        await broker.close()


async def test_the_local_queue_keeps_messages_across_a_restart(tmp_path: Path) -> None:
    """A message stored but not handled when the process stopped is handled by the next one."""
    store = tmp_path / "bus.sqlite3"
    first = InProcessBroker(store)

    async def never(_env: Envelope) -> None:
        raise RetryLater("receiver down")

    await first.subscribe(Subscription("work", ("work.#",), never, retry=RetryPolicy(delays=(30.0,))))
    await first.publish(envelope(1))
    await first.close()
    second = InProcessBroker(store)
    recorder = Recorder()
    await second.subscribe(Subscription("work", ("work.#",), recorder.handle, retry=RetryPolicy(delays=(0.1,))))
    try:
        assert await second.store.waiting("work") == 1
    finally:
        await second.close()
