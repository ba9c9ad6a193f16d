"""A service's PostgreSQL pool keeps the connections its concurrent transactions use: under a
steady load of 16 at once (the send benchmark's senders) it opens none after the first wave. A
pool of 10 with an overflow closed at each return opened about ten a second in `bench send`,
a PostgreSQL backend and a TLS handshake each."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from shared.config import CoreSettings
from shared.db import Database

CONCURRENT = 16


async def transaction(database: Database, pids: set[int]) -> None:
    async with database.session() as session:
        pids.add(int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
        await asyncio.sleep(0.05)


async def backends_in_waves(database: Database, waves: int) -> list[set[int]]:
    """Each wave: ``CONCURRENT`` transactions at once, each holding its connection a moment, with
    a pause between waves in which every connection is back in the pool."""
    seen: list[set[int]] = []
    for _ in range(waves):
        pids: set[int] = set()

        await asyncio.gather(*(transaction(database, pids) for _ in range(CONCURRENT)))
        seen.append(pids)
        await asyncio.sleep(0.05)
    return seen


async def test_a_steady_load_reuses_the_pools_connections(fresh_pg_database: str) -> None:
    settings = CoreSettings()
    database = Database(
        fresh_pg_database,
        "public",
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        waves = await backends_in_waves(database, 3)
    finally:
        await database.dispose()
    assert all(len(wave) == CONCURRENT for wave in waves)
    assert waves[1] == waves[0] and waves[2] == waves[0], "connections were closed and opened again"


async def test_a_pool_smaller_than_the_load_opens_connections_again(fresh_pg_database: str) -> None:
    """What the default pool is sized against: 10 kept, the overflow closed when returned."""
    database = Database(fresh_pg_database, "public", pool_size=10, max_overflow=10)
    try:
        waves = await backends_in_waves(database, 2)
    finally:
        await database.dispose()
    assert len(waves[1] - waves[0]) >= CONCURRENT - 10


def test_the_pool_is_a_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LIENTHONG_DATABASE_POOL_SIZE", "40")
    monkeypatch.setenv("LIENTHONG_DATABASE_MAX_OVERFLOW", "0")
    settings = CoreSettings()
    assert (settings.database_pool_size, settings.database_max_overflow) == (40, 0)
    database = Database("postgresql+asyncpg://postgres@127.0.0.1/x", "public", pool_size=40, max_overflow=0)
    pool = database.engine.sync_engine.pool
    assert pool.size() == 40 and pool._max_overflow == 0  # type: ignore[attr-defined]
