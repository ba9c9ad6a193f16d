"""Test fixtures: a PostgreSQL database and a RabbitMQ prefix of this run's own, cleaned up after,
and the whole system in-process (embedded composition) on SQLite or on PostgreSQL.

Every service's migrations run once per session (per xdist worker) into template databases; a test
gets a copy, already at head: ``CREATE DATABASE … TEMPLATE`` on PostgreSQL, copied files on SQLite.
The tests of the migrations themselves, and the processes of the production topology, still start
from an empty database (``fresh_pg_database``)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import BaseModel, SecretStr
from sqlalchemy import MetaData

from services.cli import settle_heap
from services.runtime import Topology, build_embedded_app, declared_queues, ensure_local_secrets, topology_env
from services.settings import Settings
from shared.config import SERVICE_NAMES
from shared.db import Database
from shared.messaging import Broker, RabbitBroker
from shared.migrations import upgrade
from tests.helpers import Api, FakeDns, free_port

PG_ADMIN_DSN = os.environ.get("LIENTHONG_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("LIENTHONG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RUN_ID = uuid.uuid4().hex[:10]  # each xdist worker imports this module: a RUN_ID of its own

# Nothing from the developer's own environment leaks into the tests' settings.
for key in [k for k in os.environ if k.startswith("LIENTHONG_") and not k.startswith("LIENTHONG_TEST_")]:
    del os.environ[key]
# as the PostgreSQL clones' ``synchronous_commit`` off: a test's SQLite files need not survive a power
# loss, so their commits do not wait for the disk (FULL, the default, costs the suite 30 s of fsyncs);
# tests/shared/test_sqlite_durability.py checks FULL where it is the default
os.environ["LIENTHONG_SQLITE_SYNCHRONOUS"] = "NORMAL"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start processes or measure throughput run one after the other on one xdist
    worker (``--dist loadgroup``): never two of them at once on two cores."""
    for item in items:
        if item.get_closest_marker("topology") or item.get_closest_marker("heavy"):
            item.add_marker(pytest.mark.xdist_group("processes"))


SYSTEM_STOP_SECONDS = 45  # a test system must stop within this, or the test fails naming its tasks
ROUTE_CONTEXTS = 4000  # the shared route states kept at most (the least recently used go first)


def _share_route_states() -> None:
    """Every test builds its own apps, and FastAPI (0.165) works out each included route's state
    (its dependencies, body and response models, handler) at the first request an app matches,
    for every route of the router: about a fifth of a second per system, a quarter of the suite's
    CPU. The routes are the same module objects from one system to the next, included the same
    way, so the state worked out once is handed to every later app (keyed by the route and its
    inclusion; the dependency-overrides provider aside: no test overrides a dependency). A server
    builds its apps once; this is the test process's concern only."""
    import dataclasses
    from collections import OrderedDict

    from fastapi import routing

    context_class = getattr(routing, "_EffectiveRouteContext", None)
    build = getattr(context_class, "from_api_route", None)
    if context_class is None or build is None:  # another FastAPI: nothing to share
        return
    states: OrderedDict[tuple[object, ...], object] = OrderedDict()

    def from_api_route(cls: type, *, original_route: object, include_context: object) -> object:
        c: Any = include_context
        key = (
            id(original_route),
            id(c.included_router),
            c.prefix,
            tuple(c.tags),
            tuple(id(d) for d in c.dependencies),
            repr(c.default_response_class),
            tuple(sorted(map(str, c.responses))),
            c.deprecated,
            c.include_in_schema,
            repr(c.strict_content_type),
            c.max_body_size,
            repr(c.form_limits),
        )
        state = states.get(key)
        if state is None:
            # built without the including app as its dependency-overrides provider: a state shared
            # with every later app must not keep the first one (and its whole system) alive
            detached = dataclasses.replace(c, dependency_overrides_provider=None)
            state = states[key] = build(original_route=original_route, include_context=detached)
            if len(states) > ROUTE_CONTEXTS:
                states.popitem(last=False)
        else:
            states.move_to_end(key)
        return state

    context_class.from_api_route = classmethod(from_api_route)  # type: ignore[method-assign]


# LIENTHONG_TEST_SHARE_ROUTE_STATES=0: every app works its routes out itself (`python -m bench test_systems`
# measures both)
if os.environ.get("LIENTHONG_TEST_SHARE_ROUTE_STATES", "1") != "0":
    _share_route_states()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once everything is imported, the collector as a server has it (``services.cli.settle_heap``):
    what was imported frozen out of its reach, young collections less often. Every test system
    lives in this one process; collections that walked every imported object each time were a
    good part of the suite's CPU."""
    settle_heap()


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


@asynccontextmanager
async def scratch_tables(suffix: str, metadata: MetaData) -> AsyncIterator[Database]:
    """A PostgreSQL database of this run's own holding ``metadata``'s tables; dropped after."""
    async with scratch_database(suffix) as url:
        database = Database(url, "public")
        async with database.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        try:
            yield database
        finally:
            await database.dispose()


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def _assert_checkpointed(directory: Path) -> None:
    """The migrations' connections are closed: SQLite checkpointed each WAL into its file, so that
    copying the files copies the databases."""
    assert not list(directory.glob("*-wal")), sorted(directory.iterdir())


class DatabaseTemplates:
    """Every service migrated once into templates (on first use), then copied for each test.

    On PostgreSQL one template database with a schema per service, cloned by ``CREATE DATABASE …
    TEMPLATE`` (nothing may be connected to the template then: the migrations' connections are
    closed, and the template is closed to connections once built). On SQLite the four files of a
    var/ directory, copied. A copy is what a fresh database is once the services have migrated it:
    the migrations' seed data (agency levels) and nothing else; the registry's bootstrap admin is
    created at start, as on any database."""

    def __init__(self) -> None:
        self.pg_name = f"lt_test_{RUN_ID}_template"
        self.clones: set[str] = set()  # URLs of the PostgreSQL copies in use
        self._pg_built = False
        self._sqlite: Settings | None = None  # the settings whose var/ holds the SQLite template
        self._lock: asyncio.Lock | None = None
        # creating a database costs the server about 0.4 s here, dropping one waits for every
        # backend: the next test's copy is made, and the last one dropped, while a test runs
        self._next_clone: asyncio.Task[str] | None = None
        self._drops: set[asyncio.Task[None]] = set()

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _sqlite_template(self) -> Settings:
        async with self._guard():
            if self._sqlite is None:
                directory = Path(tempfile.mkdtemp(prefix=f"lt-test-{RUN_ID}-template-"))
                settings = Settings(var_dir=directory)
                for service in SERVICE_NAMES:
                    await upgrade(service, settings.database_url_for(service))
                _assert_checkpointed(directory)
                self._sqlite = settings
            return self._sqlite

    async def copy_sqlite(self, settings: Settings, services: tuple[str, ...] = SERVICE_NAMES) -> None:
        """Put a migrated copy where each of ``services`` keeps its SQLite file under ``settings``."""
        template = await self._sqlite_template()  # built once: a Settings costs milliseconds of CPU
        for service in services:
            target = sqlite_path(settings.database_url_for(service))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sqlite_path(template.database_url_for(service)), target)

    async def _pg_template(self) -> str:
        async with self._guard():
            if not self._pg_built:
                self._pg_built = True  # dropped at the end even if a migration fails half-way
                await _admin_execute(f'CREATE DATABASE "{self.pg_name}"')
                for service in SERVICE_NAMES:
                    await upgrade(service, pg_url(self.pg_name))
                await _admin_execute(f'ALTER DATABASE "{self.pg_name}" WITH ALLOW_CONNECTIONS false')
            return self.pg_name

    async def _create_clone(self) -> str:
        name = f"lt_test_{RUN_ID}_{secrets.token_hex(3)}"
        await _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{await self._pg_template()}" STRATEGY FILE_COPY')
        # a test's database need not survive a crash of the server: its commits do not wait for
        # the WAL's flush (the services' transactions are the same; the suite waits less on the disk)
        await _admin_execute(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
        return name

    @asynccontextmanager
    async def pg_clone(self) -> AsyncIterator[str]:
        """A PostgreSQL database of one test's own, migrated; dropped after."""
        made = self._next_clone or asyncio.ensure_future(self._create_clone())
        self._next_clone = asyncio.ensure_future(self._create_clone())  # for the next test
        name = await made
        url = pg_url(name)
        self.clones.add(url)
        try:
            yield url
        finally:
            self.clones.discard(url)
            dropping = asyncio.ensure_future(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            self._drops.add(dropping)
            dropping.add_done_callback(self._dropped)

    def _dropped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._drops.discard(task)  # a failed drop stays, and fails the session's end

    async def drop(self) -> None:
        """Drop the copies (the one made ahead too) and the templates."""
        try:
            if self._next_clone is not None:
                made, self._next_clone = self._next_clone, None
                await _admin_execute(f'DROP DATABASE IF EXISTS "{await made}" WITH (FORCE)')
            await asyncio.gather(*self._drops)
        finally:
            if self._pg_built:
                await _admin_execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
                self._pg_built = False
            if self._sqlite is not None:
                shutil.rmtree(self._sqlite.var_dir, ignore_errors=True)
                self._sqlite = None


TEMPLATES = DatabaseTemplates()


@pytest.fixture(scope="session", autouse=True)
async def database_templates() -> AsyncIterator[DatabaseTemplates]:
    """The session's templates, dropped at its end."""
    yield TEMPLATES
    await TEMPLATES.drop()


@pytest.fixture
async def fresh_pg_database() -> AsyncIterator[str]:
    """An empty PostgreSQL database of one test's own (for what must migrate from scratch)."""
    async with scratch_database(f"_{secrets.token_hex(3)}") as url:
        yield url


@pytest.fixture
async def migrated_pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of one test's own with every service's schema at head."""
    async with TEMPLATES.pg_clone() as url:
        yield url


@pytest.fixture
def broker_prefix() -> str:
    """An exchange/queue prefix of one test's own."""
    return f"lt-test-{RUN_ID}-{secrets.token_hex(3)}"


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Name resolution the test controls (``dns.answers[name] = [addresses]``); the example names
    resolve to a public address, other names as usual."""
    fake = FakeDns(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


EXTRACT_TEXT = False  # the archive's text extraction in test systems (tests/archive/conftest.py: on)


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
    # no signature verification unless a test asks for it (tests/exchange/test_signature_policy.py):
    # the others send placeholder PDFs, and a verification pool per system would slow every test
    exchange = overrides.pop("exchange", None)
    if isinstance(exchange, BaseModel):
        exchange = exchange.model_dump(exclude_unset=True)
    # nor the statistics' background refresh (tests/exchange/test_statistics.py refreshes when it wants)
    # nor the blob syncer's process (started by each system's first upload; the worker thread syncs
    # instead): tests/exchange/test_blobsync.py runs it, through a system too
    values["exchange"] = {
        "signature_policy_default": "off",
        "statistics_refresh_seconds": 0,
        "blob_sync_process": False,
        **(exchange or {}),
    }  # type: ignore[dict-item]
    # nor attachment text extraction (a pool of worker processes per system) unless a test asks for
    # it: tests/archive turns it on (tests/archive/conftest.py)
    archive = overrides.pop("archive", None)
    if isinstance(archive, BaseModel):
        archive = archive.model_dump(exclude_unset=True)
    values["archive"] = {"extract_text": EXTRACT_TEXT, **(archive or {})}  # type: ignore[dict-item]
    # nor the hub connector (its database, a poller): tests/hub turns it on with a hub double
    values["hub"] = {"enabled": False}
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


# a test whose behaviour happens before any database (parsing, sniffing, limits, headers) runs on
# SQLite only: every other test that takes ``api`` runs on both databases
ONE_DATABASE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None (SQLite files under var/, the embedded default; ``running_system`` copies them from the
    template) or a PostgreSQL database of the test's own, migrated."""
    if request.param == "sqlite":
        yield None
        return
    async with TEMPLATES.pg_clone() as url:
        yield url


async def _from_templates(settings: Settings) -> bool:
    """Give every service on SQLite a migrated copy of its file unless the file exists already.
    Return whether every service's database is a copy of a template (SQLite files just copied,
    PostgreSQL databases from ``TEMPLATES.pg_clone``), so at head: no service need migrate it."""
    copies = True
    for service in SERVICE_NAMES:
        url = settings.database_url_for(service)
        if url.startswith("sqlite"):
            if sqlite_path(url).exists():
                copies = False
            else:
                await TEMPLATES.copy_sqlite(settings, (service,))
        elif url not in TEMPLATES.clones:
            copies = False
    return copies


@asynccontextmanager
async def running_system(
    var_dir: Path, database_url: str | None = None, *, broker: Broker | None = None, **overrides: object
) -> AsyncIterator[Api]:
    """The whole system in one process (gateway + services) with these settings, and a caller.

    Its databases are copies of the migrated templates: the services skip the migration check at
    start (``auto_migrate``) unless a database was there before or the caller sets it."""
    if database_url:
        overrides["database_url"] = database_url
    settings = make_settings(var_dir, **overrides)
    if await _from_templates(settings) and "auto_migrate" not in overrides:
        settings = settings.model_copy(update={"auto_migrate": False})
    app = build_embedded_app(settings, broker=broker)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as http:
            yield Api(http, settings, app)
    finally:
        # longer than SQLite's busy_timeout (30 s): a connection closed at shutdown while its thread
        # waits for a lock ends when that wait does (seen once in a full run, 2026-11-29)
        await _stop_within(lifespan, SYSTEM_STOP_SECONDS)


async def _stop_within(lifespan: AbstractAsyncContextManager[object], seconds: float) -> None:
    """Stop the system; if it does not stop in time, fail with what every task was waiting on."""
    stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
    done, _ = await asyncio.wait({stopping}, timeout=seconds)
    if stopping in done:
        stopping.result()
        return
    stacks = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=12, file=stacks)
    stopping.cancel()
    raise AssertionError(f"the system did not stop within {seconds:g} s; tasks:\n{stacks.getvalue()}")


@pytest.fixture(params=["sqlite", "postgres"])
async def archive_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The archive's own database, migrated, on SQLite (embedded mode) or on PostgreSQL."""
    if request.param == "sqlite":
        settings = Settings(var_dir=tmp_path)
        await TEMPLATES.copy_sqlite(settings, ("archive",))
        url = settings.database_url_for("archive")
        db = Database(url, "archive")
        try:
            yield db
        finally:
            await db.dispose()
        return
    async with TEMPLATES.pg_clone() as url:
        db = Database(url, "archive")
        try:
            yield db
        finally:
            await db.dispose()


@pytest.fixture
async def api(database_url: str | None, tmp_path: Path) -> AsyncIterator[Api]:
    """The whole system in one process (gateway + services), on SQLite or on PostgreSQL."""
    async with running_system(tmp_path / "var", database_url) as caller:
        yield caller


@asynccontextmanager
async def topology_running(
    var_dir: Path, database_url: str, broker_prefix: str, *, broker_url: str = AMQP_URL, **env: str
) -> AsyncIterator[tuple[Topology, Settings]]:
    """Every service its own process on free ports, on PostgreSQL and RabbitMQ (``env`` added to
    theirs); stopped, and the prefix's exchanges and queues deleted, at the end."""
    settings = make_settings(var_dir, database_url=database_url, broker_url=broker_url, broker_prefix=broker_prefix)
    process_env = topology_env(settings, base_env=dict(os.environ))
    for name in ("gateway", "registry", "exchange", "signature", "archive"):
        process_env[f"LIENTHONG_{name.upper()}__URL"] = f"http://127.0.0.1:{free_port()}"
    process_env["LIENTHONG_LOG_JSON"] = "false"
    process_env.update(env)
    topology = Topology(process_env, var_dir.parent / "logs")
    try:
        # inside the try: processes that started declared their queues even when another failed
        await asyncio.to_thread(topology.start)
        yield topology, settings
    finally:
        await asyncio.to_thread(topology.stop)
        # the processes' own retry schedule, when the test set one
        exchange = settings.exchange.model_copy(
            update={
                key: json.loads(env[f"LIENTHONG_EXCHANGE__{key.upper()}"])
                for key in ("push_retry_schedule", "dispatch_defer_seconds", "signature_retry_schedule")
                if f"LIENTHONG_EXCHANGE__{key.upper()}" in env
            }
        )
        await delete_queues(settings.model_copy(update={"exchange": exchange}))


@pytest.fixture
async def production_topology(
    tmp_path: Path, fresh_pg_database: str, broker_prefix: str
) -> AsyncIterator[tuple[Topology, Settings]]:
    """Every service its own process on free ports, on PostgreSQL and RabbitMQ (own database and
    prefix); stopped, and the prefix's exchanges and queues deleted, at the end."""
    async with topology_running(tmp_path / "var", fresh_pg_database, broker_prefix) as running:
        yield running


async def delete_queues(settings: Settings, *extra: str) -> None:
    """Delete the exchanges and every queue the services declare under the settings' prefix (with
    their retry and dead-letter queues), and the named ``extra`` queues."""
    broker = RabbitBroker(AMQP_URL, settings.broker_prefix)
    await broker.start()
    try:
        for queue, delays in declared_queues(settings):
            await broker.delete_all([queue], retry_delays=delays)
        if extra:
            assert broker._connection is not None
            channel = await broker._connection.channel()
            for name in extra:
                await channel.queue_delete(name)
            await channel.close()
    finally:
        await broker.close()
