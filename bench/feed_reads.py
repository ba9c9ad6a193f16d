"""What one read of an agency's feed costs: ``python -m bench feed_reads``.

The production topology (PostgreSQL, RabbitMQ, the five processes, a scratch database and
prefix). 600 documents are sent by 16 senders and the processes left to settle; then the
recipient reads its feed back through the gateway, one call after the other, ``LIMIT`` entries a
page (3: about what a reader asking again at once found each time under a steady stream before
the long polls were paced), first without ``wait``, then with ``wait=20`` (entries already there:
neither is held). Printed: CPU ms per read of each process (utime + stime from /proc, as ``bench
send``) and the reads per second of the one reader.
"""

from __future__ import annotations

import time

import httpx

from bench.channels import Meter
from bench.common import production_topology
from bench.send import RECIPIENT, SENDER, Sent, _agencies, _attachment, _send, _sender_client

DOCUMENTS = 600
LIMIT = 3


async def main() -> None:
    async with production_topology() as running:
        gateway = running.topology.url("gateway")
        tokens = await _agencies(gateway)
        async with _sender_client(gateway, tokens[SENDER]) as http:
            await _send(http, _attachment(), DOCUMENTS, 16, Sent())
        meter = Meter(running)
        await meter.settle()
        headers = {"Authorization": f"Bearer {tokens[RECIPIENT]}"}
        rows = []
        async with httpx.AsyncClient(base_url=gateway, timeout=60, headers=headers) as http:
            end: int | None = None  # the feed's last entry, found by the pass without wait
            for wait in (0, 20):
                cursor: str | None = None
                reads = 0
                before = meter.snapshot()
                started = time.perf_counter()
                while True:
                    params: dict[str, str | int] = {"limit": LIMIT, "wait": wait}
                    if cursor:
                        params["cursor"] = cursor
                    response = await http.get("/v1/feed", params=params)
                    response.raise_for_status()
                    page = response.json()
                    reads += 1
                    cursor = page["next_cursor"]
                    if end is None and len(page["entries"]) < LIMIT:
                        end = page["last_seq"]
                        break
                    if end is not None and page["last_seq"] >= end:  # no call that would wait for more
                        break
                seconds = time.perf_counter() - started
                per_read = meter.per_unit(before, meter.snapshot(), reads)
                figures = ", ".join(f"{name} {value:.2f}" for name, value in per_read.items())
                print(f"wait={wait}: {reads} reads, {reads / seconds:.0f} reads/s; CPU ms per read: {figures}")
                rows.append((wait, reads, reads / seconds, per_read))
    print("\n| call | reads | reads/s | gateway | exchange | PostgreSQL | the reader |")
    print("|---|---|---|---|---|---|---|")
    for wait, reads, rate, cpu in rows:
        print(
            f"| `GET /v1/feed?limit={LIMIT}&wait={wait}` | {reads} | {rate:.0f} | {cpu.get('gateway', 0):.2f} | "
            f"{cpu.get('exchange', 0):.2f} | {cpu.get('postgres', 0):.2f} | {cpu.get('bench', 0):.2f} |"
        )
