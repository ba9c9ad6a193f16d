"""What benchmarks share: a throw-away PostgreSQL database and RabbitMQ prefix, progress output."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

PG_ADMIN_DSN = os.environ.get("LIENTHONG_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("LIENTHONG_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """Create a PostgreSQL database for one benchmark, drop it after; yield its SQLAlchemy URL."""
    name = f"lt_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def scratch_prefix() -> str:
    return f"lt-bench-{secrets.token_hex(4)}"
