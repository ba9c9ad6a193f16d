"""Outbox relay throughput: events committed to PostgreSQL, published to RabbitMQ with publisher
confirms and marked published, per second; the ceiling is aio-pika's raw confirmed publish rate on
the same connection in the same run."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from rich.progress import Progress

from bench.common import AMQP_URL, scratch_database, scratch_prefix
from services.archive.models import messaging
from shared.db import Database
from shared.messaging import Envelope, OutboxRelay, RabbitBroker, record_event
from shared.migrations import upgrade

EVENTS = 5000


async def main() -> None:
    prefix = scratch_prefix()
    async with scratch_database() as url:
        await upgrade("archive", url)
        database = Database(url, "archive")
        broker = RabbitBroker(AMQP_URL, prefix)
        await broker.start()
        try:
            with Progress() as progress:
                task = progress.add_task("writing events to the outbox", total=EVENTS)
                for start in range(0, EVENTS, 500):
                    async with database.session() as session:
                        for n in range(start, min(start + 500, EVENTS)):
                            await record_event(
                                session,
                                messaging,
                                "bench.created.v1",
                                {"n": n, "pad": "x" * 200},
                                ordering_key=f"document-{n % 1000}",  # as the exchange keys its events
                            )
                    progress.update(task, advance=500)

                relay = OutboxRelay(database, messaging, broker, "bench", batch_size=500)
                task = progress.add_task("relaying", total=EVENTS)
                started = time.perf_counter()
                published = 0
                while published < EVENTS:
                    count = await relay.publish_pending()
                    published += count
                    progress.update(task, advance=count)
                relay_seconds = time.perf_counter() - started

                task = progress.add_task("raw confirmed publishes (ceiling)", total=EVENTS)
                envelope = Envelope("id", "bench.raw.v1", "bench", dt.datetime.now(dt.UTC), {"pad": "x" * 200})
                started = time.perf_counter()
                for _ in range(EVENTS):
                    await broker.publish(envelope)
                    progress.update(task, advance=1)
                raw_seconds = time.perf_counter() - started
        finally:
            assert broker._connection is not None
            channel = await broker._connection.channel()
            await channel.exchange_delete(broker.exchange_name)
            await broker.close()
            await database.dispose()
    print(f"outbox relay: {EVENTS / relay_seconds:,.0f} events/s (PostgreSQL outbox → RabbitMQ, confirmed, marked)")
    print(f"ceiling:      {EVENTS / raw_seconds:,.0f} confirmed publishes/s (aio-pika, sequential, same run)")


if __name__ == "__main__":
    asyncio.run(main())
