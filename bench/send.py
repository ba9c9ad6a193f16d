"""The send path: ``POST /v1/documents`` with one 100 KB PDF to one recipient, by 16 and then 64
concurrent senders (the fast-send-path issue's measuring part).

1. production topology (five processes, PostgreSQL, RabbitMQ): documents accepted per second
   through the gateway (first send to last ``202``), the POST's latency (p50/p95/p99); end to end,
   the rate and the latency until each document is in the recipient's feed (a reader long-polling
   ``GET /v1/feed?cursor=…&wait=20`` with the recipient's token, as ``bench channels`` pull);
2. embedded mode (``python -m services.cli dev``: the whole system in one process, SQLite under a
   temporary var dir): documents accepted per second, the POST's latency;
3. ceilings, same run: (a) aio-pika publishes (confirms, persistent) to a quorum queue, each
   consumed with one asyncpg INSERT then an ack (``bench channels``' ceiling, 4 KB messages: the
   attachment goes to the blob store, not through the bus or the database); (b) a bare FastAPI
   route that reads the body and answers 202 JSON (``bench/bare_app.py``), served by uvicorn in
   its own process, the same requests and client concurrency.

CPU ms per accepted document of each process (utime + stime from /proc, from the first send until
the processes are idle again, so that the dispatch, the feed and the archive's record count), of
PostgreSQL and RabbitMQ (the machine's shared servers: whatever else uses them counts too), and of
this process (the senders, the feed reader; the ceiling (a)'s publishers and consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import httpx
from rich.progress import Progress

from bench.channels import Arrivals, Meter, _ceiling_run, _read_feed, _until_arrived
from bench.common import (
    METERED,
    PG_ADMIN_DSN,
    SIGNATURE_POLICY_OFF,
    analyze,
    bench_pdf,
    free_port,
    metadata,
    production_topology,
    scratch_dir,
    unique_pdf,
)
from bench.common import token as get_token

RUNS = ((16, 800), (64, 800))  # (concurrent senders, documents)
# before the runs, documents sent by as many senders as the largest run has: every connection pool
# (the gateway's to the services, each service's to PostgreSQL) at the size the load keeps it, its
# statements prepared, the archive's extraction workers started, as in a service that has been up a while
WARM_UP_SENDERS = max(concurrency for concurrency, _ in RUNS)
WARM_UP = 2 * WARM_UP_SENDERS
ATTACHMENT_BYTES = 100 * 1024
# ceiling (a)'s message and row: what a document puts through RabbitMQ and PostgreSQL (metadata,
# events, rows; the attachment itself goes to the blob store on disk), as ``bench channels``' ceiling
CEILING_BODY_BYTES = 4 * 1024
PROVINCE, SENDER, RECIPIENT = "000.00.30.H98", "000.00.31.H98", "000.00.32.H98"
BOUNDARY = "lienthong-bench-send"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
ADMIN_SECRET = "bench"  # production_topology's
START_TIMEOUT = 60.0

# the goals, printed beside the figures
GOALS = (
    "production: ≤ 6 ms CPU per document across all LienThong processes, ≥ 200 documents/s accepted,"
    " feed end to end at the same rate with p99 < 250 ms at 16 senders",
    "embedded: ≥ 120 documents/s, p99 < 500 ms at 16 senders",
)


@dataclass
class Case:
    """One measured run: ``count`` requests (or messages) by ``concurrency`` senders."""

    what: str
    concurrency: int
    count: int
    seconds: float  # first send to the last 202 (ceiling (a): to the last commit)
    latencies_ms: list[float]  # the POST (ceiling (a): publish to commit)
    cpu_ms: dict[str, float]  # per document, by process
    feed_seconds: float = 0.0  # first send to the last arrival in the feed
    feed_ms: list[float] = field(default_factory=list)  # from the POST's start to the arrival
    feed_after_202_ms: list[float] = field(default_factory=list)  # from the 202 to the arrival

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def feed_rate(self) -> float:
        return self.count / self.feed_seconds


def _percentiles(values: list[float]) -> str:
    if not values:
        return "—"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"{cuts[49]:,.0f} / {cuts[94]:,.0f} / {cuts[98]:,.0f}"


def _multipart(attachment: bytes, recipient: str) -> bytes:
    """The request body as a sender's client builds it: the metadata (a number of its own) and one PDF
    with 16 bytes of its own (the blob store keeps one copy of identical bytes)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{metadata([recipient])}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="cong-van.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    return head + unique_pdf(attachment) + f"\r\n--{BOUNDARY}--\r\n".encode()


@dataclass
class Sent:
    """When each accepted document's POST started and got its 202 (perf_counter), by delivery id."""

    started: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)

    def latencies_ms(self) -> list[float]:
        return [(self.accepted[d] - at) * 1000 for d, at in self.started.items()]


async def _send(
    http: aiohttp.ClientSession,
    attachment: bytes,
    count: int,
    concurrency: int,
    sent: Sent,
    on_sent: Callable[[], None] = lambda: None,
) -> None:
    numbers = iter(range(count))
    headers = {"Content-Type": CONTENT_TYPE}

    async def sender() -> None:
        for _ in numbers:
            body = _multipart(attachment, RECIPIENT)
            started = time.perf_counter()
            async with http.post("/v1/documents", data=body, headers=headers) as response:
                answer = await response.read()
            accepted = time.perf_counter()
            if response.status != 202:
                raise RuntimeError(f"send failed: {response.status} {answer[:300]!r}")
            delivery = json.loads(answer)["deliveries"][0]["id"]
            sent.started[delivery], sent.accepted[delivery] = started, accepted
            on_sent()

    await asyncio.gather(*(sender() for _ in range(concurrency)))


def _sender_client(base_url: str, token: str | None) -> aiohttp.ClientSession:
    """The senders' client: aiohttp, a connection per sender kept alive. The load generator shares
    the two cores with the system it measures: httpx cost about 1.5 ms of CPU a document here,
    aiohttp (the gateway's own client to the services) a fraction of it (docs/performance.md)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return aiohttp.ClientSession(
        base_url=base_url,
        headers=headers,
        connector=aiohttp.TCPConnector(limit=100),
        timeout=aiohttp.ClientTimeout(total=120),
    )


def _attachment() -> bytes:
    """A 100 KB PDF: a real one, its bulk random bytes in a stream of its own."""
    return bench_pdf(ATTACHMENT_BYTES)


class ProcessMeter(Meter):
    """``bench channels``' meter over processes of our own (the embedded server, the bare server)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.idle = {}


async def _accept_run(
    meter: Meter, http: aiohttp.ClientSession, what: str, attachment: bytes, concurrency: int, count: int
) -> Case:
    """Send, then wait until the processes are idle; no reader."""
    sent = Sent()
    with Progress() as progress:
        task = progress.add_task(f"{what}, {concurrency} senders: accepted", total=count)
        before = meter.snapshot()
        started = time.perf_counter()
        await _send(http, attachment, count, concurrency, sent, lambda: progress.advance(task))
        finished = max(sent.accepted.values())
        await meter.settle()
        after = meter.snapshot()
    return Case(what, concurrency, count, finished - started, sent.latencies_ms(), Meter.per_unit(before, after, count))


# --- 1. production topology -------------------------------------------------------------------------


async def _agencies(base_url: str) -> dict[str, str]:
    """Create the province, the sender and the recipient with an API client each; their tokens."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        admin = {"Authorization": f"Bearer {await get_token(http, 'admin', ADMIN_SECRET)}"}
        rows = [{"code": PROVINCE, "name": "Ủy ban nhân dân tỉnh đo", "level": "province"}]
        rows += [
            {"code": code, "name": name, "level": "department", "parent_code": PROVINCE}
            for code, name in ((SENDER, "Sở gửi"), (RECIPIENT, "Sở nhận"))
        ]
        (await http.post("/v1/agencies/import", params={"format": "json"}, json=rows, headers=admin)).raise_for_status()
        tokens = {}
        for code in (SENDER, RECIPIENT):
            response = await http.post(f"/v1/agencies/{code}/clients", json={"name": "bench"}, headers=admin)
            response.raise_for_status()
            client = response.json()
            tokens[code] = await get_token(http, client["client_id"], client["client_secret"])
        return tokens


async def _production_run(
    meter: Meter, http: aiohttp.ClientSession, arrivals: Arrivals, attachment: bytes, concurrency: int, count: int
) -> Case:
    sent = Sent()
    with Progress() as progress:
        accepted = progress.add_task(f"production, {concurrency} senders: accepted", total=count)
        in_feed = progress.add_task(f"production, {concurrency} senders: in the feed", total=count)
        before = meter.snapshot()
        started = time.perf_counter()
        sending = asyncio.create_task(
            _send(http, attachment, count, concurrency, sent, lambda: progress.advance(accepted))
        )
        await _until_arrived(sent.accepted, arrivals.at, progress, in_feed, sending)
        last_202 = max(sent.accepted.values())
        last_arrival = max(arrivals.at[d] for d in sent.accepted)
        await meter.settle()
        after = meter.snapshot()
    return Case(
        "production",
        concurrency,
        count,
        last_202 - started,
        sent.latencies_ms(),
        Meter.per_unit(before, after, count),
        feed_seconds=last_arrival - started,
        feed_ms=[(arrivals.at[d] - at) * 1000 for d, at in sent.started.items()],
        feed_after_202_ms=[(arrivals.at[d] - at) * 1000 for d, at in sent.accepted.items()],
    )


async def _production(attachment: bytes) -> list[Case]:
    cases: list[Case] = []
    async with production_topology() as running:
        running.queues.append("bench.ceiling")
        gateway = running.topology.url("gateway")
        print("creating the agencies and their clients …", flush=True)
        tokens = await _agencies(gateway)
        arrivals = Arrivals()
        reader = asyncio.create_task(_read_feed(gateway, tokens[RECIPIENT], arrivals))
        meter = Meter(running)
        try:
            async with _sender_client(gateway, tokens[SENDER]) as http:
                await _production_run(meter, http, arrivals, attachment, WARM_UP_SENDERS, WARM_UP)
                await analyze(running)
                await meter.measure_idle()
                for concurrency, count in RUNS:
                    cases.append(await _production_run(meter, http, arrivals, attachment, concurrency, count))
                    ceiling = await _ceiling_run(meter, running, os.urandom(CEILING_BODY_BYTES), concurrency, count)
                    cases.append(
                        Case(
                            "ceiling (a) aio-pika+asyncpg",
                            concurrency,
                            count,
                            ceiling.seconds,
                            ceiling.latencies_ms,
                            ceiling.cpu_ms,
                        )
                    )
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        _print_idle(meter)
    await _checkpoint()
    return cases


async def _checkpoint() -> None:
    """Have PostgreSQL write its dirty pages now, not during the next cases (which share the disk)."""
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute("CHECKPOINT")
    finally:
        await admin.close()


def _print_idle(meter: Meter) -> None:
    idle = ", ".join(f"{name} {rate:,.0f}" for name, rate in meter.idle.items())
    print(f"CPU ms/s while nothing was sent: {idle}", flush=True)


# --- 2. embedded mode and 3b. the bare route: one server process each ----------------------------------


def _start_server(command: list[str], env: dict[str, str], log: Path, url: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with code {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process
        time.sleep(0.2)
    _stop_server(process)
    raise RuntimeError(f"{command} did not answer /health within {START_TIMEOUT:.0f} s:\n{_tail(log)}")


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:].strip() if log.exists() else ""


@asynccontextmanager
async def _server(name: str, command: list[str], env: dict[str, str], tmp: Path, url: str) -> AsyncIterator[int]:
    """Run one server process until the block ends; yield its pid (its log printed if the block fails)."""
    log = tmp / f"{name}.log"
    print(f"starting {name} …", flush=True)
    process = await asyncio.to_thread(_start_server, command, env, log, url)
    try:
        yield process.pid
    except BaseException:
        print(f"--- {name}.log (end) ---\n{_tail(log)}", flush=True)
        raise
    finally:
        await asyncio.to_thread(_stop_server, process)


def _clean_env() -> dict[str, str]:
    """This process's environment without any LienThong setting (the server takes only ours)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")}


@asynccontextmanager
async def embedded_server(settings: dict[str, str] | None = None) -> AsyncIterator[tuple[str, int]]:
    """``lienthong dev --no-seed`` in its own process on a temporary var dir, the admin's secret
    ``bench``, signature policy off unless ``settings`` say otherwise; yields its URL and pid."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with scratch_dir() as tmp:
        env = _clean_env() | {
            "LIENTHONG_VAR_DIR": str(tmp),
            "LIENTHONG_REGISTRY__ADMIN_CLIENT_SECRET": ADMIN_SECRET,
            "LIENTHONG_LOG_LEVEL": "WARNING",
            **SIGNATURE_POLICY_OFF,
            **(settings or {}),
        }
        command = [sys.executable, "-m", "services.cli", "dev", "--port", str(port), "--no-seed"]
        async with _server("embedded", command, env, tmp, url) as pid:
            yield url, pid


async def _embedded(attachment: bytes) -> list[Case]:
    cases: list[Case] = []
    async with embedded_server() as (url, pid):
        print("creating the agencies and their clients …", flush=True)
        tokens = await _agencies(url)
        meter = ProcessMeter({"embedded": pid})
        async with _sender_client(url, tokens[SENDER]) as http:
            await _accept_run(meter, http, "embedded", attachment, WARM_UP_SENDERS, WARM_UP)
            await meter.measure_idle()
            for concurrency, count in RUNS:
                cases.append(await _accept_run(meter, http, "embedded", attachment, concurrency, count))
        _print_idle(meter)
    return cases


async def _bare(attachment: bytes) -> list[Case]:
    cases: list[Case] = []
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-access-log", "--log-level", "warning"]
    with tempfile.TemporaryDirectory() as tmp:
        async with _server("bare FastAPI", command, _clean_env(), Path(tmp), url) as pid:
            meter = ProcessMeter({"bare": pid})
            async with _sender_client(url, None) as http:
                await _accept_run(meter, http, "ceiling (b) bare FastAPI", attachment, WARM_UP_SENDERS, WARM_UP)
                await meter.measure_idle()
                for concurrency, count in RUNS:
                    cases.append(
                        await _accept_run(meter, http, "ceiling (b) bare FastAPI", attachment, concurrency, count)
                    )
            _print_idle(meter)
    return cases


# --- the benchmark ----------------------------------------------------------------------------------


async def main() -> None:
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()), flush=True)
    started = time.monotonic()
    attachment = _attachment()
    cases = await _production(attachment)
    cases += await _embedded(attachment)
    cases += await _bare(attachment)
    print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"the benchmark took {time.monotonic() - started:,.0f} s")
    _report(cases)


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else float("nan")


def goal_verdicts(cases: list[Case]) -> list[str]:
    """Each of the issue's goals (:data:`GOALS`) against this run's cases at 16 senders: the
    figure, its bound and whether it is met (the CPU to two decimals: the table's one decimal
    cannot tell 6.04 from 5.96)."""
    lines = []
    for case in cases:
        if case.concurrency != 16:
            continue
        if case.what == "production":
            total = sum(case.cpu_ms.get(name, 0.0) for name in METERED)
            checks = [
                (f"{total:.2f} ms of LienThong CPU a document (≤ 6)", total <= 6.0),
                (f"{case.rate:.1f} documents/s accepted (≥ 200)", case.rate >= 200),
            ]
            if case.feed_ms:
                p99 = _p99(case.feed_ms)
                checks += [
                    (f"{case.feed_rate:.1f} documents/s in the feed (≥ 200)", case.feed_rate >= 200),
                    (f"the feed's p99 {p99:.0f} ms (< 250)", p99 < 250),
                ]
            else:
                checks.append(("the feed not measured", False))
        elif case.what == "embedded":
            p99 = _p99(case.latencies_ms)
            checks = [
                (f"{case.rate:.1f} documents/s accepted (≥ 120)", case.rate >= 120),
                (f"p99 {p99:.0f} ms (< 500)", p99 < 500),
            ]
        else:
            continue
        verdicts = "; ".join(f"{figure} {'met' if ok else 'MISSED'}" for figure, ok in checks)
        lines.append(f"{case.what}, 16 senders: {verdicts}")
    return lines


def _own_cpu(case: Case) -> tuple[list[str], str]:
    """The per-process CPU columns (gateway … archive) and the total of LienThong's (or the server's)."""
    if case.what == "production":
        own = [case.cpu_ms.get(n, 0.0) for n in METERED]
        return [f"{v:.1f}" for v in own], f"{sum(own):.1f}"
    if case.what == "embedded":
        return ["—"] * len(METERED), f"{case.cpu_ms['embedded']:.1f} (one process)"
    if "bare" in case.what:
        return ["—"] * len(METERED), f"{case.cpu_ms['bare']:.1f} (server)"
    return ["—"] * len(METERED), f"{case.cpu_ms['bench']:.1f} (client)"  # ceiling (a): publishers and consumer


def _unit(case: Case) -> str:
    if case.what.startswith("ceiling (a)"):
        return "messages/s"
    return "requests/s" if "bare" in case.what else "documents/s"


def _senders(case: Case) -> str:
    return f"{case.concurrency} {'publishers' if case.what.startswith('ceiling (a)') else 'senders'}"


def _report(cases: list[Case]) -> None:
    print(
        "\nrate: documents accepted (202s) per second, first send to last 202 (ceiling (a): messages"
        " committed per second); POST latency (ceiling (a): publish to commit); feed: end to end, first"
        " send to last arrival, latency from the POST's start (after the 202 in brackets); CPU: ms per"
        " document (per message, per request), first send until idle again"
    )
    header = (
        f"{'case':<30} {'senders':>7} {'count':>5} {'rate':>18} {'POST p50/p95/p99':>18}"
        f" {'feed docs/s':>11} {'feed p50/p95/p99':>18} {'(after the 202)':>17}"
        + "".join(f" {n[:9]:>9}" for n in METERED)
        + f" {'total':>20} {'postgres':>8} {'rabbitmq':>8} {'bench':>6}"
    )
    print(header)
    print("-" * len(header))
    for c in cases:
        own, total = _own_cpu(c)
        feed = f"{c.feed_rate:,.1f}" if c.feed_ms else "—"
        print(
            f"{c.what:<30} {c.concurrency:>7} {c.count:>5} {f'{c.rate:,.1f} {_unit(c)}':>18}"
            f" {_percentiles(c.latencies_ms):>18} {feed:>11} {_percentiles(c.feed_ms):>18}"
            f" {_percentiles(c.feed_after_202_ms):>17}"
            + "".join(f" {v:>9}" for v in own)
            + f" {total:>20} {c.cpu_ms.get('postgres', 0.0):>8.1f} {c.cpu_ms.get('rabbitmq', 0.0):>8.1f}"
            f" {c.cpu_ms['bench']:>6.1f}"
        )
    print("\ngoals (the fast-send-path issue):")
    for goal in GOALS:
        print(f"  {goal}")
    print("this run against them:")
    for line in goal_verdicts(cases):
        print(f"  {line}")

    print("\nmarkdown rows — rate and latency:")
    for c in cases:
        if c.what.startswith("ceiling (a)"):
            rate = f"{c.rate:,.0f} messages/s; publish to commit {_percentiles(c.latencies_ms)} ms"
        elif "bare" in c.what:
            rate = f"{c.rate:,.0f} requests/s; {_percentiles(c.latencies_ms)} ms"
        else:
            rate = f"{c.rate:,.1f} documents/s; {_percentiles(c.latencies_ms)} ms"
        feed = (
            f"{c.feed_rate:,.1f} documents/s; {_percentiles(c.feed_ms)} ms (after the 202:"
            f" {_percentiles(c.feed_after_202_ms)} ms)"
            if c.feed_ms
            else "—"
        )
        print(f"| {c.what}, {_senders(c)}, {c.count} {_unit(c).split('/')[0]} | {rate} | {feed} |")
    print("\nmarkdown rows — CPU ms per document:")
    for c in cases:
        own, total = _own_cpu(c)
        if c.what == "production":
            total = f"**{total}**"
        print(
            f"| {c.what}, {_senders(c)} |"
            + "".join(f" {v} |" for v in own)
            + f" {total} | {c.cpu_ms.get('postgres', 0.0):.1f} | {c.cpu_ms.get('rabbitmq', 0.0):.1f}"
            f" | {c.cpu_ms['bench']:.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
