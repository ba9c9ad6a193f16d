"""The `lienthong` command: run the system (embedded or as separate processes), migrate, demo."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
import typer
import uvicorn
from fastapi import FastAPI
from rich.console import Console

from services.settings import Settings
from shared.config import DEFAULT_PORTS, SERVICE_NAMES
from shared.httpserver import PROTOCOL
from shared.observability import configure_logging

if TYPE_CHECKING:
    from shared.db import Database
    from shared.keyring import KeyFiles
    from shared.messaging import Outbox

T = TypeVar("T")

app = typer.Typer(help="LienThong: inter-agency electronic document exchange.", no_args_is_help=True)
keys_app = typer.Typer(help="JWT signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
registry_app = typer.Typer(help="The agency directory, straight on the registry's database.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
outbox_app = typer.Typer(
    help="Events waiting in the services' outboxes: list them, re-drive stuck ones.", no_args_is_help=True
)
app.add_typer(outbox_app, name="outbox")
blobs_app = typer.Typer(
    help="The exchange's attachment store: find and delete blobs no document references.", no_args_is_help=True
)
app.add_typer(blobs_app, name="blobs")
statistics_app = typer.Typer(help="The statistics' rollups (docs/operations.md).", no_args_is_help=True)
app.add_typer(statistics_app, name="statistics")
archive_app = typer.Typer(
    help="The archive: rebuild its search index, import digitised records, report retention.", no_args_is_help=True
)
app.add_typer(archive_app, name="archive")
audit_app = typer.Typer(
    help="The audit trail: prove the hash chain intact, sign its head (docs/security.md).", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")
console = Console(soft_wrap=True)

TOPOLOGY_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/lienthong"
TOPOLOGY_BROKER = "amqp://guest:guest@127.0.0.1:5672/"


# how long an idle kept-alive connection stays open: longer than clients keep theirs (httpx 5 s,
# most HTTP libraries 5 - 60 s), so that a client never sends on a connection the server is closing
# (uvicorn's own default, 5 s, raced httpx's: a request now and then ended in a ReadError)
KEEP_ALIVE_SECONDS = 75


SERVE_ENV = "LIENTHONG_SERVE"  # the service a worker process builds (``serve --workers``)


# the collector's first generation runs after this many new objects (CPython: 700): a request
# allocates thousands, so the default ran several collections per document (docs/performance.md)
GC_THRESHOLD = (10_000, 10, 10)


def service_database(settings: Settings, service: str, url: str | None = None) -> Database:
    """A service's database as a command opens it: its URL (or ``url``), SQLite's sync level set."""
    from shared.db import Database

    return Database(url or settings.database_url_for(service), service, sqlite_synchronous=settings.sqlite_synchronous)


def settle_heap() -> None:
    """Move what start-up built (modules, classes, the app) out of the collector's reach
    (``gc.freeze``) and collect young objects less often: a server's cyclic garbage collection
    then looks at what its requests allocate, not at every object it imported."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options for the gateway (``LIENTHONG_GATEWAY__TLS_*``): HTTPS, and with a client
    CA a client certificate asked for (optional: clients with secrets send none) for mutual TLS."""
    import ssl

    section = settings.gateway
    if section.tls_cert_file is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(section.tls_cert_file)}
    if section.tls_key_file is not None:
        options["ssl_keyfile"] = str(section.tls_key_file)
    if section.tls_client_ca_file is not None:
        options["ssl_ca_certs"] = str(section.tls_client_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return options


def _serve(asgi_app: FastAPI | str, host: str, port: int, workers: int = 1, tls: dict[str, Any] | None = None) -> None:
    """Serve an app, or with ``workers`` above 1 an app factory's import path in as many processes
    sharing the port (uvicorn's supervisor restarts one that dies); ``tls``: uvicorn's ssl options."""
    options: dict[str, Any] = {
        **(tls or {}),
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        # request line and headers bounded while they are read (docs/security.md, "Hostile input")
        "http": PROTOCOL,
        "h11_max_incomplete_event_size": Settings().limits.header_max_bytes,
    }
    if isinstance(asgi_app, str):
        uvicorn.run(asgi_app, factory=True, workers=workers, **options)
    else:
        settle_heap()
        uvicorn.Server(uvicorn.Config(asgi_app, **options)).run()


def service_app() -> FastAPI:
    """The app of the service named by ``LIENTHONG_SERVE``: what each worker process of
    ``lienthong serve <service> --workers N`` runs."""
    import os

    service = os.environ[SERVE_ENV]
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    app = _service_app(service, settings)
    settle_heap()
    return app


def _service_app(service: str, settings: Settings) -> FastAPI:
    if service == "gateway":
        from gateway.app import create_app as create_gateway

        return create_gateway(settings)
    from services.apps import app_factory  # this service's code only

    return app_factory(service)(settings)


async def _seed(http: httpx.AsyncClient, base_url: str, settings: Settings, mode: str) -> None:
    """Seed the demo province through the API, then print how to get a token."""
    from services.demo import Credentials, DemoError, demo_pair, seed_demo_province, seed_demo_users
    from services.runtime import admin_credentials

    client_id, secret = admin_credentials(settings)
    credentials_file = settings.var_dir / "demo-credentials.json"
    users_file = settings.var_dir / "demo-console-users.json"
    try:
        creds = await seed_demo_province(
            http, Credentials(client_id, secret), credentials_file, say=lambda m: console.print(f"  [dim]{m}[/]")
        )
        await seed_demo_users(
            http, Credentials(client_id, secret), users_file, say=lambda m: console.print(f"  [dim]{m}[/]")
        )
    except (DemoError, httpx.HTTPError) as exc:
        console.print(f"[red]Seeding the demo province failed:[/] {exc}")
        return
    pair = demo_pair(creds)
    sender = creds[pair.sender]
    console.print(
        f"\n[bold green]LienThong is running[/] on {base_url} ({mode}).\n"
        f"  API docs:           {base_url}/docs\n"
        f"  web console:        {base_url}/console (demo users and passwords: {users_file})\n"
        f"  demo credentials:   {credentials_file} (admin: {settings.var_dir / 'admin-credentials.json'})\n"
        f"  get a token ({pair.sender_name} tỉnh {pair.place}, {pair.sender}):\n"
        f"    curl -s -X POST {base_url}/v1/auth/token -d grant_type=client_credentials \\\n"
        f"      -d client_id={sender.client_id} -d client_secret={sender.client_secret}\n"
        f"  try the whole exchange:  make demo\n"
        f"  then the 2025 merger into Đồng Nai:  lienthong demo --merger-2025\n"
    )


async def _seed_client(base_url: str, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await _seed(http, base_url, settings, "production topology")


LOCAL_NETWORKS = [IPv4Network("127.0.0.0/8"), IPv6Network("::1/128")]


def development_webhooks(settings: Settings) -> Settings:
    """Let a webhook receiver on this machine be registered in embedded development: http:// and the
    loopback addresses, unless LIENTHONG_WEBHOOKS__ALLOW_HTTP / __ALLOWED_NETWORKS say otherwise."""
    given = settings.webhooks.model_fields_set
    update: dict[str, object] = {}
    if "allow_http" not in given:
        update["allow_http"] = True
    if "allowed_networks" not in given:
        update["allowed_networks"] = list(LOCAL_NETWORKS)
    return settings.model_copy(update={"webhooks": settings.webhooks.model_copy(update=update)})


@app.command()
def dev(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORTS["gateway"],
    seed: Annotated[bool, typer.Option(help="create the demo province and its API clients")] = True,
) -> None:
    """Run the whole system in one process (embedded mode: SQLite and blobs under var/)."""
    from services.runtime import build_embedded_app, ensure_local_secrets

    settings = ensure_local_secrets(Settings())
    configure_logging(settings.log_level, settings.log_json)
    if settings.uses_rabbitmq:
        console.print("[yellow]note:[/] embedded mode uses the in-process bus; LIENTHONG_BROKER_URL is ignored")
    settings = development_webhooks(settings.model_copy(update={"broker_url": "memory://"}))
    tls = _tls_options(settings)  # LIENTHONG_GATEWAY__TLS_*: HTTPS, mutual TLS (docs/security.md)
    scheme = "https" if tls else "http"
    console.print(f"Starting LienThong (embedded) on {scheme}://{host}:{port}, data in {settings.var_dir.resolve()}")
    embedded = build_embedded_app(settings)
    if seed:  # seeded before the server accepts requests: /health answers once the demo is ready
        started = embedded.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with started(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as http:
                    await _seed(http, f"{scheme}://{host}:{port}", settings, "embedded mode")
                yield

        embedded.router.lifespan_context = lifespan
    _serve(embedded, host, port, tls=tls)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="gateway, registry, exchange, signature, archive or hub")],
    host: str = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="default: the port of the service's URL setting")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="processes answering on the port (default: LIENTHONG_<SERVICE>__WORKERS, 1)"),
    ] = None,
) -> None:
    """Run one service as its own process, or as several sharing its port (production topology)."""
    import os

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    if service not in ("gateway", *SERVICE_NAMES, "hub"):
        raise typer.BadParameter(f"unknown service {service!r}; choose gateway, {', '.join(SERVICE_NAMES)} or hub")
    if service == "hub" and not settings.hub.base_url:
        raise typer.BadParameter(
            "the hub connector needs LIENTHONG_HUB__BASE_URL (and _CLIENT_ID, _CLIENT_SECRET): the national hub,"
            " or a double started with `lienthong hub-double`"
        )
    section = settings.gateway if service == "gateway" else settings.section(service)
    count = workers or section.workers
    bind_port = port or urlsplit(section.url).port or DEFAULT_PORTS[service]
    tls = _tls_options(settings) if service == "gateway" else None
    if count > 1:
        os.environ[SERVE_ENV] = service  # the worker processes read it (they are spawned, not forked)
        _serve("services.cli:service_app", host, bind_port, count, tls)
    else:
        _serve(_service_app(service, settings), host, bind_port, tls=tls)


@app.command()
def up(
    seed: Annotated[bool, typer.Option(help="create the demo province and its API clients")] = True,
) -> None:
    """Run every service as its own process on PostgreSQL and RabbitMQ; Ctrl-C stops them all."""
    from services.runtime import Topology, ensure_local_secrets, ensure_postgres_database, topology_env

    base = Settings()
    settings = ensure_local_secrets(
        base.model_copy(
            update={
                "database_url": base.database_url or TOPOLOGY_DATABASE,
                "broker_url": base.broker_url if base.uses_rabbitmq else TOPOLOGY_BROKER,
            }
        )
    )
    assert settings.database_url is not None
    asyncio.run(ensure_postgres_database(settings.database_url))
    topology = Topology(topology_env(settings), settings.var_dir / "logs")
    console.print(
        f"Starting the production topology: {settings.database_url.split('@')[-1]}, "
        f"broker {settings.broker_url.split('@')[-1]}; logs in {topology.log_dir}"
    )

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)  # also when started in the background, where SIGINT is ignored
    signal.signal(signal.SIGTERM, interrupt)
    try:
        topology.start(say=lambda m: console.print(f"  {m}"))
        if seed:
            asyncio.run(_seed_client(topology.url("gateway"), settings))
        console.print("Press Ctrl-C to stop every service.")
        while all(p.poll() is None for p in topology.processes.values()):
            time.sleep(0.5)
        dead = [n for n, p in topology.processes.items() if p.poll() is not None]
        console.print(f"[red]{', '.join(dead)} stopped unexpectedly[/]; see {topology.log_dir}")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("Stopping…")
    finally:
        topology.stop()
        console.print("All services stopped.")


@app.command()
def migrate(
    service: Annotated[list[str] | None, typer.Option(help="only these services (repeatable)")] = None,
) -> None:
    """Apply every service's database migrations (PostgreSQL: one schema per service)."""
    from shared.migrations import current_revision, upgrade

    settings = Settings()
    known = (*SERVICE_NAMES, "hub")  # the hub connector keeps its own small database too
    names = service or list(known)
    unknown = set(names) - set(known)
    if unknown:
        raise typer.BadParameter(f"unknown services {sorted(unknown)}")

    async def run() -> None:
        for index, name in enumerate(names, start=1):
            url = settings.database_url_for(name)
            console.print(f"[{index}/{len(names)}] {name}: migrating {url.split('@')[-1]} …")
            await upgrade(name, url, sqlite_synchronous=settings.sqlite_synchronous)
            console.print(f"[{index}/{len(names)}] {name}: at revision {await current_revision(name, url)}")

    asyncio.run(run())


@app.command("hub-double")
def hub_double(
    port: int = DEFAULT_PORTS["hub_double"],
    host: str = "127.0.0.1",
    client: Annotated[
        list[str] | None,
        typer.Option(help="a hub account ID:SECRET:GROUP (repeatable; default: the connector's own settings)"),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="the national directory to serve: a JSON list of agencies"),
    ] = None,
) -> None:
    """Run a stand-in for the national document hub (packets in memory; docs/interop.md)."""
    from services.hub_double import HubDouble, create_app

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    double = HubDouble()
    accounts = client or []
    if not accounts:
        secret = settings.hub.client_secret
        if secret is None:
            raise typer.BadParameter("give --client ID:SECRET:GROUP, or set LIENTHONG_HUB__CLIENT_SECRET")
        accounts = [f"{settings.hub.client_id}:{secret.get_secret_value()}:{settings.hub.province_group}"]
    for account in accounts:
        client_id, _, rest = account.partition(":")
        secret_text, _, group = rest.rpartition(":")
        if not client_id or not secret_text or not group:
            raise typer.BadParameter(f"--client {account!r}: expected ID:SECRET:GROUP, e.g. vpcp:s3cret:G22")
        double.add_client(client_id, secret_text, group)
    if directory is not None:
        double.directory = json.loads(directory.read_text(encoding="utf-8"))
    console.print(f"Hub double on http://{host}:{port} for {', '.join(a.split(':')[0] for a in accounts)}")
    _serve(create_app(double), host, port)


hub_app = typer.Typer(help="The national document hub (docs/interop.md).", no_args_is_help=True)
app.add_typer(hub_app, name="hub")


@hub_app.command("sync-directory")
def hub_sync_directory() -> None:
    """Sync the national directory into the running registry (idempotent; deleted agencies retired)."""
    from services.hub.client import HubClient, HubError
    from services.hub.dependencies import CLIENT_ID
    from services.hub.directory import DirectorySync, DirectorySyncError
    from shared.auth import load_issuer

    settings = Settings()
    config = settings.hub
    if not config.base_url:
        raise typer.BadParameter("set LIENTHONG_HUB__BASE_URL (and _CLIENT_ID, _CLIENT_SECRET): the hub to ask")
    issuer = load_issuer(settings.private_key_file, settings.auth.issuer, settings.auth.audience, 300)

    def authorization(agency: str | None, scopes: list[str]) -> str:
        return f"Bearer {issuer.issue(CLIENT_ID, agency, scopes)}"

    async def run() -> None:
        secret = config.client_secret.get_secret_value() if config.client_secret else ""
        async with (
            httpx.AsyncClient(base_url=config.base_url or "", timeout=config.timeout_seconds) as hub_http,
            httpx.AsyncClient(base_url=settings.registry.url, timeout=settings.http.timeout_seconds) as registry,
        ):
            sync = DirectorySync(
                HubClient(hub_http, config.client_id, secret), registry, authorization, config.province_group
            )
            report = await sync.run()
        console.print(
            f"national directory: {len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.retired)} retired, {report.unchanged} unchanged, {len(report.skipped)} skipped"
        )
        for line in report.skipped:
            console.print(f"  skipped {line}")

    try:
        asyncio.run(run())
    except (HubError, DirectorySyncError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc


@app.command()
def demo(
    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['gateway']}",
    credentials: Annotated[Path | None, typer.Option(help="default: <var>/demo-credentials.json")] = None,
    merger_2025: Annotated[
        bool,
        typer.Option(
            "--merger-2025",
            help="then merge the demo's Bình Phước into Đồng Nai (as on 1 July 2025: district level retired, "
            "agencies retired with successors) and send to a retired district (needs the admin credentials)",
        ),
    ] = False,
) -> None:
    """Run the demo exchange against a running instance and print each step."""
    from services.demo import DemoError

    settings = Settings()
    path = credentials or settings.var_dir / "demo-credentials.json"
    try:
        seen = asyncio.run(_demo(url, path, settings if merger_2025 else None))
    except httpx.HTTPError as exc:
        console.print(f"[red]Cannot reach LienThong at {url}:[/] {exc}. Start it with `make run`.")
        raise typer.Exit(1) from exc
    except DemoError as exc:
        console.print(f"[red]Demo failed:[/] {exc}")
        raise typer.Exit(1) from exc
    if merger_2025:
        console.print(f"[bold green]Demo complete[/]: document {seen['id']} redirected from a retired district.")
    else:
        console.print(f"[bold green]Demo complete[/]: document {seen['id']} delivered and acknowledged.")


def _demo_admin(settings: Settings) -> tuple[str, str]:
    """The bootstrap admin's credentials: from the settings, else from <var>/admin-credentials.json."""
    from services.demo import DemoError

    secret = settings.registry.admin_client_secret
    if secret is not None:
        return settings.registry.admin_client_id, secret.get_secret_value()
    path = settings.var_dir / "admin-credentials.json"
    if not path.exists():
        raise DemoError(f"{path} not found: set LIENTHONG_REGISTRY__ADMIN_CLIENT_SECRET or LIENTHONG_VAR_DIR")
    body = json.loads(path.read_text())
    return body["client_id"], body["client_secret"]


async def _demo(url: str, credentials: Path, merger: Settings | None) -> dict[str, object]:
    """The demo exchange; with ``merger`` (the settings giving the admin) then the 2025 merger and a
    document to a retired district."""
    from services.demo import Credentials, apply_merger_2025, load_credentials, run_demo, run_merger_demo

    def say(message: str) -> None:
        console.print(message)

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        (await http.get("/health")).raise_for_status()
        creds = await asyncio.to_thread(load_credentials, credentials)
        seen = await run_demo(http, creds, say=say)  # Bình Phước's, or Đồng Nai's after the merger
        if merger is None:
            return seen
        admin = Credentials(*_demo_admin(merger))
        creds = await apply_merger_2025(http, admin, credentials, say=lambda m: console.print(f"  [dim]{m}[/]"))
        return await run_merger_demo(http, creds, say=say)


@app.command()
def asyncapi(
    output: Annotated[Path, typer.Option("--output", "-o", help="the file to write")] = Path("docs/asyncapi.json"),
    prefix: Annotated[str, typer.Option(help="the broker prefix the names use")] = "lienthong",
) -> None:
    """Write the AsyncAPI 3.0 document of the events, queues and bus channels (docs/messaging.md)."""
    from services.asyncapi import build_asyncapi, render

    document = build_asyncapi(prefix)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(document), encoding="utf-8")
    console.print(f"wrote {output}: {len(document['channels'])} channels, {len(document['operations'])} operations")


@keys_app.command("generate")
def keys_generate(directory: Annotated[Path, typer.Option("--dir")] = Path("var/keys")) -> None:
    """Create the Ed25519 key pair the gateway signs tokens with (kept if it exists)."""
    from shared.auth import generate_keypair

    private, public = generate_keypair(directory)
    console.print(json.dumps({"private_key_file": str(private), "public_key_file": str(public)}))


KeysDir = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="the directory of jwt-private.pem, jwt-public.pem, jwt-keyring.json and jwt-next.pem"
        " (default: LIENTHONG_AUTH__PRIVATE_KEY_FILE, PUBLIC_KEY_FILE and KEYRING_FILE)",
    ),
]


def _key_files(directory: Path | None) -> KeyFiles:
    from shared.keyring import NEXT_KEY_NAME, KeyFiles

    if directory is not None:
        return KeyFiles.in_directory(directory)
    settings = Settings()
    private = settings.private_key_file
    return KeyFiles(private, settings.public_key_file, settings.keyring_file, private.parent / NEXT_KEY_NAME)


def _keys_failed(exc: Exception) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(1)


@keys_app.command("list")
def keys_list(directory: KeysDir = None) -> None:
    """The keys that verify: the current one (it signs), a staged next one, the previous ones
    with the time their last token expires (then they are retired)."""
    from shared.keyring import describe

    for row in describe(_key_files(directory)):
        console.print(json.dumps(row))


@keys_app.command("stage")
def keys_stage(directory: KeysDir = None) -> None:
    """Make the next signing key now and publish its public key (it verifies, it does not sign yet):
    run it long enough before `keys rotate` for every verifier to have read it (Kubernetes: the
    Secret's propagation, about a minute). Kept if one is staged already."""
    from shared.keyring import stage

    try:
        kid = stage(_key_files(directory))
    except (RuntimeError, ValueError, OSError) as exc:
        raise _keys_failed(exc) from exc
    console.print(json.dumps({"staged_kid": kid}))


@keys_app.command("rotate")
def keys_rotate(
    directory: KeysDir = None,
    overlap: Annotated[
        float | None,
        typer.Option(
            "--overlap",
            min=0,
            help="seconds the previous key still verifies (default: the longest token lifetime"
            " + 60 s of clock skew: its last token has expired by then)",
        ),
    ] = None,
    retire_previous: Annotated[
        bool,
        typer.Option(
            "--retire-previous", help="the previous key stops verifying at once (it leaked): its tokens are refused"
        ),
    ] = False,
) -> None:
    """Make the staged key (or a new one) the key that signs; the previous key still verifies until
    its last token has expired, and expired previous keys are pruned. Every process picks the new
    key up without a restart (docs/security.md, "Keys and rotation")."""
    from shared.keyring import rotate
    from shared.service import INTERNAL_TOKEN_SECONDS

    if overlap is None:
        settings = Settings()
        overlap = max(settings.gateway.token_ttl_seconds, INTERNAL_TOKEN_SECONDS) + 60
    try:
        rotation = rotate(_key_files(directory), overlap, retire_previous=retire_previous)
    except (RuntimeError, ValueError, OSError) as exc:
        raise _keys_failed(exc) from exc
    until = rotation.previous_verifies_until
    console.print(
        json.dumps(
            {
                "kid": rotation.new_kid,
                "previous_kid": rotation.previous_kid,
                "previous_verifies_until": (
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until)) if until is not None else None
                ),
                "pruned": rotation.pruned,
            }
        )
    )


@keys_app.command("prune")
def keys_prune(directory: KeysDir = None) -> None:
    """Remove the previous keys whose tokens have all expired from the ring (they no longer verify
    anyway; `keys rotate` prunes too)."""
    from shared.keyring import prune

    console.print(json.dumps({"pruned": prune(_key_files(directory))}))


def _format_of(path: Path, given: str | None) -> Literal["csv", "json"]:
    fmt = given or path.suffix.lstrip(".").lower()
    if fmt not in ("csv", "json"):
        raise typer.BadParameter(f"cannot tell the format of {path}; pass --format csv or --format json")
    return "csv" if fmt == "csv" else "json"


@registry_app.command("import")
def registry_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    format: Annotated[str | None, typer.Option(help="csv or json (default: from the file name)")] = None,
    dry_run: Annotated[bool, typer.Option(help="validate and report, write nothing")] = False,
) -> None:
    """Import a whole agency tree (CSV or JSON): validated first, then created/updated; idempotent."""
    from rich.progress import Progress

    from services.registry.dependencies import transfer_service
    from services.registry.errors import ImportInvalidError
    from services.registry.transfer.service import parse_rows
    from shared.migrations import upgrade

    settings = Settings()
    fmt = _format_of(file, format)

    async def run() -> None:
        url = settings.database_url_for("registry")
        await upgrade("registry", url, sqlite_synchronous=settings.sqlite_synchronous)
        database = service_database(settings, "registry", url)
        try:
            rows = parse_rows(file.read_bytes(), fmt)
            with Progress(console=console) as progress:
                task = progress.add_task(f"importing {len(rows)} agencies", total=len(rows))
                async with database.session() as session:
                    transfer = transfer_service(session, "cli")
                    transfer.batch_size = settings.registry.import_batch_size
                    report = await transfer.import_rows(
                        rows, dry_run=dry_run, progress=lambda done, _total: progress.update(task, completed=done)
                    )
        finally:
            await database.dispose()
        verb = "would be" if dry_run else "were"
        console.print(
            f"{report.total} agencies: {len(report.created)} {verb} created, {len(report.updated)} {verb} updated, "
            f"{report.unchanged} unchanged"
        )
        for item in report.updated:
            console.print(f"  updated {item.code}: {', '.join(item.changed)}")

    try:
        asyncio.run(run())
    except ImportInvalidError as exc:
        console.print(f"[red]{exc.detail}[/]")
        for problem in exc.extra.get("errors", []):
            console.print(
                f"  row {problem['row']} {problem['code'] or ''} {problem['field'] or ''}: {problem['message']}"
            )
        raise typer.Exit(1) from exc


@registry_app.command("export")
def registry_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="the file to write")],
    format: Annotated[str | None, typer.Option(help="csv or json (default: from the file name)")] = None,
) -> None:
    """Export every agency in the import format."""
    from services.registry.dependencies import transfer_service
    from services.registry.transfer.service import render_export

    settings = Settings()
    fmt = _format_of(output, format)

    async def run() -> int:
        database = service_database(settings, "registry")
        try:
            async with database.session() as session:
                rows = await transfer_service(session, "cli").export_rows()
        finally:
            await database.dispose()
        output.write_text(render_export(rows, fmt), encoding="utf-8")
        return len(rows)

    console.print(f"wrote {asyncio.run(run())} agencies to {output}")


@registry_app.command("create-user")
def registry_create_user(
    username: Annotated[str, typer.Option(help="the sign-in name (lower case)")],
    agency: Annotated[str, typer.Option(help="the code of the agency the user acts for")],
    name: Annotated[str, typer.Option(help="the user's full name")],
    role: Annotated[str, typer.Option(help="agency, registry_admin, auditor or statistics")] = "registry_admin",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="LIENTHONG_NEW_USER_PASSWORD",
            help="at least 12 characters (asked for when not given)",
        ),
    ] = "",
) -> None:
    """Create a web console user straight in the registry's database: the first registry admin
    (the console's admins create the others)."""
    from pydantic import ValidationError

    from services.registry.dependencies import user_service
    from services.registry.user.schemas import UserCreate
    from shared.auth import configure_secret_hashing
    from shared.errors import LienThongError
    from shared.migrations import upgrade

    settings = Settings()
    configure_secret_hashing(settings.auth.secret_hash_time_cost, settings.auth.secret_hash_memory_kib)
    try:
        body = UserCreate(username=username, display_name=name, agency_code=agency, role=role, password=password)
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]{'.'.join(map(str, error['loc']))}: {error['msg']}[/]")
        raise typer.Exit(1) from exc

    async def run() -> None:
        url = settings.database_url_for("registry")
        await upgrade("registry", url, sqlite_synchronous=settings.sqlite_synchronous)
        database = service_database(settings, "registry", url)
        try:
            async with database.session() as session:
                await user_service(session, "cli").create(body)
        finally:
            await database.dispose()

    try:
        asyncio.run(run())
    except LienThongError as exc:
        console.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(1) from exc
    console.print(f"created {body.role.value} user {body.username} of {body.agency_code}; sign in at /console")


def _outboxes(service: list[str] | None) -> list[str]:
    names = service or list(SERVICE_NAMES)
    unknown = set(names) - set(SERVICE_NAMES)
    if unknown:
        raise typer.BadParameter(f"unknown services {sorted(unknown)}; choose among {', '.join(SERVICE_NAMES)}")
    return names


async def _with_outbox(name: str, settings: Settings, work: Callable[[Outbox], Awaitable[T]]) -> T:
    import importlib

    from shared.messaging import Outbox

    tables = importlib.import_module(f"services.{name}.models").messaging
    database = service_database(settings, name)
    try:
        return await work(Outbox(database, tables))
    finally:
        await database.dispose()


@outbox_app.command("list")
def outbox_list(
    service: Annotated[list[str] | None, typer.Option(help="only these services (repeatable)")] = None,
    stuck: Annotated[bool, typer.Option("--stuck", help="only events tried outbox.stuck_after_attempts times")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
) -> None:
    """List the events not yet published, oldest first, with their tries and last error."""
    from rich.table import Table

    settings = Settings()
    threshold = settings.outbox.stuck_after_attempts if stuck else 0

    async def run() -> None:
        for name in _outboxes(service):
            stats = await _with_outbox(name, settings, lambda o: o.stats(settings.outbox.stuck_after_attempts))
            rows = await _with_outbox(name, settings, lambda o: o.pending(min_attempts=threshold, limit=limit))
            console.print(
                f"[bold]{name}[/]: {stats.pending} pending, {stats.stuck} stuck, "
                f"oldest waiting {stats.oldest_age_seconds:.0f} s"
            )
            if not rows:
                continue
            table = Table("id", "event", "ordering key", "created", "tries", "next try", "last error")
            for row in rows:
                table.add_row(
                    row.id,
                    row.routing_key,
                    row.ordering_key or "",
                    row.created_at.isoformat(timespec="seconds"),
                    str(row.attempts),
                    row.next_attempt_at.isoformat(timespec="seconds") if row.next_attempt_at else "now",
                    (row.last_error or "")[:200],
                )
            console.print(table)

    asyncio.run(run())


@outbox_app.command("redrive")
def outbox_redrive(
    event_id: Annotated[list[str] | None, typer.Argument(help="the ids to re-drive (from `outbox list`)")] = None,
    service: Annotated[list[str] | None, typer.Option(help="only these services (repeatable)")] = None,
    all_stuck: Annotated[bool, typer.Option("--all-stuck", help="every stuck event of the services")] = False,
) -> None:
    """Make stuck events due now with a fresh try count; the running relay publishes them at once."""
    import uuid

    if not event_id and not all_stuck:
        raise typer.BadParameter("name event ids, or pass --all-stuck")
    for value in event_id or []:
        try:
            uuid.UUID(value)
        except ValueError as exc:
            raise typer.BadParameter(f"{value!r} is not an event id (a UUID from `lienthong outbox list`)") from exc
    settings = Settings()
    threshold = settings.outbox.stuck_after_attempts if all_stuck and not event_id else 0

    async def run() -> int:
        total = 0
        for name in _outboxes(service):
            count = await _with_outbox(name, settings, lambda o: o.redrive(event_id, min_attempts=threshold))
            if count:
                console.print(f"{name}: {count} event(s) due now")
            total += count
        return total

    total = asyncio.run(run())
    if event_id and total < len(event_id):
        console.print(f"[yellow]{len(event_id) - total} id(s) are not pending in these outboxes[/]")
    console.print(f"re-drove {total} event(s); the relays publish them within {settings.outbox.poll_seconds:g} s")


@blobs_app.command("sweep")
def blobs_sweep(
    apply: Annotated[bool, typer.Option("--apply", help="delete them (default: only say what would go)")] = False,
    grace_hours: Annotated[
        float | None, typer.Option(min=1.0, help="keep blobs younger than this (default: exchange.blob_grace_hours)")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="list each blob")] = False,
) -> None:
    """Find the attachment blobs no document references, older than the grace period; --apply deletes them."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from services.exchange.blobstore import BlobStore, SweepReport, sweep_unreferenced
    from services.exchange.dependencies import attachment_references

    settings = Settings()
    root = settings.blob_dir
    if not root.is_dir():
        console.print(f"no blob store at {root} (LIENTHONG_EXCHANGE__BLOB_DIR): nothing to sweep")
        return
    hours = grace_hours if grace_hours is not None else settings.exchange.blob_grace_hours

    async def run() -> SweepReport:
        database = service_database(settings, "exchange")
        try:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as progress:
                task = progress.add_task(f"scanning {root}", total=None)

                def show(report: SweepReport) -> None:
                    progress.update(
                        task, description=f"{report.scanned} scanned, {len(report.unreferenced)} unreferenced"
                    )

                return await sweep_unreferenced(
                    BlobStore(root),
                    attachment_references(database),
                    grace_seconds=hours * 3600,
                    apply=apply,
                    progress=show,
                )
        finally:
            await database.dispose()

    report = asyncio.run(run())
    if verbose:
        for path, size in report.unreferenced:
            console.print(f"  {'deleted' if apply else 'would delete'} {path} ({size} bytes)")
    console.print(
        f"{report.scanned} blob(s) in {root}: {report.referenced} referenced, "
        f"{report.young} younger than {hours:g} h, {len(report.unreferenced)} unreferenced and older"
    )
    if apply:
        console.print(f"deleted {report.deleted} blob(s), freed {report.freed_bytes} bytes")
    else:
        console.print(
            f"would delete {len(report.unreferenced)} blob(s), {report.unreferenced_bytes} bytes; "
            "nothing deleted (dry run: pass --apply to delete them)"
        )


@statistics_app.command("refresh")
def statistics_refresh(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="forget the rollups and count the whole history again")
    ] = False,
) -> None:
    """Bring the statistics' rollups up to date now (the exchange also does it every minute)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from services.exchange.statistics.service import RefreshReport, StatisticsRefresher

    settings = Settings()

    async def run() -> RefreshReport:
        database = service_database(settings, "exchange")
        refresher = StatisticsRefresher(
            database, timezone=settings.exchange.timezone, settle_seconds=settings.exchange.statistics_settle_seconds
        )
        try:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as progress:
                progress.add_task("counting the history" + (" again, all of it" if rebuild else ""), total=None)
                return await refresher.refresh(rebuild=rebuild, wait=True)
        finally:
            await database.dispose()

    report = asyncio.run(run())
    console.print(
        f"counted {report.changes} change(s) into {report.rows} rollup row(s); "
        f"the statistics now count the history up to {report.high.isoformat()}"
    )


@archive_app.command("reindex")
def archive_reindex() -> None:
    """Rebuild the archive's search index from its records, with a progress bar; each slot (a
    replica's index) not held by a running archive is rebuilt whole and swapped in when complete."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from services.archive.indexer import rebuild
    from services.archive.search.index import ArchiveIndex, try_slot
    from shared.migrations import upgrade

    settings = Settings()
    index_dir = settings.archive.index_dir or settings.var_dir / "archive-index"
    index_dir.mkdir(parents=True, exist_ok=True)
    numbers = sorted(int(p.name.split("-")[1]) for p in index_dir.glob("slot-*") if p.name.split("-")[1].isdigit())

    async def run() -> None:
        url = settings.database_url_for("archive")
        await upgrade("archive", url, sqlite_synchronous=settings.sqlite_synchronous)
        database = service_database(settings, "archive", url)
        try:
            for number in numbers or [0]:
                held = try_slot(index_dir, number)
                if held is None:
                    console.print(
                        f"[yellow]slot-{number} is held by a running archive replica: restart it after deleting "
                        f"{index_dir / f'slot-{number}' / 'state.json'} and it rebuilds before serving[/]"
                    )
                    continue
                path, lock = held
                try:
                    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
                    with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
                        task = progress.add_task(f"indexing slot-{number}", total=None)

                        def show(done: int, total: int, task: TaskID = task) -> None:
                            progress.update(task, completed=done, total=total)

                        index = ArchiveIndex(path, heap_mb=settings.archive.index_heap_mb)
                        count = await rebuild(index, database, progress=show)
                        index.close()
                    console.print(f"slot-{number}: {count} records indexed in {path}")
                finally:
                    lock.close()
        finally:
            await database.dispose()

    asyncio.run(run())


@archive_app.command("import")
def archive_import(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="scans and their manifest.csv")],
    agency: Annotated[
        str | None, typer.Option(help="the agency digitising them (reads them too; default: each issuer)")
    ] = None,
) -> None:
    """Import digitised paper records from a folder with a CSV manifest (docs/archive.md); resumable:
    a second run skips what the first did; failures, with their reasons, in import-report.csv."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from services.archive.extractor import TextExtractor
    from services.archive.record.importer import REPORT, import_folder
    from shared.migrations import upgrade

    settings = Settings()
    files_dir = settings.archive.files_dir or settings.var_dir / "archive-files"

    async def run() -> None:
        url = settings.database_url_for("archive")
        await upgrade("archive", url, sqlite_synchronous=settings.sqlite_synchronous)
        database = service_database(settings, "archive", url)
        extractor = TextExtractor(
            timeout_seconds=settings.archive.extract_timeout_seconds,
            memory_mb=settings.archive.extract_memory_mb,
            languages=settings.archive.ocr_languages,
            max_chars=settings.archive.max_text_chars,
        )
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as bar:
                task = bar.add_task(f"importing {directory}", total=None)
                report = await import_folder(
                    database,
                    directory,
                    files_dir,
                    ingested_by=agency,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                    extractor=extractor,
                )
        finally:
            await extractor.shutdown()
            await database.dispose()
        console.print(
            f"{report.total} rows: {report.created} imported, {report.existing} already there, "
            f"{len(report.failed)} failed (see {directory / REPORT}); the archive extracts their text"
        )
        for row, name, reason in report.failed[:20]:
            console.print(f"  row {row} {name}: {reason}")
        if report.failed:
            raise typer.Exit(1)

    try:
        asyncio.run(run())
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc


@archive_app.command("retention")
def archive_retention(
    as_of: Annotated[str | None, typer.Option(help="the day to report on, YYYY-MM-DD (default: today)")] = None,
) -> None:
    """List the archive records whose retention period has ended (permanent records never do)."""
    import datetime as dt

    from services.archive.record.repository import ArchiveRecordRepository
    from services.archive.record.service import Reader, RecordService

    settings = Settings()
    day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()

    async def run() -> int:
        database = service_database(settings, "archive")
        count, cursor = 0, None
        try:
            while True:
                async with database.session() as session:
                    page = await RecordService(ArchiveRecordRepository(session)).retention(
                        day, Reader(None, auditor=True), cursor=cursor, limit=500
                    )
                for item in page.items:
                    console.print(
                        f"{item.document_id}  {item.code}  {item.promulgation_date} + {item.retention_years} y "
                        f"= {item.ends_on}  {item.sender_code}  {item.subject}"
                    )
                count += len(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    return count
        finally:
            await database.dispose()

    console.print(f"{asyncio.run(run())} record(s) reached the end of their retention on {day}")


def _trusted_keys(settings: Settings, extra: list[Path] | None) -> dict[str, Any]:
    """The gateway public keys an anchor may be signed with: every key file next to the configured
    public key (rotated keys kept there) and the ``--key`` files, by fingerprint."""
    from shared.audit import load_public_keys

    directory = settings.public_key_file.parent
    paths = sorted(directory.glob("*.pem")) if directory.is_dir() else []
    return load_public_keys([settings.public_key_file, *paths, *(extra or [])])


@audit_app.command("verify")
def audit_verify(
    key: Annotated[
        list[Path] | None,
        typer.Option("--key", help="also trust this gateway public key (PEM; repeatable), e.g. one rotated away"),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="entries read per query")] = 2000,
) -> None:
    """Prove the audit chain intact from its first entry to its head, or name the first broken entry
    (changed, missing, reordered, a bad or untrusted anchor); exit code 1 when broken."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.registry.audit.repository import AuditRepository
    from services.registry.audit.service import AuditService, VerifyReport

    settings = Settings()
    trusted = _trusted_keys(settings, key)

    async def run(progress: Progress) -> VerifyReport:
        database = service_database(settings, "registry")
        try:
            async with database.session() as session:
                audit = AuditService(AuditRepository(session))
                total = (await audit.head()).seq
                task = progress.add_task("verifying", total=total)
                return await audit.verify(trusted, batch=batch, progress=lambda n: progress.advance(task, n))
        finally:
            await database.dispose()

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        report = asyncio.run(run(progress))
    if report.broken is not None:
        console.print(f"[red]audit chain BROKEN at entry {report.broken.seq}[/red]: {report.broken.reason}")
        console.print(f"{report.entries} entries before it verified, {report.anchors} anchors")
        raise typer.Exit(1)
    anchored = f"signed up to entry {report.last_anchored_seq}" if report.last_anchored_seq else "no anchor yet"
    unanchored = report.head_seq - (report.last_anchored_seq or 0)
    console.print(
        f"audit chain intact: {report.entries} entries, {report.anchors} anchors verified ({anchored}; "
        f"{unanchored} entries after the last anchor)"
    )


@audit_app.command("anchor")
def audit_anchor() -> None:
    """Sign the audit chain's head now with the gateway's key (the registry does it periodically)."""
    from services.registry.audit.repository import AuditRepository
    from services.registry.audit.service import AuditService
    from shared.audit import AnchorKey

    settings = Settings()
    anchor_key = AnchorKey.load(settings.private_key_file)
    if anchor_key is None:
        console.print(f"[red]no signing key at {settings.private_key_file}[/red]")
        raise typer.Exit(1)

    async def run() -> Any:
        database = service_database(settings, "registry")
        try:
            async with database.session() as session:
                return await AuditService(AuditRepository(session), key=anchor_key).anchor()
        finally:
            await database.dispose()

    anchor = asyncio.run(run())
    if anchor is None:
        console.print("nothing to sign: the chain is empty or its head is signed already")
    else:
        console.print(f"signed entry {anchor.seq} ({anchor.hash}) with key {anchor.key_fingerprint}")


if __name__ == "__main__":
    app()
