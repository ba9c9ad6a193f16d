"""Run as a separate process by test_messaging: commit an event, then die by SIGKILL.

    python -m tests.shared.relay_crash <database_url> <amqp_url> <prefix> <when>

``when`` = ``after-commit``: killed between the commit and any publish (the relay never ran);
``after-publish``: the relay published to RabbitMQ (confirmed) and is killed before marking the row.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from services.archive.models import messaging
from shared.db import Database
from shared.messaging import Envelope, OutboxRelay, RabbitBroker, record_event


class _DieAfterPublish(RabbitBroker):
    async def publish(self, envelope: Envelope) -> None:
        await super().publish(envelope)
        os.kill(os.getpid(), signal.SIGKILL)


async def main(database_url: str, amqp_url: str, prefix: str, when: str) -> None:
    database = Database(database_url, "archive")
    async with database.session() as session:
        message_id = await record_event(session, messaging, "test.crash.v1", {"n": 1})
    print(message_id, flush=True)
    if when == "after-commit":
        os.kill(os.getpid(), signal.SIGKILL)
    broker = _DieAfterPublish(amqp_url, prefix)
    await broker.start()
    await OutboxRelay(database, messaging, broker, "crash-test").publish_pending()
    raise SystemExit("the relay should have been killed")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
