"""Every service's migrations on PostgreSQL (a schema each) and SQLite, and their match with the models."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from services.runtime import service_factories
from shared.config import SERVICE_NAMES
from shared.db import create_engine, ensure_schema, is_sqlite
from shared.migrations import alembic_config, current_revision, upgrade


def _metadata(service: str):
    module = __import__(f"services.{service}.models", fromlist=["Base"])
    return module.Base.metadata


async def test_each_service_migrates_into_its_own_postgres_schema(fresh_pg_database):
    for service in SERVICE_NAMES:
        await upgrade(service, fresh_pg_database)
        await upgrade(service, fresh_pg_database)  # a second run changes nothing
        head = ScriptDirectory.from_config(alembic_config(service)).get_current_head()
        assert await current_revision(service, fresh_pg_database) == head
    dsn = fresh_pg_database.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = ANY($1::text[])",
            list(SERVICE_NAMES),
        )
    finally:
        await conn.close()
    tables = {(r["table_schema"], r["table_name"]) for r in rows}
    assert ("registry", "agency") in tables and ("exchange", "delivery") in tables
    assert ("archive", "archive_record") in tables
    for service in SERVICE_NAMES:
        assert (service, "outbox_message") in tables
        assert (service, "alembic_version") in tables
    assert ("public", "agency") not in tables


async def test_replicas_starting_together_on_a_new_database_all_create_its_schema(fresh_pg_database):
    """A service's workers or replicas start at once on a database without its schema: each creates
    the schema if missing (then migrates under a lock). ``CREATE SCHEMA IF NOT EXISTS`` alone fails
    the second of two concurrent creators (a unique violation of pg_namespace), and a worker that
    failed so stopped uvicorn's whole supervisor (seen once in the topology test)."""
    for round_ in range(5):
        schemas = [f"race_{round_}_{service}" for service in SERVICE_NAMES]
        creators = [ensure_schema(fresh_pg_database, schema) for schema in schemas for _ in range(3)]
        results = await asyncio.gather(*creators, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
    dsn = fresh_pg_database.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        made = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'race_%'")
    finally:
        await conn.close()
    assert made == 5 * len(SERVICE_NAMES)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migrated_schema_matches_the_models(backend, tmp_path, fresh_pg_database):
    """What the migrations build is what the models declare (no forgotten migration)."""
    for service in SERVICE_NAMES:
        url = f"sqlite+aiosqlite:///{tmp_path / service}.db" if backend == "sqlite" else fresh_pg_database
        await upgrade(service, url)
        engine = create_engine(url, None if is_sqlite(url) else service, poolclass=NullPool)
        metadata = _metadata(service)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c, m=metadata: compare_metadata(MigrationContext.configure(c, opts={"compare_type": False}), m)
            )
        await engine.dispose()
        assert diff == [], f"{service}: models and migrations differ: {diff}"


def test_every_service_has_an_app_factory():
    assert set(service_factories()) == set(SERVICE_NAMES)


async def test_registry_upgrade_from_0001_keeps_agencies_and_client_secrets(tmp_path):
    """Data written by the first schema survives the directory migration (secrets move tables)."""
    import sqlalchemy as sa

    from shared.auth import hash_secret, verify_secret

    url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    await upgrade("registry", url, "0001")
    engine = create_engine(url, None, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO agency (id, code, name, level, status, created_at, updated_at) "
                "VALUES ('0123456789abcdef0123456789abcdef', '000.00.00.H41', 'Ủy ban nhân dân tỉnh', 'province',"
                " 'active', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        await conn.execute(
            sa.text(
                "INSERT INTO api_client (id, client_id, name, scopes, secret_hash, created_at) "
                "VALUES ('fedcba9876543210fedcba9876543210', 'c1', 'n', '[]', :h, '2026-01-01 00:00:00')"
            ),
            {"h": hash_secret("s3cret")},
        )
    await upgrade("registry", url)
    async with engine.connect() as conn:
        search = (await conn.execute(sa.text("SELECT search_text FROM agency"))).scalar_one()
        secret_hash = (await conn.execute(sa.text("SELECT secret_hash FROM client_secret"))).scalar_one()
    await engine.dispose()
    assert search == "uy ban nhan dan tinh"
    assert verify_secret(secret_hash, "s3cret")


async def test_exchange_upgrade_to_0008_makes_response_for_a_list(tmp_path):
    """A document stored with one ``response_for`` object reads as a list of one after 0008."""
    import sqlalchemy as sa

    url = f"sqlite+aiosqlite:///{tmp_path / 'exchange.db'}"
    await upgrade("exchange", url, "0005")
    engine = create_engine(url, None, poolclass=NullPool)
    answered = '{"organ_id": "000.00.00.G22", "code": "12/KH-UBND"}'
    async with engine.begin() as conn:
        for number, response_for in (("1", answered), ("2", None)):
            await conn.execute(
                sa.text(
                    "INSERT INTO document (id, sender_code, sender_client_id, code_number, code_notation, type_name,"
                    " subject, promulgation_date, urgency, steering_type, response_for, created_at)"
                    " VALUES (:id, '000.00.01.H41', 'c1', :n, 'KH-UBND', 'Kế hoạch', 'S', '2026-11-20', 0, 0, :r,"
                    " '2026-11-20 00:00:00')"
                ),
                {"id": f"0123456789abcdef0123456789abcde{number}", "n": number, "r": response_for},
            )
    await upgrade("exchange", url)
    async with engine.connect() as conn:
        query = sa.text("SELECT code_number, response_for FROM document ORDER BY code_number")
        rows = (await conn.execute(query)).all()
    await engine.dispose()
    assert [(n, json.loads(r) if r else None) for n, r in rows] == [("1", [json.loads(answered)]), ("2", None)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_exchange_upgrade_to_0011_keeps_the_feed_and_numbers_on_from_its_counter(
    backend, tmp_path, fresh_pg_database
):
    """A feed written before 0011 keeps its entries and numbers; the next entry of a pull agency
    is numbered on from its counter (at the commit on PostgreSQL), and a number stays unique."""
    import uuid

    import sqlalchemy as sa

    from services.exchange.feed.repository import FeedRepository
    from shared.db import Database, utcnow

    url = f"sqlite+aiosqlite:///{tmp_path / 'exchange.db'}" if backend == "sqlite" else fresh_pg_database
    schema = None if backend == "sqlite" else "exchange"
    await upgrade("exchange", url, "0010")
    engine = create_engine(url, schema, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO feed_counter (agency_code, last_seq) VALUES ('H01.1', 2)"))
        for seq in (1, 2):
            await conn.execute(
                sa.text(
                    "INSERT INTO feed_entry (id, agency_code, seq, type, document_id, data, created_at)"
                    " VALUES (:id, 'H01.1', :seq, 'delivery.received', :doc, '{}', '2026-11-20 00:00:00')"
                ),
                {"id": uuid.uuid4().hex, "seq": seq, "doc": uuid.uuid4().hex},
            )
    await engine.dispose()
    await upgrade("exchange", url)
    database = Database(url, "exchange")
    try:
        entry = {
            "agency_code": "H01.1",
            "type": "delivery.received",
            "document_id": uuid.uuid4(),
            "delivery_id": None,
            "data": {},
            "created_at": utcnow(),
        }
        async with database.session() as session:
            await FeedRepository(session).append([entry], number_now=set())
        async with database.session() as session:
            seqs = (await session.execute(sa.text("SELECT seq FROM feed_entry ORDER BY seq"))).scalars().all()
        assert list(seqs) == [1, 2, 3]
        with pytest.raises(sa.exc.IntegrityError):  # the number is still unique per agency
            async with database.session() as session:
                await session.execute(
                    sa.text(
                        "INSERT INTO feed_entry (id, agency_code, seq, type, document_id, data, created_at)"
                        " VALUES (:id, 'H01.1', 3, 'delivery.received', :doc, '{}', '2026-11-20 00:00:00')"
                    ),
                    {"id": uuid.uuid4().hex, "doc": uuid.uuid4().hex},
                )
    finally:
        await database.dispose()
