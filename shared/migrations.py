"""Alembic migrations per service, applied programmatically (``lienthong migrate`` and dev start-up).

A service keeps its history in ``services/<name>/migrations/``; its ``env.py`` only calls
:func:`run_env` with the service's metadata. On PostgreSQL the migrations run inside the service's
schema (``search_path``), under an advisory lock so that several replicas starting together migrate
once; on SQLite they run in batch mode.
"""

from __future__ import annotations

from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from shared.db import create_engine, ensure_schema, is_sqlite


def alembic_config(service: str) -> Config:
    """Return the Alembic configuration of a service (its scripts live in its package)."""
    cfg = Config()
    cfg.set_main_option("script_location", f"services.{service}:migrations")
    cfg.set_main_option("version_table", "alembic_version")
    return cfg


def run_env(metadata: MetaData) -> None:
    """Body of every service's ``env.py``: migrate the connection handed over by :func:`upgrade`."""
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `lienthong migrate`, not the alembic command")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection, /, service: str, action: str, **kwargs: Any) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"migrate:{service}"})
    cfg = alembic_config(service)
    cfg.attributes["connection"] = connection
    getattr(command, action)(cfg, **kwargs)


async def upgrade(service: str, url: str, revision: str = "head", *, sqlite_synchronous: str = "FULL") -> None:
    """Apply a service's migrations up to ``revision`` on the database at ``url`` (SQLite at the
    service's ``synchronous`` level: a migration's commit is as durable as the service's own)."""
    await ensure_schema(url, service)
    schema = None if is_sqlite(url) else service
    engine = create_engine(url, schema, sqlite_synchronous=sqlite_synchronous, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            if is_sqlite(url):
                # batch migrations rebuild tables; SQLite checks foreign keys on DROP TABLE unless told
                # not to, and the pragma only works outside a transaction
                await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                await conn.commit()
            async with conn.begin():
                await conn.run_sync(_run, service, "upgrade", revision=revision)
    finally:
        await engine.dispose()


async def current_revision(service: str, url: str) -> str | None:
    """Return the revision a service's database is at (None when never migrated)."""
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url, None if is_sqlite(url) else service, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()
