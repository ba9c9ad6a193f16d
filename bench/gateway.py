"""The gateway's proxy alone: what it costs per request, with nothing else on the path.

The gateway (``python -m services.cli serve gateway``, its own process) in front of the bare FastAPI
app of ``bench send`` (``bench/bare_app.py``, uvicorn in its own process) standing in for the
exchange. Same run, same route, each case through the gateway and straight to the route:

1. **small requests** — ``GET /v1/inbox`` answered with a few bytes of JSON, 16 concurrent callers
   (aiohttp: the cheapest client, so that the servers, not the caller, are measured): requests per
   second through the gateway against straight to the route (goal: at least half), through a
   second gateway process with the rate limiter off; the gateway's CPU µs per request with the
   limiter on and off;
2. **uploads** — 100 KB multipart ``POST /v1/documents`` (as ``bench send``'s), 16 then 64
   senders: requests per second and CPU ms per request of the gateway and the route;
3. **the rate limiter alone**, in this process: CPU µs of what the proxy does per request for it
   (the bucket, the decision, the limit headers), exactly, where the servers' figures are noisy;
4. **the audit trail's overhead**: :func:`audit_overhead` — not measured yet: the audit trail is
   built separately; its measurement goes there.

The callers send no token: every request is counted against the caller's address (the same bucket
work as per client); the gateway whose limiter is on gets limits no case reaches
(``LIMITED_ENV``), so that it counts every request and refuses none. The gateway's check of a token
is a cache look-up once warm (the production topology's figures are ``bench send``'s).

``LIENTHONG_BENCH_GATEWAY_QUICK=1``: fewer requests (a smoke run).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from rich.progress import Progress

from bench.common import cpu_ms, free_port
from bench.send import CONTENT_TYPE, RECIPIENT, _attachment, _clean_env, _multipart, _start_server, _stop_server
from gateway.config import GatewaySection
from gateway.limits import GatewayLimits, client_key
from shared.auth import generate_keypair

QUICK = os.environ.get("LIENTHONG_BENCH_GATEWAY_QUICK") == "1"
UPLOAD_RUNS = ((16, 200), (64, 200)) if QUICK else ((16, 500), (64, 500))  # (senders, requests)
SMALL_CONCURRENCY, SMALL_COUNT = 16, (500 if QUICK else 1500)
WARM_UP = 100
HIGH = "1000000"
LIMITED_ENV = {  # the limiter on, with limits no case reaches
    f"LIENTHONG_GATEWAY__RATE_LIMITS__{name}__{field}": HIGH
    for name in ("READ", "SEND")
    for field in ("PER_SECOND", "BURST")
}
UNLIMITED_ENV = {"LIENTHONG_GATEWAY__RATE_LIMITS__ENABLED": "false"}


@dataclass
class Case:
    what: str
    concurrency: int
    count: int
    seconds: float
    cpu_ms: dict[str, float]  # per request, by process

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def _send(
    http: httpx.AsyncClient, body: bytes, count: int, concurrency: int, on_sent: Callable[[], None]
) -> None:
    numbers = iter(range(count))

    async def sender() -> None:
        for _ in numbers:
            response = await http.post("/v1/documents", content=body, headers={"Content-Type": CONTENT_TYPE})
            if response.status_code != 202 or response.json()["size"] != len(body):
                raise RuntimeError(f"send failed: {response.status_code} {response.text[:300]}")
            on_sent()

    await asyncio.gather(*(sender() for _ in range(concurrency)))


async def _upload_run(url: str, pids: dict[str, int], what: str, body: bytes, concurrency: int, count: int) -> Case:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await _send(http, body, WARM_UP, concurrency, lambda: None)  # every connection open, the code warm
        with Progress() as progress:
            task = progress.add_task(f"{what}, {concurrency} senders", total=count)
            before = {name: cpu_ms(pid) for name, pid in pids.items()}
            started = time.perf_counter()
            await _send(http, body, count, concurrency, lambda: progress.advance(task))
            seconds = time.perf_counter() - started
            after = {name: cpu_ms(pid) for name, pid in pids.items()}
    return Case(what, concurrency, count, seconds, {n: (after[n] - before[n]) / count for n in pids})


async def _get(session: aiohttp.ClientSession, url: str, count: int, concurrency: int) -> None:
    numbers = iter(range(count))

    async def caller() -> None:
        for _ in numbers:
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET failed: {response.status}")

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def _small_run(base: str, pids: dict[str, int], what: str) -> Case:
    connector = aiohttp.TCPConnector(limit=SMALL_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = f"{base}/v1/inbox"
        await _get(session, url, WARM_UP, SMALL_CONCURRENCY)
        before = {name: cpu_ms(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        await _get(session, url, SMALL_COUNT, SMALL_CONCURRENCY)
        seconds = time.perf_counter() - started
        after = {name: cpu_ms(pid) for name, pid in pids.items()}
    print(f"  {what}: {SMALL_COUNT / seconds:,.0f} requests/s", flush=True)
    return Case(what, SMALL_CONCURRENCY, SMALL_COUNT, seconds, {n: (after[n] - before[n]) / SMALL_COUNT for n in pids})


def limiter_cpu_us(iterations: int = 200_000) -> float:
    """CPU µs per request of the proxy's rate-limit work: the bucket of (class, client), the
    decision, its headers — as ``gateway/proxy.py`` does it, over 1,000 clients."""
    limits = GatewayLimits(GatewaySection())
    keys = [client_key(f"client-{n}", None) for n in range(1000)]
    started = time.process_time()
    for n in range(iterations):
        decision = limits.take("read", keys[n % 1000])
        if decision is not None:
            decision.headers()
    return (time.process_time() - started) / iterations * 1e6


async def audit_overhead(entries: int = 2000) -> str:
    """The audit trail's cost per audited request, in this process on SQLite (the embedded mode's
    database; CPU µs, not wall): (1) recording an entry in the request's own transaction (the
    payload and one outbox row, deferred: no wake-up of the relay) against the same transaction
    without it; (2) the registry appending it to the chain (hash, head row, insert), in batches of
    200 as its consumer takes them."""
    from services.registry.audit.repository import AuditRepository
    from services.registry.audit.service import AuditService
    from services.registry.models import Agency, messaging
    from shared.audit import AUDIT_EVENT, record_audit
    from shared.db import Database
    from shared.messaging import Envelope
    from shared.migrations import upgrade
    from shared.repository import Repository

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/registry.db"
        await upgrade("registry", url)
        database = Database(url, "registry")
        try:

            async def requests(audited: bool) -> float:
                started = time.process_time()
                for n in range(entries):
                    async with database.session() as session:
                        await session.get(Agency, uuid.UUID(int=n))  # the request's own read
                        if audited:
                            await record_audit(
                                Repository(session), messaging, "document.read", actor="lt_bench", deferred=True
                            )
                return (time.process_time() - started) / entries * 1e6

            plain, audited = await requests(False), await requests(True)
            async with database.session() as session:
                rows = (await session.execute(messaging.outbox.select())).mappings().all()
            envelopes = [
                Envelope(
                    id=str(r["id"]), type=AUDIT_EVENT, source="bench", occurred_at=r["created_at"], data=r["payload"]
                )
                for r in rows
            ]
            started = time.process_time()
            for first in range(0, len(envelopes), 200):
                async with database.session() as session:
                    await AuditService(AuditRepository(session)).append(envelopes[first : first + 200])
            append = (time.process_time() - started) / len(envelopes) * 1e6
        finally:
            await database.dispose()
    return (
        f"recording an entry in the request's transaction: {audited - plain:.0f} µs CPU per request "
        f"({plain:.0f} → {audited:.0f} µs for a one-read transaction); appending it to the chain: "
        f"{append:.0f} µs CPU per entry (SQLite, {entries:,} entries)"
    )


async def main() -> None:
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()), flush=True)
    body = _multipart(_attachment(), RECIPIENT)
    small: list[Case] = []
    uploads: list[Case] = []
    with tempfile.TemporaryDirectory() as tmp:
        generate_keypair(Path(tmp) / "keys")
        route_url = f"http://127.0.0.1:{free_port()}"
        gateway_url, unlimited_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        env = _clean_env() | {
            "LIENTHONG_VAR_DIR": tmp,
            "LIENTHONG_BROKER_URL": "memory://",
            "LIENTHONG_EXCHANGE__URL": route_url,
            "LIENTHONG_LOG_LEVEL": "WARNING",
        }
        route_command = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1"]
        route_command += ["--port", route_url.rsplit(":", 1)[1], "--no-access-log", "--log-level", "warning"]

        def gateway_command(url: str) -> list[str]:
            return [sys.executable, "-m", "services.cli", "serve", "gateway", "--port", url.rsplit(":", 1)[1]]

        print("starting the route and two gateways (rate limiter on, off) …", flush=True)
        route = await asyncio.to_thread(_start_server, route_command, env, Path(tmp) / "route.log", route_url)
        gateways: list[subprocess.Popen[bytes]] = []
        try:
            for url, extra, name in ((gateway_url, LIMITED_ENV, "on"), (unlimited_url, UNLIMITED_ENV, "off")):
                log = Path(tmp) / f"gateway-{name}.log"
                gateways.append(await asyncio.to_thread(_start_server, gateway_command(url), env | extra, log, url))
            limited, unlimited = gateways
            client = os.getpid()
            print(f"small GETs, {SMALL_CONCURRENCY} callers, {SMALL_COUNT} each …", flush=True)
            for _ in range(2):  # twice, interleaved: the machine's noise shows in the spread
                small.append(await _small_run(route_url, {"route": route.pid, "client": client}, "direct"))
                pids = {"gateway": limited.pid, "route": route.pid, "client": client}
                small.append(await _small_run(gateway_url, pids, "gateway, limiter on"))
                pids = {"gateway": unlimited.pid, "route": route.pid, "client": client}
                small.append(await _small_run(unlimited_url, pids, "gateway, limiter off"))
            for concurrency, count in UPLOAD_RUNS:
                pids = {"gateway": limited.pid, "route": route.pid, "client": client}
                uploads.append(await _upload_run(gateway_url, pids, "through the gateway", body, concurrency, count))
                pids = {"route": route.pid, "client": client}
                case = await _upload_run(route_url, pids, "ceiling: straight to the route", body, concurrency, count)
                uploads.append(case)
        finally:
            for process in gateways:
                await asyncio.to_thread(_stop_server, process)
            await asyncio.to_thread(_stop_server, route)
    print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    _report(small, uploads, limiter_cpu_us(), await audit_overhead())


def _report(small: list[Case], uploads: list[Case], limiter_us: float, audit: str) -> None:
    print("\nsmall GETs (a few bytes of JSON), by case: requests/s; CPU µs per request")
    header = f"{'case':<24} {'requests/s':>10} {'gateway':>8} {'route':>6} {'client':>6}"
    print(header)
    print("-" * len(header))
    for c in small:
        gateway = f"{c.cpu_ms['gateway'] * 1000:.0f}" if "gateway" in c.cpu_ms else "—"
        print(
            f"{c.what:<24} {c.rate:>10,.0f} {gateway:>8} {c.cpu_ms['route'] * 1000:>6.0f}"
            f" {c.cpu_ms['client'] * 1000:>6.0f}"
        )
    by_what: dict[str, list[Case]] = {}
    for c in small:
        by_what.setdefault(c.what, []).append(c)
    direct = [c.rate for c in by_what["direct"]]
    for what in ("gateway, limiter on", "gateway, limiter off"):
        ratios = [c.rate / d for c, d in zip(by_what[what], direct, strict=True)]
        print(f"{what}: {', '.join(f'{r:.2f}' for r in ratios)} of direct (goal: at least 0.5)")
    on = [c.cpu_ms["gateway"] * 1000 for c in by_what["gateway, limiter on"]]
    off = [c.cpu_ms["gateway"] * 1000 for c in by_what["gateway, limiter off"]]
    print(
        f"gateway CPU µs per request, limiter on: {', '.join(f'{v:.0f}' for v in on)};"
        f" off: {', '.join(f'{v:.0f}' for v in off)}"
    )
    print(f"the rate limiter alone (this process): {limiter_us:.2f} µs CPU per request")
    print(f"audit trail overhead: {audit}")

    print("\n100 KB uploads: CPU ms per request, by process")
    header = f"{'case':<32} {'senders':>7} {'count':>5} {'requests/s':>10} {'gateway':>8} {'route':>6} {'client':>6}"
    print(header)
    print("-" * len(header))
    for c in uploads:
        gateway = f"{c.cpu_ms['gateway']:.2f}" if "gateway" in c.cpu_ms else "—"
        print(
            f"{c.what:<32} {c.concurrency:>7} {c.count:>5} {c.rate:>10,.0f} {gateway:>8}"
            f" {c.cpu_ms['route']:>6.2f} {c.cpu_ms['client']:>6.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
