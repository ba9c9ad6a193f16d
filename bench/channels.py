"""Delivery channels, in the production topology (five processes, PostgreSQL, RabbitMQ).

Documents with a 4 KB PDF are sent through the gateway to one recipient agency per channel, by 8
and then 64 concurrent senders, and taken where the recipient takes them:

- pull: its feed, long-polled (``GET /v1/feed?cursor=…&wait=20``) with its own token;
- push: its webhook, a server in this process on 127.0.0.1 (signatures checked);
- amqp: its own quorum queue on the bus, consumed with aio-pika.

For each: documents per second end to end (first send to last arrival), the latency from the
``202`` to the arrival (p50/p95/p99), and the CPU ms per document of each LienThong process, of
PostgreSQL and of RabbitMQ (utime + stime from /proc, from the first send until the processes are
idle again: the archive's record and the relays' trailing work are counted).

Ceiling, same run: as many concurrent aio-pika publishers (publisher confirms, persistent) to a
quorum queue, each message consumed with one asyncpg INSERT then an ack: messages per second, the
latency from the publish to the commit, CPU ms per message (this process, PostgreSQL, RabbitMQ).

PostgreSQL and RabbitMQ are the machine's own servers: their CPU counts whatever else uses them
meanwhile (the idle rates printed show how much that is).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aio_pika
import asyncpg
import httpx
import uvicorn
from aio_pika.abc import AbstractIncomingMessage
from rich.progress import Progress, TaskID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import (
    AMQP_URL,
    METERED,
    Running,
    asyncpg_dsn,
    bench_pdf,
    cpu_snapshot,
    free_port,
    metadata,
    production_topology,
)
from bench.common import token as get_token
from shared.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

CHANNELS = ("pull", "push", "amqp")
RUNS = ((8, 300), (64, 600))  # (concurrent senders, documents)
WARM_UP = 20
ATTACHMENT_BYTES = 4 * 1024
SERVERS = (("postgres", "postgres"), ("rabbitmq", "beam.smp"))
PROVINCE, SENDER = "000.00.20.H98", "000.00.21.H98"
RECIPIENTS = {"pull": "000.00.22.H98", "push": "000.00.23.H98", "amqp": "000.00.24.H98"}
CHANNEL_ENV = {
    "LIENTHONG_WEBHOOKS__ALLOW_HTTP": "true",
    "LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
}
ARRIVAL_TIMEOUT = 180.0
SETTLE_TIMEOUT = 15.0


class Arrivals:
    """When each delivery reached its recipient (perf_counter), by delivery id."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def take(self, entry: dict[str, object]) -> None:
        data = entry.get("data")
        if entry.get("type") == "delivery.received" and isinstance(data, dict):
            self.at.setdefault(str(data["delivery_id"]), time.perf_counter())


@dataclass
class Result:
    what: str
    concurrency: int
    count: int
    seconds: float
    latencies_ms: list[float]
    cpu_ms: dict[str, float]  # per unit of work, by process
    accept_rate: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]


# --- the three receivers ------------------------------------------------------------------------


async def _read_feed(gateway: str, token: str, arrivals: Arrivals) -> None:
    """Long-poll the recipient's feed for ever (cancelled at the end)."""
    cursor: str | None = None
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=gateway, timeout=60, headers=headers) as http:
        while True:
            params: dict[str, str | int] = {"wait": 20, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            response = await http.get("/v1/feed", params=params)
            response.raise_for_status()
            page = response.json()
            for entry in page["entries"]:
                arrivals.take(entry)
            cursor = page["next_cursor"]


class Webhook:
    """The push recipient's receiver: checks each call's signature, records the entry, answers 200."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.secret = ""
        self.port = free_port()
        self.bad_signatures = 0
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        timestamp, signature = request.headers.get(TIMESTAMP_HEADER, ""), request.headers.get(SIGNATURE_HEADER, "")
        if not verify(self.secret, timestamp, body, signature):
            self.bad_signatures += 1
            return Response(status_code=401)
        self.arrivals.take(json.loads(body))
        return Response(status_code=200)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        raise RuntimeError("the webhook receiver did not start within 10 s")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task


async def _consume_queue(
    connection: aio_pika.abc.AbstractConnection, queue_name: str, arrivals: Arrivals
) -> aio_pika.abc.AbstractChannel:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=200)
    queue = await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})

    async def on_message(message: AbstractIncomingMessage) -> None:
        arrivals.take(json.loads(message.body))
        await message.ack()

    await queue.consume(on_message)
    return channel


# --- measuring ----------------------------------------------------------------------------------


class Meter:
    """CPU of the LienThong processes, PostgreSQL, RabbitMQ and this process, and waiting for them
    to be idle again after a run."""

    def __init__(self, running: Running) -> None:
        processes = running.topology.processes
        self.pids = {name: processes[name].pid for name in METERED if name in processes}
        self.idle: dict[str, float] = {}  # CPU ms/s of each, nothing being sent

    def snapshot(self) -> dict[str, float]:
        return cpu_snapshot(self.pids, SERVERS, own={"bench": os.getpid()})

    def _busy(self, before: dict[str, float], after: dict[str, float]) -> float:
        return sum(after[name] - before[name] for name in (*self.pids, "postgres", "rabbitmq"))

    async def measure_idle(self, seconds: float = 3.0) -> None:
        before = self.snapshot()
        await asyncio.sleep(seconds)
        after = self.snapshot()
        self.idle = {name: (after[name] - before[name]) / seconds for name in before}

    async def settle(self) -> None:
        """Return once a second passes with the system's CPU near its idle level (at most 15 s)."""
        idle = sum(self.idle.get(name, 0.0) for name in (*self.pids, "postgres", "rabbitmq"))
        deadline = time.monotonic() + SETTLE_TIMEOUT
        last = self.snapshot()
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            now = self.snapshot()
            if self._busy(last, now) <= idle * 1.5 + 30:
                return
            last = now

    @staticmethod
    def per_unit(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
        return {name: (after[name] - before[name]) / count for name in before}


async def _until_arrived(
    expected: dict[str, float],
    arrived_at: dict[str, float],
    progress: Progress,
    task: TaskID,
    sending: asyncio.Task[None],
) -> None:
    """Wait until every id sent so far has arrived and the sending is over (fail on a send's error)."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while True:
        wanted = set(expected)
        arrived = len(wanted & arrived_at.keys())
        progress.update(task, completed=arrived)
        if sending.done():
            sending.result()  # a failed send fails the run
            if arrived == len(wanted):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {arrived} of {len(wanted)} deliveries arrived within {ARRIVAL_TIMEOUT:.0f} s")
        await asyncio.sleep(0.02)


async def _send_run(
    http: httpx.AsyncClient,
    recipient: str,
    attachment: bytes,
    count: int,
    concurrency: int,
    accepted: dict[str, float],
    on_sent: Callable[[], None] = lambda: None,
) -> None:
    numbers = iter(range(count))

    async def sender() -> None:
        for _ in numbers:
            response = await http.post(
                "/v1/documents",
                data={"metadata": metadata([recipient])},
                files={"files": ("cong-van.pdf", attachment, "application/pdf")},
            )
            if response.status_code != 202:
                raise RuntimeError(f"send failed: {response.status_code} {response.text[:300]}")
            accepted[response.json()["deliveries"][0]["id"]] = time.perf_counter()
            on_sent()

    await asyncio.gather(*(sender() for _ in range(concurrency)))


async def _channel_run(
    meter: Meter,
    http: httpx.AsyncClient,
    channel: str,
    arrivals: Arrivals,
    attachment: bytes,
    concurrency: int,
    count: int,
) -> Result:
    accepted: dict[str, float] = {}
    with Progress() as progress:
        sent = progress.add_task(f"{channel}, {concurrency} senders: sent", total=count)
        received = progress.add_task(f"{channel}, {concurrency} senders: received", total=count)
        before = meter.snapshot()
        started = time.perf_counter()
        sending = asyncio.create_task(
            _send_run(
                http,
                RECIPIENTS[channel],
                attachment,
                count,
                concurrency,
                accepted,
                lambda: progress.advance(sent),
            )
        )
        await _until_arrived(accepted, arrivals.at, progress, received, sending)
        accepted_at = max(accepted.values())
        finished = max(arrivals.at[d] for d in accepted)
        await meter.settle()
        after = meter.snapshot()
    latencies = [(arrivals.at[d] - at) * 1000 for d, at in accepted.items()]
    result = Result(
        channel,
        concurrency,
        count,
        finished - started,
        latencies,
        Meter.per_unit(before, after, count),
        accept_rate=count / (accepted_at - started),
    )
    if early := sum(1 for ms in latencies if ms < 0):
        result.notes.append(f"{early} arrived before this process had read their 202")
    return result


async def _ceiling_run(meter: Meter, running: Running, body: bytes, concurrency: int, count: int) -> Result:
    """Confirmed persistent publishes by ``concurrency`` publishers to a quorum queue; each message
    consumed with one INSERT, then acked."""
    name = f"{running.prefix}.bench.ceiling"
    pool = await asyncpg.create_pool(asyncpg_dsn(running.database_url), min_size=8, max_size=8)
    assert pool is not None
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS bench_ceiling (id uuid PRIMARY KEY, body bytea NOT NULL,"
        " received_at timestamptz NOT NULL DEFAULT now())"
    )
    published: dict[str, float] = {}
    committed: dict[str, float] = {}
    connection = await aio_pika.connect(AMQP_URL)
    try:
        publishing = await connection.channel(publisher_confirms=True)
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=64)  # as the dispatcher's
        queue = await consuming.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})

        async def on_message(message: AbstractIncomingMessage) -> None:
            assert message.message_id is not None
            await pool.execute(
                "INSERT INTO bench_ceiling (id, body) VALUES ($1, $2)", uuid.UUID(message.message_id), message.body
            )
            await message.ack()
            committed[message.message_id] = time.perf_counter()

        consumer = await queue.consume(on_message)
        numbers = iter(range(count))

        async def publisher() -> None:
            for _ in numbers:
                message_id = str(uuid.uuid4())
                published[message_id] = time.perf_counter()
                message = aio_pika.Message(
                    body,
                    message_id=message_id,
                    content_type="application/octet-stream",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                await publishing.default_exchange.publish(message, routing_key=name, timeout=30)

        with Progress() as progress:
            task = progress.add_task(f"ceiling, {concurrency} publishers: committed", total=count)
            before = meter.snapshot()
            started = time.perf_counter()
            sending = asyncio.create_task(_gather(publisher, concurrency))
            await _until_arrived(published, committed, progress, task, sending)
            finished = max(committed.values())
            await meter.settle()
            after = meter.snapshot()
        await queue.cancel(consumer)
    finally:
        await connection.close()
        await pool.close()
    latencies = [(committed[m] - at) * 1000 for m, at in published.items()]
    return Result("ceiling", concurrency, count, finished - started, latencies, Meter.per_unit(before, after, count))


async def _gather(worker: Callable[[], Awaitable[None]], concurrency: int) -> None:
    await asyncio.gather(*(worker() for _ in range(concurrency)))


# --- the benchmark ------------------------------------------------------------------------------


async def main() -> None:
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()), flush=True)
    async with production_topology(CHANNEL_ENV) as running:
        running.queues += [f"bench.{RECIPIENTS['amqp']}", "bench.ceiling"]
        results = await _run(running)
        print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    _report(results)


async def _run(running: Running) -> list[Result]:
    gateway = running.topology.url("gateway")
    arrivals = {channel: Arrivals() for channel in CHANNELS}
    webhook = Webhook(arrivals["push"])
    amqp_queue = f"{running.prefix}.bench.{RECIPIENTS['amqp']}"
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        admin = {"Authorization": f"Bearer {await get_token(http, 'admin', 'bench')}"}
        rows = [{"code": PROVINCE, "name": "Ủy ban nhân dân tỉnh đo", "level": "province"}]
        rows += [
            {"code": code, "name": f"Sở đo {label}", "level": "department", "parent_code": PROVINCE}
            for label, code in (("gửi", SENDER), *RECIPIENTS.items())
        ]
        print("creating the agencies, their clients and endpoints …", flush=True)
        (await http.post("/v1/agencies/import", params={"format": "json"}, json=rows, headers=admin)).raise_for_status()
        tokens = {}
        for code in (SENDER, RECIPIENTS["pull"]):
            response = await http.post(f"/v1/agencies/{code}/clients", json={"name": "bench"}, headers=admin)
            response.raise_for_status()
            client = response.json()
            tokens[code] = await get_token(http, client["client_id"], client["client_secret"])
        response = await http.put(
            f"/v1/agencies/{RECIPIENTS['push']}/endpoint",
            json={"mode": "push", "webhook_url": webhook.url},
            headers=admin,
        )
        response.raise_for_status()
        webhook.secret = response.json()["webhook_secret"]
        response = await http.put(
            f"/v1/agencies/{RECIPIENTS['amqp']}/endpoint",
            json={"mode": "amqp", "amqp_queue": amqp_queue},
            headers=admin,
        )
        response.raise_for_status()

    await webhook.start()
    connection = await aio_pika.connect(AMQP_URL)
    await _consume_queue(connection, amqp_queue, arrivals["amqp"])
    reader = asyncio.create_task(_read_feed(gateway, tokens[RECIPIENTS["pull"]], arrivals["pull"]))
    meter = Meter(running)
    attachment = bench_pdf(ATTACHMENT_BYTES)
    results: list[Result] = []
    try:
        async with httpx.AsyncClient(
            base_url=gateway,
            timeout=120,
            headers={"Authorization": f"Bearer {tokens[SENDER]}"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        ) as http:
            for channel in CHANNELS:  # warm-up: caches, connections, the queues declared
                await _channel_run(meter, http, channel, arrivals[channel], attachment, 4, WARM_UP)
            await meter.measure_idle()
            for concurrency, count in RUNS:
                for channel in CHANNELS:
                    results.append(
                        await _channel_run(meter, http, channel, arrivals[channel], attachment, concurrency, count)
                    )
                results.append(await _ceiling_run(meter, running, attachment, concurrency, count))
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await connection.close()
        await webhook.stop()
    if webhook.bad_signatures:
        raise RuntimeError(f"{webhook.bad_signatures} webhook calls had a bad signature")
    idle = ", ".join(f"{name} {rate:,.0f}" for name, rate in meter.idle.items() if name != "bench")
    print(f"CPU ms/s while nothing was sent: {idle}")
    return results


def _latency(result: Result) -> str:
    return f"{result.percentile(50):,.0f} / {result.percentile(95):,.0f} / {result.percentile(99):,.0f}"


def _report(results: list[Result]) -> None:
    lienthong = list(METERED)
    header = (
        f"{'channel':<8} {'senders':>7} {'docs':>5} {'docs/s':>7} {'sent/s':>7}  {'p50/p95/p99 ms':>16}"
        + "".join(f" {name[:9]:>9}" for name in lienthong)
        + f" {'LienThong':>9} {'postgres':>8} {'rabbitmq':>8} {'bench':>6}"
    )
    print("\nCPU columns: ms per document (ceiling: per message); latency from the 202 (ceiling: the publish)")
    print(header)
    print("-" * len(header))
    for r in results:
        if r.what == "ceiling":
            own = "".join(f" {'':>9}" for _ in lienthong) + f" {'—':>9}"
            sent = "—"
        else:
            own = "".join(f" {r.cpu_ms.get(name, 0.0):>9.1f}" for name in lienthong)
            own += f" {sum(r.cpu_ms.get(name, 0.0) for name in lienthong):>9.1f}"
            sent = f"{r.accept_rate:,.1f}"
        print(
            f"{r.what:<8} {r.concurrency:>7} {r.count:>5} {r.rate:>7,.1f} {sent:>7}  {_latency(r):>16}{own}"
            f" {r.cpu_ms['postgres']:>8.1f} {r.cpu_ms['rabbitmq']:>8.1f} {r.cpu_ms['bench']:>6.1f}"
        )
        for note in r.notes:
            print(f"         ({r.what}, {r.concurrency} senders: {note})")

    ceilings = {r.concurrency: r for r in results if r.what == "ceiling"}
    print("\nmarkdown rows — documents/s and latency:")
    for r in results:
        if r.what == "ceiling":
            continue
        c = ceilings[r.concurrency]
        print(
            f"| {r.what}, {r.concurrency} senders, {r.count} documents | {r.rate:,.1f} documents/s;"
            f" {_latency(r)} ms | {c.rate:,.0f} messages/s; {_latency(c)} ms |"
        )
    print("\nmarkdown rows — CPU ms per document:")
    for r in results:
        if r.what == "ceiling":
            print(
                f"| ceiling, {r.concurrency} publishers (per message) |"
                + " — |" * len(lienthong)
                + f" {r.cpu_ms['bench']:.1f} (client) | {r.cpu_ms['postgres']:.1f} | {r.cpu_ms['rabbitmq']:.1f} |"
            )
            continue
        total = sum(r.cpu_ms.get(name, 0.0) for name in lienthong)
        print(
            f"| {r.what}, {r.concurrency} senders |"
            + "".join(f" {r.cpu_ms.get(name, 0.0):.1f} |" for name in lienthong)
            + f" **{total:.1f}** | {r.cpu_ms['postgres']:.1f} | {r.cpu_ms['rabbitmq']:.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
