"""Helpers for tests that drive the public API."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import inspect
import io
import itertools
import json
import random
import re
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from sqlalchemy import event

from services.demo.pdf import make_pdf
from services.settings import Settings
from shared.db import Database
from shared.service import ServiceRuntime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(
    app: Any, *, port: int | None = None, lifespan: Literal["auto", "on", "off"] = "off"
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on this machine (on ``port``, or a free one) until the block
    ends; yield its URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


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


# document numbers of this test process: never twice (a number sent twice in a year is refused,
# and 30 random numbers below 100,000 met once in about 230 runs of a test that sends 30)
_document_numbers = itertools.count(random.randint(1, 10**6))


def metadata(recipients: list[str], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code_number": str(next(_document_numbers)),
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


# --- name resolution: the sandbox has no DNS, and the tests must not depend on one -------------------

PUBLIC_TEST_ADDRESS = "93.184.215.14"  # a public address: what the example names resolve to


class FakeDns:
    """``socket.getaddrinfo`` with a zone of its own: names in ``answers`` get those addresses,
    names under ``.example`` / ``.example.gov.vn`` (reserved for examples) a public one, and every
    other name the real resolver (localhost, the test databases)."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def __call__(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        addresses = self.answers.get(name)
        if addresses is None and name.endswith((".example", ".example.gov.vn")):
            addresses = [PUBLIC_TEST_ADDRESS]
        if addresses is None:
            return self.real(host, port, family, type, proto, flags)
        self.asked.append(name)
        number = int(port or 0)
        answer: list[tuple[Any, ...]] = []
        for address in addresses:
            if ":" in address:
                answer.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0)))
            else:
                answer.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number)))
        return answer


# --- waiting: on what is expected to happen, never for a fixed time --------------------------------


async def wait_until(
    predicate: Callable[[], object],
    within: float = 10.0,
    what: str = "the condition",
    interval: float = 0.02,
) -> None:
    """Return as soon as ``predicate()`` (a plain or an async function) is true; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def poll(
    call: Callable[[], Awaitable[httpx.Response]],
    done: Callable[[httpx.Response], bool],
    within: float = 5.0,
    interval: float = 0.05,
) -> httpx.Response:
    """Repeat ``call`` until ``done`` holds or ``within`` seconds pass; return the last answer."""
    deadline = time.monotonic() + within
    while True:
        response = await call()
        if done(response) or time.monotonic() >= deadline:
            return response
        await asyncio.sleep(interval)


# --- the exchange through the gateway ------------------------------------------------------------

_numbers = _document_numbers


async def send(api: Api, sender: Client, recipients: list[str], **overrides: Any) -> httpx.Response:
    """``api.send`` with a document number of its own (a number sent twice in a year is refused)."""
    return await api.send(sender, recipients, code_number=str(next(_numbers)), **overrides)


async def send_ok(api: Api, sender: Client, recipients: list[Client], **kwargs: Any) -> dict[str, Any]:
    """Send to these recipients; assert it was accepted; return the accepted document."""
    response = await api.send(sender, [r.agency_code for r in recipients], **kwargs)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def report(api: Api, client: Client, delivery_id: str, status: str, note: str | None = None) -> httpx.Response:
    """A recipient reports a national delivery status."""
    body: dict[str, Any] = {"status": status}
    if note is not None:
        body["note"] = note
    return await api.http.post(f"/v1/deliveries/{delivery_id}/status", json=body, headers=client.auth)


async def get_json(api: Api, client: Client, path: str, **params: Any) -> dict[str, Any]:
    response = await api.http.get(path, params=params, headers=client.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def document(api: Api, client: Client, document_id: str) -> dict[str, Any]:
    """A document as this client sees it."""
    return await get_json(api, client, f"/v1/documents/{document_id}")


async def list_items(api: Api, client: Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list (on one page: asserts there is no next one)."""
    page = await get_json(api, client, path, limit=500, **params)
    assert page["next_cursor"] is None
    found: list[dict[str, Any]] = page["items"]
    return found


async def sent_items(api: Api, client: Client, **params: Any) -> list[dict[str, Any]]:
    return await list_items(api, client, "/v1/documents", box="sent", **params)


async def received_items(api: Api, client: Client, **params: Any) -> list[dict[str, Any]]:
    return await list_items(api, client, "/v1/documents", box="received", **params)


async def inbox_items(api: Api, client: Client, **params: Any) -> list[dict[str, Any]]:
    return await list_items(api, client, "/v1/inbox", **params)


async def sent_ids(api: Api, client: Client, **params: Any) -> list[str]:
    return [i["document_id"] for i in await sent_items(api, client, **params)]


async def received_ids(api: Api, client: Client, **params: Any) -> list[str]:
    return [i["document_id"] for i in await received_items(api, client, **params)]


async def inbox_ids(api: Api, client: Client, **params: Any) -> list[str]:
    return [i["document_id"] for i in await inbox_items(api, client, **params)]


def upload_leftovers(api: Api) -> list[Path]:
    """Files left in the exchange's upload directory (a finished or refused upload leaves none)."""
    tmp = api.settings.blob_dir / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


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

    Start the requests as tasks inside the block; the block ends once they all wait to write: on
    PostgreSQL once ``waiters`` requests wait for the table's lock, on SQLite (where the lock is the
    whole file's) once ``waiters`` statements writing to the table were sent to the database.
    """
    url = api.settings.database_url_for(service)
    if url.startswith("sqlite"):
        assert api.app is not None, "writes_held needs the in-process system"
        engine = api.service_runtime(service).db.engine.sync_engine
        writes = re.compile(rf'\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?{table}"?[\s(]', re.IGNORECASE)
        sent: list[str] = []

        def count_writes(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if writes.match(statement):
                sent.append(statement)

        lock = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None, timeout=30, check_same_thread=False)
        # readers go on (WAL), writers wait; taken in a thread: a write transaction of the service's
        # own (a relay's, a consumer's) may hold the lock, and it commits only if the event loop runs
        await asyncio.to_thread(lock.execute, "BEGIN IMMEDIATE")
        event.listen(engine, "before_cursor_execute", count_writes)
        try:
            yield
            what = f"the requests to reach the write to {service}.{table}"
            # sent to SQLite, or waiting in the service's queue of writers behind the one that was
            writers = api.service_runtime(service).db.writers
            queued = (lambda: writers.queued) if writers is not None else (lambda: 0)
            await wait_until(lambda: len(sent) + queued() >= waiters, 10, what)
        finally:
            event.remove(engine, "before_cursor_execute", count_writes)
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
            query = "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted"

            async def all_blocked() -> bool:
                return bool(await conn.fetchval(query, f"{service}.{table}") >= waiters)

            await wait_until(all_blocked, 10, f"the requests to reach the write to {service}.{table}")
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


# --- the registry's directory through the gateway -------------------------------------------------


async def agency_codes(api: Api, **params: Any) -> list[str]:
    response = await api.http.get("/v1/agencies", params={"limit": 500, **params}, headers=await api.admin())
    assert response.status_code == 200, response.text
    return [a["code"] for a in response.json()["items"]]


async def client_ids(api: Api, code: str) -> list[str]:
    response = await api.http.get(f"/v1/agencies/{code}/clients", headers=await api.admin())
    assert response.status_code == 200, response.text
    return [c["client_id"] for c in response.json()]


EXPORT_HEADER = "code,new_code,name,short_name,level,parent_code,email,phone,address,website,status,successor_code"


async def get_agency(api: Api, code: str) -> dict[str, Any]:
    response = await api.http.get(f"/v1/agencies/{code}", headers=await api.admin())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def history_of(api: Api, code: str) -> list[dict[str, Any]]:
    response = await api.http.get(f"/v1/agencies/{code}/history", headers=await api.admin())
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def set_status(
    api: Api, code: str, status: str, *, reason: str | None = None, successor: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "reason": reason}
    if successor:
        body["successor_code"] = successor
    response = await api.http.post(f"/v1/agencies/{code}/status", json=body, headers=await api.admin())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def add_level(api: Api, code: str, rank: int) -> None:
    response = await api.http.post(
        "/v1/agency-levels", json={"code": code, "name": f"Cấp {code}", "rank": rank}, headers=await api.admin()
    )
    assert response.status_code == 201, response.text


async def create_group(
    api: Api,
    name: str,
    *,
    members: list[str] | None = None,
    rules: list[dict[str, str]] | None = None,
    title: str = "Nhóm thử",
) -> dict[str, Any]:
    body = {"name": name, "title": title, "members": members or [], "rules": rules or []}
    response = await api.http.post("/v1/groups", json=body, headers=await api.admin())
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def members_of(api: Api, name: str) -> dict[str, Any]:
    response = await api.http.get(f"/v1/groups/{name}/members", headers=await api.admin())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["count"] == len(result["members"])
    return result


async def member_codes(api: Api, name: str) -> list[str]:
    return sorted(m["code"] for m in (await members_of(api, name))["members"])


def make_certificate(common_name: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed RSA 2048 certificate for signing (digital signature, content commitment)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tỉnh Nghệ An"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


async def upload_certificate(api: Api, code: str, cert: x509.Certificate, kind: str = "seal") -> str:
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    response = await api.http.post(
        f"/v1/agencies/{code}/certificates", json={"kind": kind, "certificate": pem}, headers=await api.admin()
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def to_csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_HEADER.split(",")[:10])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# --- documents and deliveries, as the sender and the recipients see them --------------------------


PDF = make_pdf(["Ke hoach chuyen doi so"])


async def inbox(api: Api, client: Client, **params: Any) -> dict[str, Any]:
    response = await api.http.get("/v1/inbox", params=params, headers=client.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def blobs(api: Api) -> list[Path]:
    """Every stored blob (the upload tmp/ directory excluded)."""
    root = api.settings.blob_dir
    return [p for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts]


def statuses(delivery: dict[str, Any]) -> list[str]:
    return [event["status"] for event in delivery["history"]]


async def snapshot(api: Api, sender: Client, *recipients: Client) -> dict[str, Any]:
    """What a refused request must leave untouched: the sent list and every recipient's inbox."""
    state: dict[str, Any] = {"sent": await sent_items(api, sender)}
    for recipient in recipients:
        state[recipient.agency_code] = await inbox_items(api, recipient)
    return state


async def advance(api: Api, recipient: Client, delivery_id: str, path: list[str]) -> None:
    for status in path:
        response = await report(api, recipient, delivery_id, status, note="Lý do" if status == "02" else None)
        assert response.status_code == 200, (status, response.text)


async def recall(api: Api, sender: Client, document_id: str, reason: str, **extra: Any) -> httpx.Response:
    return await api.http.post(
        f"/v1/documents/{document_id}/recall", json={"reason": reason, **extra}, headers=sender.auth
    )


def delivery_for(accepted: dict[str, Any], recipient: Client) -> str:
    [delivery_id] = [d["id"] for d in accepted["deliveries"] if d["recipient_code"] == recipient.agency_code]
    return str(delivery_id)


def delivery_seen(doc: dict[str, Any], recipient: Client) -> dict[str, Any]:
    [delivery] = [d for d in doc["deliveries"] if d["recipient_code"] == recipient.agency_code]
    return dict(delivery)


def exchange_db(api: Api) -> Database:
    assert api.app is not None
    db: Database = api.service_runtime("exchange").db
    return db


# --- a broker that goes away: every connection through a proxy cut at once -----------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the broker; ``cut`` drops every connection and stops listening."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when the broker's host goes away
        self._writers.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer), return_exceptions=True
        )
        self._writers -= {client_writer, upstream_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
