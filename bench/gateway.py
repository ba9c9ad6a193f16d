"""The gateway's proxy alone: CPU per proxied 100 KB upload, with nothing else on the path.

The gateway (``python -m services.cli serve gateway``, its own process) in front of the bare FastAPI
route of ``bench send`` (``bench/bare_app.py``, uvicorn in its own process) standing in for the
exchange: 16 and then 64 concurrent senders each POST a 100 KB multipart body (as ``bench send``'s)
to ``/v1/documents`` through the gateway. Printed: requests per second and the CPU ms per request of
the gateway (utime + stime from /proc) and of the route behind it; ceiling, same run: the same
requests straight to the route (no gateway), its CPU ms per request — a server that reads the
body and answers, with the framework's own cost.

The senders send no token: the gateway's check of a token is a cache look-up once warm (the
production topology's figures are ``bench send``'s), and here no registry answers for one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.progress import Progress

from bench.common import cpu_ms, free_port
from bench.send import CONTENT_TYPE, RECIPIENT, _attachment, _clean_env, _multipart, _start_server, _stop_server
from shared.auth import generate_keypair

RUNS = ((16, 2000), (64, 2000))  # (concurrent senders, requests)
WARM_UP = 200


@dataclass
class Case:
    what: str
    concurrency: int
    count: int
    seconds: float
    cpu_ms: dict[str, float]  # per request, by process


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


async def _run(url: str, pids: dict[str, int], what: str, body: bytes, concurrency: int, count: int) -> Case:
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


async def main() -> None:
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()), flush=True)
    body = _multipart(_attachment(), RECIPIENT)
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as tmp:
        generate_keypair(Path(tmp) / "keys")
        route_url, gateway_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        env = _clean_env() | {
            "LIENTHONG_VAR_DIR": tmp,
            "LIENTHONG_BROKER_URL": "memory://",
            "LIENTHONG_EXCHANGE__URL": route_url,
            "LIENTHONG_LOG_LEVEL": "WARNING",
        }
        route_command = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1"]
        route_command += ["--port", route_url.rsplit(":", 1)[1], "--no-access-log", "--log-level", "warning"]
        gateway_command = [sys.executable, "-m", "services.cli", "serve", "gateway"]
        gateway_command += ["--port", gateway_url.rsplit(":", 1)[1]]
        print("starting the route and the gateway …", flush=True)
        route = await asyncio.to_thread(_start_server, route_command, env, Path(tmp) / "route.log", route_url)
        gateway: subprocess.Popen[bytes] | None = None
        try:
            gateway = await asyncio.to_thread(
                _start_server, gateway_command, env, Path(tmp) / "gateway.log", gateway_url
            )
            for concurrency, count in RUNS:
                pids = {"gateway": gateway.pid, "route": route.pid, "client": os.getpid()}
                cases.append(await _run(gateway_url, pids, "through the gateway", body, concurrency, count))
                pids = {"route": route.pid, "client": os.getpid()}
                cases.append(await _run(route_url, pids, "ceiling: straight to the route", body, concurrency, count))
        finally:
            if gateway is not None:
                await asyncio.to_thread(_stop_server, gateway)
            await asyncio.to_thread(_stop_server, route)
    print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    _report(cases)


def _report(cases: list[Case]) -> None:
    print("\nCPU ms per request (a 100 KB multipart POST), by process")
    header = f"{'case':<32} {'senders':>7} {'count':>5} {'requests/s':>10} {'gateway':>8} {'route':>6} {'client':>6}"
    print(header)
    print("-" * len(header))
    for c in cases:
        gateway = f"{c.cpu_ms['gateway']:.2f}" if "gateway" in c.cpu_ms else "—"
        print(
            f"{c.what:<32} {c.concurrency:>7} {c.count:>5} {c.count / c.seconds:>10,.0f} {gateway:>8}"
            f" {c.cpu_ms['route']:>6.2f} {c.cpu_ms['client']:>6.2f}"
        )
    print("\nmarkdown rows:")
    for c in cases:
        gateway = f"{c.cpu_ms['gateway']:.2f}" if "gateway" in c.cpu_ms else "—"
        print(
            f"| {c.what}, {c.concurrency} senders | {c.count / c.seconds:,.0f} requests/s | {gateway}"
            f" | {c.cpu_ms['route']:.2f} | {c.cpu_ms['client']:.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
