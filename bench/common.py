"""What benchmarks share: a throw-away PostgreSQL database and RabbitMQ prefix, the production
topology started on them (and every queue of the prefix deleted after), CPU time from /proc,
progress output."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import secrets
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from pydantic import SecretStr

from services.demo.pdf import make_pdf
from services.runtime import Topology, declared_queues, ensure_local_secrets, topology_env
from services.settings import Settings
from shared.messaging import RabbitBroker

PG_ADMIN_DSN = os.environ.get("LIENTHONG_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("LIENTHONG_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVICES = ("gateway", "registry", "exchange", "signature", "archive")
# the processes whose CPU counts as LienThong's: the services and the national hub connector, a
# process of the production topology too (it polls the hub; it sees only the hub agencies' entries)
METERED = (*SERVICES, "hub")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """Create a PostgreSQL database for one benchmark, drop it after; yield its SQLAlchemy URL."""
    name = f"lt_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def scratch_prefix() -> str:
    return f"lt-bench-{secrets.token_hex(4)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SCRATCH_DIRS: list[Path] = []


@atexit.register
def _remove_scratch_dirs() -> None:
    for directory in _SCRATCH_DIRS:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir(prefix: str = "lt-bench-") -> Iterator[Path]:
    """A temporary directory for one case's files (var dir, blob store, logs), deleted when the
    benchmark's process exits rather than when the case ends: on a file system without a journal
    (this machine's ext4), the kernel skips every inode deleted in the last seconds to minutes when
    it looks for a free one, so a case started right after another's thousands of files were
    deleted paid up to 0.8 ms more of the exchange's CPU per document (``perf``: ``find_inode_bit``
    and ``recently_deleted`` under ``openat`` and ``mkdir``), a cost of the benchmark's own
    clean-up that production does not have. ``LIENTHONG_BENCH_DIR`` puts them elsewhere (a file
    system like a server's: docs/performance.md shows one mounted from an image)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("LIENTHONG_BENCH_DIR") or None))
    _SCRATCH_DIRS.append(directory)
    yield directory


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass
class Running:
    """The production topology of one benchmark; ``queues`` (names under the prefix, without it)
    are deleted with the topology's own when it stops."""

    topology: Topology
    database_url: str
    prefix: str
    queues: list[str] = field(default_factory=list)


# the exchange's benchmarks send unsigned placeholder PDFs: measured without the signature policy
# (with its default, flag, each document would also be verified just after its send by the
# signature service's pool); verification has its own benchmark, ``bench signature``
SIGNATURE_POLICY_OFF = {"LIENTHONG_EXCHANGE__SIGNATURE_POLICY_DEFAULT": "off"}


@asynccontextmanager
async def production_topology(env: dict[str, str] | None = None) -> AsyncIterator[Running]:
    """The five processes on a scratch database and RabbitMQ prefix, the admin's secret ``bench``;
    ``env`` adds settings. Stopped after, the database dropped, every queue and exchange of the
    prefix deleted (the work queues with their retry and dead-letter queues)."""
    prefix = scratch_prefix()
    async with scratch_database() as url:
        with scratch_dir() as tmp:
            base = Settings(var_dir=tmp, database_url=url, broker_url=AMQP_URL, broker_prefix=prefix, log_json=False)
            settings = ensure_local_secrets(
                base.model_copy(
                    update={"registry": base.registry.model_copy(update={"admin_client_secret": SecretStr("bench")})}
                )
            )
            variables = topology_env(settings)
            for name in SERVICES:
                variables[f"LIENTHONG_{name.upper()}__URL"] = f"http://127.0.0.1:{free_port()}"
            variables["LIENTHONG_LOG_LEVEL"] = "WARNING"
            variables.update(SIGNATURE_POLICY_OFF)
            variables.update(env or {})
            running = Running(Topology(variables, tmp / "logs"), url, prefix)
            print("starting the topology …", flush=True)
            try:
                await asyncio.to_thread(running.topology.start)
                yield running
            except BaseException:
                for name in SERVICES:  # what the processes said, before their logs go with the directory
                    log = tmp / "logs" / f"{name}.log"
                    if log.exists() and (tail := log.read_text(errors="replace")[-3000:].strip()):
                        print(f"--- {name}.log (end) ---\n{tail}", flush=True)
                raise
            finally:
                await asyncio.to_thread(running.topology.stop)
                await _delete_queues(prefix, settings, running.queues)


async def analyze(running: Running) -> None:
    """Give the services' tables their statistics, as autovacuum does within a minute of a running
    system's tables filling (its nap is a minute; a benchmark's scratch database is younger). Without
    them the plans the services' pooled connections keep for their prepared statements are the plans
    of empty tables: the exchange's send look-up then read every document of the sender through the
    index on its code alone, 1.5 ms of PostgreSQL's CPU a document at 4,000 documents and growing
    (docs/performance.md, "The tenth session's changes"). ANALYZE invalidates those plans."""
    connection = await asyncpg.connect(asyncpg_dsn(running.database_url))
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def _delete_queues(prefix: str, settings: Settings, extra: list[str]) -> None:
    broker = RabbitBroker(AMQP_URL, prefix)
    await broker.start()
    try:
        for queue, delays in declared_queues(settings):
            await broker.delete_all([queue], retry_delays=delays)
        await broker.delete_all(extra)
    finally:
        await broker.close()


async def token(http: httpx.AsyncClient, client_id: str, secret: str) -> str:
    response = await http.post(
        "/v1/auth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def metadata(recipients: list[str] | None = None, groups: list[str] | None = None) -> str:
    """A document's metadata with a number of its own (a number sent twice in a year is refused)."""
    return json.dumps(
        {
            "code_number": str(uuid.uuid4().int % 10**10),
            "code_notation": "CV-BENCH",
            "type_name": "Công văn",
            "subject": "Văn bản đo hiệu năng",
            "promulgation_date": "2026-11-26",
            "recipients": recipients or [],
            "groups": groups or [],
        },
        ensure_ascii=False,
    )


# --- the documents' file ---------------------------------------------------------------------------

_UNIQUE = b"LIENTHONG-UNIQUE"  # 16 bytes, at the start of the padding stream


def bench_pdf(size: int) -> bytes:
    """A well-formed one-page PDF of ``size`` bytes, the bulk in a stream object of random bytes (as
    an embedded font or image fills a real one), not appended after its end: a text extractor reads
    it as it reads an agency's file."""
    lines = ["Cong van do hieu nang"]
    bare = len(make_pdf(lines, padding=_UNIQUE))
    return make_pdf(lines, padding=_UNIQUE + os.urandom(max(0, size - bare)))


def unique_pdf(pdf: bytes) -> bytes:
    """A copy of a :func:`bench_pdf` file with 16 bytes of its own (the blob store keeps one copy of
    identical bytes)."""
    at = pdf.index(_UNIQUE)
    return pdf[:at] + os.urandom(16) + pdf[at + 16 :]


# --- CPU time from /proc ----------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    # the fields after "(comm)": state is [0], utime [11], stime [12], cutime [13], cstime [14]
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_ms(pid: int) -> float:
    """User and system CPU time of one process so far, in ms."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) * 1000 / CLOCK_TICKS


def server_cpu_ms(command: str) -> float:
    """CPU time so far of every process named ``command`` (a server with its workers), in ms; the
    children they reaped included, so that a PostgreSQL backend that exited is still counted."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != command:
                continue
            fields = _stat(int(entry.name))
        except OSError:  # gone meanwhile
            continue
        total += sum(int(f) for f in fields[11:15])
    return total * 1000 / CLOCK_TICKS


def tree_cpu_ms(root: int) -> float:
    """CPU ms so far of a process and of every live descendant (a service's worker pools: the
    archive's text extractors and the signature service's verifiers hang below a forkserver), the
    children they reaped included (a worker that exited is still counted)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, ValueError):
                continue
    total = 0
    for pid in parents:
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root:
            try:
                total += sum(int(f) for f in _stat(pid)[11:15])
            except OSError:  # gone meanwhile
                continue
    return total * 1000 / CLOCK_TICKS


def cpu_snapshot(
    processes: dict[str, int], servers: Iterable[tuple[str, str]] = (), *, own: dict[str, int] | None = None
) -> dict[str, float]:
    """CPU ms so far of each named process with its descendants, of each (label, command) server,
    and of each ``own`` process alone (the benchmark's, whose children are the services)."""
    found = {name: tree_cpu_ms(pid) for name, pid in processes.items()}
    found.update({name: cpu_ms(pid) for name, pid in (own or {}).items()})
    found.update({label: server_cpu_ms(command) for label, command in servers})
    return found
