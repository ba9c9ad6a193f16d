"""A broker outage loses no event: the relay's way to the real RabbitMQ is cut, under load, for
longer than the old retry budget (20 tries in under a second), through a TCP proxy of the test's
own so that other tests keep their broker. Afterwards every event has arrived exactly once, in
order per document, /ready told the truth during the outage, and /metrics showed the backlog."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import httpx
import pytest
from sqlalchemy import func, select

from services.archive.models import messaging
from shared.db import Database
from shared.messaging import Envelope, IdempotentConsumer, record_event
from shared.service import ServiceRuntime, create_service_app
from tests.conftest import AMQP_URL, make_settings
from tests.helpers import TcpProxy, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.heavy]


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    target = urlsplit(AMQP_URL)
    tcp = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    await tcp.open()
    yield tcp
    await tcp.cut()


@pytest.fixture
async def check_queue(broker_prefix: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """The test's own queue, read straight from RabbitMQ (not through the proxy); deleted after."""
    connection = await aio_pika.connect_robust(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=50)
        exchange = await channel.declare_exchange(f"{broker_prefix}.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(f"{broker_prefix}.outage-check", durable=True)
        await queue.bind(exchange, routing_key="doc.#")
        yield queue
        await channel.queue_delete(f"{broker_prefix}.outage-check")
        await channel.exchange_delete(f"{broker_prefix}.events")
    finally:
        await connection.close()


def _through(proxy: TcpProxy) -> str:
    parts = urlsplit(AMQP_URL)
    return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}").geturl()


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not in /metrics")


async def test_events_survive_a_broker_outage_exactly_once_in_order(
    tmp_path: Path, migrated_pg_database: str, broker_prefix: str, proxy: TcpProxy, check_queue
):
    settings = make_settings(
        tmp_path / "var",
        database_url=migrated_pg_database,
        broker_url=_through(proxy),
        broker_prefix=broker_prefix,
        outbox={"poll_seconds": 0.2, "retry_initial_seconds": 0.05, "retry_max_seconds": 0.5},
    )
    runtime = ServiceRuntime(name="archive", settings=settings, tables=messaging)
    app = create_service_app(runtime, title="outage", description="outage test", routers=[])

    queue = check_queue
    deliveries: list[str] = []  # every message id as it arrived (duplicates included)
    effects: list[tuple[str, int, str]] = []  # (document, sequence, id) as the idempotent consumer applied them

    async with app.router.lifespan_context(app):
        database: Database = runtime.db

        async def apply(_session, envelope: Envelope) -> None:
            effects.append((envelope.data["document"], envelope.data["seq"], envelope.id))

        consumer = IdempotentConsumer(database, messaging, "test.outage", apply)

        async def consume() -> None:
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        envelope = Envelope.from_json(message.body)
                        deliveries.append(envelope.id)
                        await consumer(envelope)

        consuming = asyncio.create_task(consume())
        written: list[str] = []
        sequences: dict[str, itertools.count[int]] = defaultdict(itertools.count)
        documents = [f"doc-{i}" for i in range(30)]

        async def write_load(seconds: float) -> None:
            """About 60 events/s: each transaction is one event of a random document."""
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                document = random.choice(documents)
                async with database.session() as session:
                    written.append(
                        await record_event(
                            session,
                            messaging,
                            "doc.changed.v1",
                            {"document": document, "seq": next(sequences[document])},
                            ordering_key=document,
                        )
                    )
                await asyncio.sleep(1 / 60)

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://archive") as http:
            assert (await http.get("/ready")).status_code == 200
            writer = asyncio.create_task(write_load(5.0))
            await asyncio.sleep(1.0)

            await proxy.cut()
            cut_at = time.monotonic()
            written_before_cut = len(written)

            async def ready_says_broker_down() -> bool:
                answer = await http.get("/ready")
                return answer.status_code == 503 and answer.json()["checks"]["broker"].startswith("error")

            await wait_until(ready_says_broker_down, 5, "/ready to report the broker down")
            # the outbox still takes work: only the broker and outbox checks may be left out
            assert (await http.get("/ready", params={"exclude": ["broker", "outbox"]})).status_code == 200
            await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - cut_at)))  # 3 s: far past the old 20 tries

            metrics = (await http.get("/metrics")).text
            assert _metric(metrics, "lienthong_outbox_pending") > 0
            assert _metric(metrics, "lienthong_outbox_oldest_pending_seconds") > 1.0
            assert _metric(metrics, "lienthong_broker_up") == 0
            async with database.session() as session:
                tries = (await session.execute(select(func.max(messaging.outbox.c.attempts)))).scalar_one()
            assert tries <= 3, f"attempts are spent while the broker is away ({tries})"

            written_during_cut = len(written) - written_before_cut
            await proxy.open()  # the broker is back on the same address
            await writer

            async def all_applied() -> bool:
                return len(effects) >= len(written)

            await wait_until(all_applied, 30, "every event to arrive after the outage")
            await asyncio.sleep(0.3)  # a late duplicate would show now

            async def ready_again() -> bool:
                return (await http.get("/ready")).status_code == 200

            await wait_until(ready_again, 10, "/ready to recover")
            metrics = (await http.get("/metrics")).text
            assert _metric(metrics, "lienthong_outbox_pending") == 0
            assert _metric(metrics, "lienthong_broker_up") == 1

        consuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming

    # the load ran through the outage (about 60 events/s; fewer on a loaded machine)
    assert written_during_cut >= 20, written_during_cut
    applied_ids = [message_id for _, _, message_id in effects]
    assert sorted(applied_ids) == sorted(written), "an event was lost or applied twice"
    assert set(deliveries) == set(written)
    per_document: dict[str, list[int]] = defaultdict(list)
    for document, seq, _ in effects:
        per_document[document].append(seq)
    for document, seqs in per_document.items():
        assert seqs == list(range(len(seqs))), f"{document} arrived out of order: {seqs}"
