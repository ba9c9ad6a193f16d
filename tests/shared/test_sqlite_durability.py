"""SQLite commits are on disk when they return (``synchronous`` FULL in WAL mode): a document the
embedded mode answered ``202`` for survives a power loss, not only a crash of the process. The
level is a setting (``LIENTHONG_SQLITE_SYNCHRONOUS``), FULL unless told otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from services.settings import Settings
from shared.db import Database, create_engine
from shared.messaging import InProcessBroker
from shared.messaging.local_queue import LocalQueueStore
from tests.conftest import running_system

FULL, NORMAL = 2, 1  # what PRAGMA synchronous answers


async def _level(database: Database) -> int:
    async with database.engine.connect() as connection:
        return int((await connection.execute(text("PRAGMA synchronous"))).scalar_one())


async def test_a_service_database_syncs_each_commit_unless_told_otherwise(tmp_path: Path) -> None:
    full = Database(f"sqlite+aiosqlite:///{tmp_path / 'full.db'}", "full")
    normal = Database(f"sqlite+aiosqlite:///{tmp_path / 'normal.db'}", "normal", sqlite_synchronous="NORMAL")
    try:
        assert await _level(full) == FULL
        assert await _level(normal) == NORMAL
        async with full.engine.connect() as connection:  # still WAL: readers never wait for the writer
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await full.dispose()
        await normal.dispose()
    with pytest.raises(ValueError, match="FULL"):
        create_engine(f"sqlite+aiosqlite:///{tmp_path / 'off.db'}", sqlite_synchronous="OFF")


def test_the_in_process_bus_store_syncs_each_message(tmp_path: Path) -> None:
    for store, expected in (
        (LocalQueueStore(tmp_path / "bus.sqlite3"), FULL),
        (LocalQueueStore(tmp_path / "bus-normal.sqlite3", synchronous="NORMAL"), NORMAL),
        (InProcessBroker(tmp_path / "bus-broker.sqlite3").store, FULL),
    ):
        try:
            assert store._run("PRAGMA synchronous") == [(expected,)]
        finally:
            store.close()
    with pytest.raises(ValueError):
        LocalQueueStore(tmp_path / "off.sqlite3", synchronous="OFF")


def test_the_setting_is_full_by_default_and_refuses_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LIENTHONG_SQLITE_SYNCHRONOUS")  # the suite's own NORMAL (tests/conftest.py)
    assert Settings(var_dir=tmp_path).sqlite_synchronous == "FULL"
    monkeypatch.setenv("LIENTHONG_SQLITE_SYNCHRONOUS", "normal")  # SQLite's own spelling, either case
    assert Settings(var_dir=tmp_path).sqlite_synchronous == "NORMAL"
    monkeypatch.setenv("LIENTHONG_SQLITE_SYNCHRONOUS", "OFF")  # never: a commit could be lost to a crash
    with pytest.raises(ValidationError):
        Settings(var_dir=tmp_path)


async def test_the_embedded_system_runs_every_database_at_the_setting(tmp_path: Path) -> None:
    async with running_system(tmp_path / "full", sqlite_synchronous="FULL") as api:
        for name in ("registry", "exchange", "signature", "archive"):
            assert await _level(api.service_runtime(name).db) == FULL, name
    async with running_system(tmp_path / "normal", sqlite_synchronous="NORMAL") as api:
        assert await _level(api.service_runtime("exchange").db) == NORMAL


async def test_the_commands_open_the_databases_at_the_setting(tmp_path: Path) -> None:
    from services.cli import service_database

    database = service_database(Settings(var_dir=tmp_path, sqlite_synchronous="EXTRA"), "registry")
    try:
        assert await _level(database) == 3  # EXTRA
        assert database.url.endswith("registry.db")
    finally:
        await database.dispose()


async def test_the_migrations_run_at_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration's commits are as durable as the service's own: its engine opens SQLite at the
    level the service runs at (EXTRA included), not at the engine's default."""
    from shared import migrations

    levels: list[int] = []
    made = migrations.create_engine

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        engine = made(*args, **kwargs)

        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "connect")
        def _level_of(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous")
            levels.append(int(cursor.fetchone()[0]))
            cursor.close()

        return engine

    monkeypatch.setattr(migrations, "create_engine", recording)
    await migrations.upgrade("registry", f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}", sqlite_synchronous="EXTRA")
    assert levels and set(levels) == {3}  # EXTRA
    # `lienthong migrate`, as an operator runs it, at the setting
    from typer.testing import CliRunner

    from services.cli import app

    env = {"LIENTHONG_VAR_DIR": str(tmp_path / "cli"), "LIENTHONG_SQLITE_SYNCHRONOUS": "NORMAL"}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["migrate", "--service", "exchange"], env=env)
    assert result.exit_code == 0, result.output
    assert levels[1] == NORMAL  # its upgrade's connection (then a read of the revision it is at)
