"""How the services are put together: the embedded single process, and the production topology."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import SecretStr

from gateway.app import create_app as create_gateway
from gateway.runtime import GatewayRuntime
from services.apps import AppFactory, app_factory
from services.settings import Settings
from shared.auth import generate_keypair
from shared.config import DEFAULT_PORTS, SERVICE_NAMES
from shared.errors import NotFoundError
from shared.messaging import Broker, InProcessBroker
from shared.runtime import app_runtime, runtime_of


def service_factories() -> dict[str, AppFactory]:
    """Return each service's ``create_app``, imported on demand."""
    return {name: app_factory(name) for name in SERVICE_NAMES}


def ensure_local_secrets(settings: Settings) -> Settings:
    """Create the JWT key pair and the bootstrap admin secret under var/ when none is configured."""
    if settings.auth.private_key_file is None or settings.auth.public_key_file is None:
        generate_keypair(settings.var_dir / "keys")
    if settings.registry.admin_client_secret is None:
        path = settings.var_dir / "admin-credentials.json"
        if path.exists():
            secret = json.loads(path.read_text())["client_secret"]
        else:
            secret = secrets.token_urlsafe(32)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"client_id": settings.registry.admin_client_id, "client_secret": secret}))
            path.chmod(0o600)
        settings = settings.model_copy(
            update={"registry": settings.registry.model_copy(update={"admin_client_secret": SecretStr(secret)})}
        )
    return settings


def admin_credentials(settings: Settings) -> tuple[str, str]:
    """Return the bootstrap admin's client id and secret."""
    secret = settings.registry.admin_client_secret
    if secret is None:
        raise RuntimeError("no admin secret: set LIENTHONG_REGISTRY__ADMIN_CLIENT_SECRET")
    return settings.registry.admin_client_id, secret.get_secret_value()


def build_embedded_app(settings: Settings, *, broker: Broker | None = None) -> FastAPI:
    """One ASGI app: the gateway in front, every service mounted in-process behind ASGITransport.

    The services share one in-process bus fed by their outboxes; each keeps its own SQLite file.
    """
    broker = broker or InProcessBroker(settings.var_dir / "bus.sqlite3", synchronous=settings.sqlite_synchronous)
    transports: dict[str, httpx.AsyncBaseTransport] = {}
    apps = {
        name: factory(settings, broker=broker, transports=transports) for name, factory in service_factories().items()
    }
    # a service's unexpected error is its own 500 response, not an exception raised in the gateway
    transports.update({name: httpx.ASGITransport(app=app, raise_app_exceptions=False) for name, app in apps.items()})
    gateway = create_gateway(settings, transports=transports, broker=broker)
    gateway_lifespan = gateway.router.lifespan_context
    hub = _embedded_hub(settings, broker, transports, gateway) if settings.hub.enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await broker.start()
            stack.push_async_callback(broker.close)
            for name in SERVICE_NAMES:  # registry first: the others ask it
                await stack.enter_async_context(apps[name].router.lifespan_context(apps[name]))
            if hub is not None:  # a task beside the services: it asks the registry and the exchange
                await stack.enter_async_context(hub.router.lifespan_context(hub))
            await stack.enter_async_context(gateway_lifespan(app))
            yield

    gateway.router.lifespan_context = lifespan
    app_runtime(gateway, GatewayRuntime).embedded = apps if hub is None else {**apps, "hub": hub}
    gateway.include_router(_SERVICE_OPERATIONS)
    return gateway


def _embedded_hub(
    settings: Settings, broker: Broker, transports: dict[str, httpx.AsyncBaseTransport], gateway: FastAPI
) -> FastAPI:
    """The hub connector as a task of the embedded process. With no hub configured
    (``LIENTHONG_HUB__BASE_URL`` unset) it talks to a hub double in the same process, mounted on
    the gateway at ``/hub-double`` so that a developer can play the other side (docs/interop.md)."""
    from services.hub.app import create_app as create_hub

    if settings.hub.base_url:
        return create_hub(settings, broker=broker, transports=transports)
    from services.hub_double import HubDouble
    from services.hub_double import create_app as create_double

    secret = settings.hub.client_secret.get_secret_value() if settings.hub.client_secret else secrets.token_urlsafe(24)
    double = HubDouble()
    double.add_client(settings.hub.client_id, secret, settings.hub.province_group)
    # the other side, for a developer to play: the Government Office's account and its directory entry
    other = {"client_id": "vpcp-demo", "client_secret": secrets.token_urlsafe(24), "group": "G22"}
    double.add_client(other["client_id"], other["client_secret"], other["group"])
    double.directory = [{"code": "000.00.00.G22", "name": "Văn phòng Chính phủ", "parent": None, "deleted": False}]
    path = settings.var_dir / "hub-double-credentials.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(other))
    path.chmod(0o600)
    double_app = create_double(double)
    gateway.mount("/hub-double", double_app)
    settings = settings.model_copy(update={"hub": settings.hub.model_copy(update={"client_secret": SecretStr(secret)})})
    return create_hub(
        settings,
        broker=broker,
        transports=transports,
        hub_transport=httpx.ASGITransport(app=double_app),
    )


_SERVICE_OPERATIONS = APIRouter(include_in_schema=False)
"""In embedded mode the services have no port of their own: their /health, /ready and /metrics are
under /services/<name>/… so that monitoring sees each of them. One router for every embedded app
(its routes built once per process); each gateway's runtime has its own services' transports."""


@_SERVICE_OPERATIONS.get("/services/{name}/{endpoint}")
async def service_operations(request: Request, name: str, endpoint: str) -> Response:
    transports = runtime_of(request, GatewayRuntime).transports
    if name not in transports or endpoint not in ("health", "ready", "metrics"):
        raise NotFoundError(f"No service endpoint /services/{name}/{endpoint}; services: {sorted(transports)}")
    async with httpx.AsyncClient(transport=transports[name], base_url=f"http://{name}") as client:
        upstream = await client.get(f"/{endpoint}")
    return Response(upstream.content, upstream.status_code, media_type=upstream.headers.get("content-type"))


def topology_env(settings: Settings, base_env: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment every process of the production topology shares."""
    env = dict(base_env if base_env is not None else os.environ)
    var = settings.var_dir.resolve()
    env.setdefault("LIENTHONG_VAR_DIR", str(var))
    env["LIENTHONG_AUTH__PRIVATE_KEY_FILE"] = str(settings.private_key_file.resolve())
    env["LIENTHONG_AUTH__PUBLIC_KEY_FILE"] = str(settings.public_key_file.resolve())
    if settings.database_url:
        env["LIENTHONG_DATABASE_URL"] = settings.database_url
    env["LIENTHONG_BROKER_URL"] = settings.broker_url
    env["LIENTHONG_BROKER_PREFIX"] = settings.broker_prefix
    _, secret = admin_credentials(settings)
    env["LIENTHONG_REGISTRY__ADMIN_CLIENT_SECRET"] = secret
    env["LIENTHONG_EXCHANGE__BLOB_DIR"] = str(Path(settings.blob_dir).resolve())
    for name in ("gateway", *SERVICE_NAMES, "hub"):
        env.setdefault(f"LIENTHONG_{name.upper()}__URL", f"http://127.0.0.1:{DEFAULT_PORTS[name]}")
    env["LIENTHONG_HUB__ENABLED"] = "true" if settings.hub.enabled else "false"
    if settings.hub.enabled and not settings.hub.base_url:  # no hub configured: a double beside the connector
        env.setdefault("LIENTHONG_HUB_DOUBLE__URL", f"http://127.0.0.1:{DEFAULT_PORTS['hub_double']}")
        env["LIENTHONG_HUB__BASE_URL"] = env["LIENTHONG_HUB_DOUBLE__URL"]
        hub_secret = settings.hub.client_secret.get_secret_value() if settings.hub.client_secret else None
        env["LIENTHONG_HUB__CLIENT_SECRET"] = hub_secret or secrets.token_urlsafe(24)
        env["LIENTHONG_HUB_DOUBLE__CLIENT"] = (
            f"{settings.hub.client_id}:{env['LIENTHONG_HUB__CLIENT_SECRET']}:{settings.hub.province_group}"
        )
    return env


class Topology:
    """The production topology on one machine: each service its own process, the gateway in front."""

    SERVICES = ("registry", "exchange", "signature", "archive", "gateway")

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        hub: tuple[str, ...] = ()
        if env.get("LIENTHONG_HUB__ENABLED", "true").lower() not in ("false", "0", "no"):
            # the hub connector, and the hub double when topology_env put one in place of a real hub
            hub = ("hub_double", "hub") if "LIENTHONG_HUB_DOUBLE__CLIENT" in env else ("hub",)
        self.ORDER = (*self.SERVICES[:-1], *hub, self.SERVICES[-1])

    def url(self, name: str) -> str:
        return self.env[f"LIENTHONG_{name.upper()}__URL"]

    def start(self, timeout: float = 60.0, say: Callable[[str], None] = lambda _m: None) -> None:
        """Start every process at once (none needs another to start), then wait until each answers
        /health; stop them all on failure."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name in self.ORDER:
                self._spawn(name)
            for name in self.ORDER:
                self.wait_healthy(name, timeout)
                say(f"{name} is up on {self.url(name)} (pid {self.processes[name].pid})")
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str) -> None:
        port = urlsplit(self.url(name)).port
        command = ["serve", name, "--port", str(port)]
        if name == "hub_double":
            command = ["hub-double", "--port", str(port), "--client", self.env["LIENTHONG_HUB_DOUBLE__CLIENT"]]
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, name: str) -> None:
        """Kill one process at once (SIGKILL: no shutdown, as a crash)."""
        process = self.processes[name]
        process.kill()
        process.wait()

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start one process again (after :meth:`kill`) and wait until it answers /health."""
        self._spawn(name)
        self.wait_healthy(name, timeout)

    def wait_healthy(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with code {process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{self.url(name)}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer /health within {timeout:.0f}s; see {self.log_dir}/{name}.log")

    def stop(self, grace: float = 10.0) -> None:
        """Stop in reverse order: SIGTERM, then SIGKILL after ``grace`` seconds."""
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


async def ensure_postgres_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` when it does not exist."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return
    name = parsed.database
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
    )
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def declared_queues(settings: Settings) -> list[tuple[str, tuple[float, ...]]]:
    """Every durable queue the services declare under the settings' prefix (without it), with the
    delays of its retry queues: what a test or a benchmark deletes when it is done with its prefix."""
    from services.archive.consumers import consumers as archive_consumers
    from services.exchange.dependencies import ExchangeRuntime

    exchange = ExchangeRuntime(settings)
    queues: list[tuple[str, tuple[float, ...]]] = [(f"exchange.{c.name}", ()) for c in exchange.consumers]
    for worker in exchange.workers:
        queues.append((f"exchange.{worker.name}", (*worker.retry.delays, worker.retry.defer_seconds)))
    queues += [(f"archive.{c.name}", ()) for c in archive_consumers(settings.archive)]
    from services.hub.dependencies import HubRuntime

    if settings.hub.enabled:  # the hub connector's outbound work queue
        for worker in HubRuntime(settings).workers:
            queues.append((f"hub.{worker.name}", (*worker.retry.delays, worker.retry.defer_seconds)))
    queues.append(("registry.audit", ()))  # the audit chain's writer (services/registry/consumers.py)
    return queues
