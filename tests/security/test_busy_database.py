"""A long registry import commits in batches, and a busy database is a 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared.errors import install_error_handlers
from tests.conftest import running_system
from tests.helpers import assert_problem


async def test_a_long_import_commits_in_batches(tmp_path: Path, database_url: str | None) -> None:
    commits: list[int] = []

    def count(_session: Session) -> None:
        commits.append(1)

    async with running_system(tmp_path / "var", database_url, registry={"import_batch_size": 20}) as api:
        admin = await api.admin()
        rows = [{"code": "950.00.00.T01", "name": "Gốc", "level": "other"}]
        rows += [
            {
                "code": f"950.{n // 100:02d}.{n % 100:02d}.T02",
                "name": f"Đơn vị {n}",
                "level": "other",
                "parent_code": "950.00.00.T01",
            }
            for n in range(1, 120)
        ]
        event.listen(Session, "after_commit", count)
        try:
            response = await api.http.post(
                "/v1/agencies/import", params={"format": "json"}, content=json.dumps(rows), headers=admin
            )
        finally:
            event.remove(Session, "after_commit", count)
        assert response.status_code == 200, response.text
        assert len(response.json()["created"]) == 120
        assert len(commits) >= 120 // 20  # a commit per batch, not one for the whole file


@pytest.mark.parametrize(
    "message, sqlstate",
    [
        ("database is locked", None),
        ("canceling statement due to lock timeout", "55P03"),
        ("could not serialize access", "40001"),
        ("deadlock detected", "40P01"),
    ],
)
async def test_a_busy_database_is_a_503_with_retry_after(message: str, sqlstate: str | None) -> None:
    class Orig(Exception):
        pass

    orig = Orig(message)
    if sqlstate:
        orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/write")
    async def write() -> None:
        raise OperationalError("UPDATE agencies ...", {}, orig)

    @app.post("/other")
    async def other() -> None:
        raise OperationalError("SELECT 1", {}, Orig("no such table: agencies"))

    async with AsyncClient(transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t") as http:
        response = await http.post("/write")
        assert_problem(response, 503, "database_busy")
        assert int(response.headers["Retry-After"]) >= 1
        assert (await http.post("/other")).status_code == 500  # other operational errors stay what they are


async def test_a_postgresql_lock_timeout_is_a_503(tmp_path: Path) -> None:
    from tests.conftest import TEMPLATES

    async with TEMPLATES.pg_clone() as url:
        dsn = url.replace("postgresql+asyncpg", "postgresql")
        database = dsn.rsplit("/", 1)[1]
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f"ALTER DATABASE \"{database}\" SET lock_timeout = '300ms'")
        finally:
            await admin.close()
        async with running_system(tmp_path / "var", url) as api:
            headers = await api.admin()
            holder = await asyncpg.connect(dsn)
            try:
                async with holder.transaction():
                    await holder.execute("LOCK TABLE registry.agency IN ACCESS EXCLUSIVE MODE")
                    response = await api.http.post(
                        "/v1/agencies",
                        json={"code": "951.00.00.H01", "name": "Sở bận", "level": "department"},
                        headers=headers,
                    )
                    assert_problem(response, 503, "database_busy")
                    assert response.headers["Retry-After"]
            finally:
                await holder.close()
            await asyncio.sleep(0)
            response = await api.http.post(
                "/v1/agencies", json={"code": "951.00.00.H01", "name": "Sở bận", "level": "department"}, headers=headers
            )
            assert response.status_code == 201, response.text
