"""Test fixtures: a PostgreSQL database and a RabbitMQ prefix of this run's own, cleaned up after,
and the whole system in-process (embedded composition) on SQLite or on PostgreSQL."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from services.runtime import build_embedded_app, ensure_local_secrets
from shared.config import Settings
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


@pytest.fixture(scope="session")
def run_id() -> str:
    return RUN_ID


@pytest.fixture(scope="session")
async def pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of this test run's own, dropped at the end; yields its SQLAlchemy URL."""
    name = f"lt_test_{RUN_ID}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def fresh_pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of one test's own."""
    name = f"lt_test_{RUN_ID}_{secrets.token_hex(3)}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def broker_prefix() -> str:
    """An exchange/queue prefix of one test's own."""
    return f"lt-test-{RUN_ID}-{secrets.token_hex(3)}"


def make_settings(var_dir: Path, **overrides: object) -> Settings:
    """Settings for a test: everything under ``var_dir``, nothing from the environment."""
    values: dict[str, object] = {
        "var_dir": var_dir,
        "broker_url": "memory://",
        "relay_poll_seconds": 0.2,
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
    name = f"lt_test_{RUN_ID}_{secrets.token_hex(3)}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def api(database_url: str | None, tmp_path: Path) -> AsyncIterator[Api]:
    """The whole system in one process (gateway + services), on SQLite or on PostgreSQL."""
    overrides: dict[str, object] = {"database_url": database_url} if database_url else {}
    settings = make_settings(tmp_path / "var", **overrides)
    app = build_embedded_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as http:
            yield Api(http, settings, app)
