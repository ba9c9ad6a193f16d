"""Helpers for tests that drive the public API."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from services.demo.pdf import make_pdf
from services.settings import Settings
from shared.service import ServiceRuntime


@dataclass(frozen=True)
class Client:
    agency_code: str
    client_id: str
    client_secret: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def random_code(level_letter: str = "H") -> str:
    """A random agency code in the national form (tests never collide with each other)."""
    r = random.randint
    return f"{r(100, 999)}.{r(0, 99):02d}.{r(0, 99):02d}.{level_letter}{r(0, 99):02d}"


def metadata(recipients: list[str], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code_number": str(random.randint(1, 99999)),
        "code_notation": "KH-UBND",
        "type_name": "Kế hoạch",
        "subject": "Kế hoạch triển khai chuyển đổi số",
        "promulgation_place": "Nghệ An",
        "promulgation_date": "2026-11-20",
        "signer": {"position": "Chủ tịch", "full_name": "Nguyễn Văn A"},
        "urgency": 0,
        "recipients": recipients,
    }
    body.update(overrides)
    return body


class Api:
    """A caller of the public API (through the gateway) with shortcuts for common set-up."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings, app: FastAPI | None = None) -> None:
        self.http = http
        self.settings = settings
        self.app = app
        self._admin: dict[str, str] | None = None

    def service_runtime(self, name: str) -> ServiceRuntime:
        """The runtime of one service of the embedded system (its database, broker, clients)."""
        from gateway.runtime import GatewayRuntime
        from shared.runtime import app_runtime

        assert self.app is not None
        return app_runtime(app_runtime(self.app, GatewayRuntime).embedded[name], ServiceRuntime)

    async def token(self, client_id: str, client_secret: str, scope: str | None = None) -> httpx.Response:
        data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        if scope:
            data["scope"] = scope
        return await self.http.post("/v1/auth/token", data=data)

    async def admin(self) -> dict[str, str]:
        if self._admin is None:
            secret = self.settings.registry.admin_client_secret
            assert secret is not None
            response = await self.token(self.settings.registry.admin_client_id, secret.get_secret_value())
            assert response.status_code == 200, response.text
            self._admin = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return self._admin

    async def create_agency(self, code: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {
            "code": code or random_code(),
            "name": f"Sở thử nghiệm {random.randint(1, 10**6)}",
            "level": "department",
        }
        body.update(fields)
        response = await self.http.post("/v1/agencies", json=body, headers=await self.admin())
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def agency_client(self, code: str | None = None, scopes: list[str] | None = None) -> Client:
        """Create an agency (unless ``code`` exists) and an API client for it, with a token."""
        if code is None:
            code = (await self.create_agency())["code"]
        body: dict[str, Any] = {"name": "test system"}
        if scopes is not None:
            body["scopes"] = scopes
        response = await self.http.post(f"/v1/agencies/{code}/clients", json=body, headers=await self.admin())
        assert response.status_code == 201, response.text
        created = response.json()
        token = await self.token(created["client_id"], created["client_secret"])
        assert token.status_code == 200, token.text
        return Client(code, created["client_id"], created["client_secret"], token.json()["access_token"])

    async def send(
        self,
        sender: Client,
        recipients: list[str],
        *,
        files: list[tuple[str, bytes, str]] | None = None,
        headers: dict[str, str] | None = None,
        **overrides: Any,
    ) -> httpx.Response:
        files = files if files is not None else [("van-ban.pdf", make_pdf(["Van ban thu nghiem"]), "application/pdf")]
        return await self.http.post(
            "/v1/documents",
            data={"metadata": json.dumps(metadata(recipients, **overrides), ensure_ascii=False)},
            files=[("files", f) for f in files],
            headers={**sender.auth, **(headers or {})},
        )


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert a problem+json answer with this status and stable code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


@asynccontextmanager
async def writes_held(api: Api, service: str, table: str, waiters: int) -> AsyncIterator[None]:
    """Hold off writes to one table of a service while reads go on, so that ``waiters`` concurrent
    requests all pass their checks before any of them inserts: a race made deterministic.

    Start the requests as tasks inside the block; the block ends once they all wait to write.
    """
    url = api.settings.database_url_for(service)
    if url.startswith("sqlite"):
        lock = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None, timeout=30)
        lock.execute("BEGIN IMMEDIATE")  # readers go on (WAL), writers wait
        try:
            yield
            await asyncio.sleep(1.0)  # nothing to observe on SQLite: give the requests time to reach the write
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        return
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(f'LOCK TABLE "{service}"."{table}" IN SHARE ROW EXCLUSIVE MODE')
        try:
            yield
            blocked = "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted"
            for _ in range(200):
                if await conn.fetchval(blocked, f"{service}.{table}") >= waiters:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"the requests never reached the write to {service}.{table}")
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


async def race(api: Api, service: str, table: str, calls: list[Awaitable[httpx.Response]]) -> list[object]:
    """Run ``calls`` concurrently, all past their reads before any writes; return statuses or errors."""
    async with writes_held(api, service, table, waiters=len(calls)):
        tasks = [asyncio.ensure_future(call) for call in calls]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in results]
