"""Fixtures of the messaging tests: the archive's database on PostgreSQL (its messaging tables are
every service's), and a RabbitMQ broker under the test's own prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.db import Database
from shared.messaging import RabbitBroker
from tests.conftest import AMQP_URL


@pytest.fixture
async def database(migrated_pg_database: str) -> AsyncIterator[Database]:
    db = Database(migrated_pg_database, "archive")
    yield db
    await db.dispose()


@pytest.fixture
async def rabbit(broker_prefix: str, request: pytest.FixtureRequest) -> AsyncIterator[RabbitBroker]:
    """A started broker (two deliveries at most before a dead letter); at the end the queues the
    test module names in ``QUEUES`` are deleted, with their retry queues at ``RETRY_DELAYS``."""
    broker = RabbitBroker(AMQP_URL, broker_prefix, delivery_limit=2)
    await broker.start()
    yield broker
    queues = list(getattr(request.module, "QUEUES", ()))
    await broker.delete_all(queues, retry_delays=tuple(getattr(request.module, "RETRY_DELAYS", ())))
    await broker.close()
