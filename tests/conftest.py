"""Test fixtures: a PostgreSQL database and a RabbitMQ prefix of this run's own, cleaned up after,
and the whole system in-process (embedded composition) on SQLite or on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from services.runtime import Topology, build_embedded_app, ensure_local_secrets, topology_env
from services.settings import Settings
from shared.messaging import RabbitBroker
from tests.helpers import Api

PG_ADMIN_DSN = os.environ.get("LIENTHONG_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("LIENTHONG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RUN_ID = uuid.uuid4().hex[:10]

# Nothing from the developer's own environment leaks into the tests' settings.
for key in [k for k in os.environ if k.startswith("LIENTHONG_") and not k.startswith("LIENTHONG_TEST_")]:
    del os.environ[key]


def pg_url(database: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def _admin_execute(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(suffix: str = "") -> AsyncIterator[str]:
    """Create a PostgreSQL database of this run's own, drop it after; yield its SQLAlchemy URL."""
    name = f"lt_test_{RUN_ID}{suffix}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def fresh_pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of one test's own."""
    async with scratch_database(f"_{secrets.token_hex(3)}") as url:
        yield url


@pytest.fixture
def broker_prefix() -> str:
    """An exchange/queue prefix of one test's own."""
    return f"lt-test-{RUN_ID}-{secrets.token_hex(3)}"


def make_settings(var_dir: Path, **overrides: object) -> Settings:
    """Settings for a test: everything under ``var_dir``, nothing from the environment."""
    values: dict[str, object] = {
        "var_dir": var_dir,
        "broker_url": "memory://",
        "outbox": {"poll_seconds": 0.2, "retry_initial_seconds": 0.05, "retry_max_seconds": 0.5},
        "log_json": False,
        # cheap secret hashing: the tests create hundreds of clients; production keeps argon2's defaults
        "auth": {"secret_hash_time_cost": 1, "secret_hash_memory_kib": 1024},
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    settings = settings.model_copy(
        update={
            "registry": settings.registry.model_copy(
                update={"admin_client_secret": SecretStr("admin-secret-for-tests")}
            )
        }
    )
    return ensure_local_secrets(settings)


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None (SQLite files under var/, the embedded default) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    async with scratch_database(f"_{secrets.token_hex(3)}") as url:
        yield url


@asynccontextmanager
async def running_system(var_dir: Path, database_url: str | None = None, **overrides: object) -> AsyncIterator[Api]:
    """The whole system in one process (gateway + services) with these settings, and a caller."""
    if database_url:
        overrides["database_url"] = database_url
    settings = make_settings(var_dir, **overrides)
    app = build_embedded_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as http:
            yield Api(http, settings, app)


@pytest.fixture
async def api(database_url: str | None, tmp_path: Path) -> AsyncIterator[Api]:
    """The whole system in one process (gateway + services), on SQLite or on PostgreSQL."""
    async with running_system(tmp_path / "var", database_url) as caller:
        yield caller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def production_topology(
    tmp_path: Path, fresh_pg_database: str, broker_prefix: str
) -> AsyncIterator[tuple[Topology, Settings]]:
    """Every service its own process on free ports, on PostgreSQL and RabbitMQ (own database and
    prefix); stopped, and the prefix's exchanges and queues deleted, at the end."""
    settings = make_settings(
        tmp_path / "var", database_url=fresh_pg_database, broker_url=AMQP_URL, broker_prefix=broker_prefix
    )
    env = topology_env(settings, base_env=dict(os.environ))
    for name in ("gateway", "registry", "exchange", "signature", "archive"):
        env[f"LIENTHONG_{name.upper()}__URL"] = f"http://127.0.0.1:{free_port()}"
    env["LIENTHONG_LOG_JSON"] = "false"
    topology = Topology(env, tmp_path / "logs")
    await asyncio.to_thread(topology.start)
    try:
        yield topology, settings
    finally:
        await asyncio.to_thread(topology.stop)
        broker = RabbitBroker(AMQP_URL, broker_prefix)
        await broker.start()
        await broker.delete_all(["archive.documents"])
        await broker.close()
