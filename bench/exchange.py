"""Exchange, in the production topology (each service its own process, PostgreSQL, RabbitMQ):

1. documents accepted per second with one 100 KB attachment, through the gateway; ceiling: the
   same requests straight to the exchange process (no gateway hop), same run;
2. one document to a group of 1,000 agencies: time until the 1,000 deliveries exist (the 202
   comes after the commit); ceiling: inserting 1,000 delivery rows with raw asyncpg;
3. the exchange process's memory (RSS) while a 200 MB attachment is uploaded through the gateway;
   ceiling: its RSS before the upload.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
from rich.progress import Progress

from bench.common import asyncpg_dsn, bench_pdf, metadata, production_topology
from bench.common import token as get_token
from services.demo.pdf import make_pdf
from services.runtime import Topology

CONCURRENCY = 8
DOCUMENTS = 400
BIG = 200 * 1024 * 1024


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _send_many(base_url: str, token: str, recipient: str, attachment: bytes, count: int) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                response = await http.post(
                    "/v1/documents",
                    data={"metadata": metadata([recipient])},
                    files={"files": ("cong-van.pdf", attachment, "application/pdf")},
                )
                if response.status_code != 202:
                    raise RuntimeError(f"send failed: {response.status_code} {response.text[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - started)


async def _big_body() -> AsyncIterator[bytes]:
    boundary = "lienthong-bench"
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{metadata(["000.00.02.H98"])}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    yield b"%PDF-1.7\n"
    chunk = os.urandom(1024 * 1024)
    sent = 9
    while sent < BIG:
        piece = chunk[: min(len(chunk), BIG - sent)]
        sent += len(piece)
        yield piece
    yield f"\r\n--{boundary}--\r\n".encode()


async def main() -> None:
    async with production_topology({"LIENTHONG_EXCHANGE__MAX_ATTACHMENT_BYTES": str(BIG + 1024 * 1024)}) as running:
        await _run(running.topology, running.database_url)


async def _run(topology: Topology, url: str) -> None:
    gateway, exchange = topology.url("gateway"), topology.url("exchange")
    async with httpx.AsyncClient(base_url=gateway, timeout=300) as http:
        admin = {"Authorization": f"Bearer {await get_token(http, 'admin', 'bench')}"}
        rows = [{"code": "000.00.00.H98", "name": "Ủy ban nhân dân tỉnh đo", "level": "province"}]
        rows += [{"code": "000.00.01.H98", "name": "Sở gửi", "level": "department", "parent_code": "000.00.00.H98"}]
        rows += [{"code": "000.00.02.H98", "name": "Sở nhận", "level": "department", "parent_code": "000.00.00.H98"}]
        rows += [{"code": "000.00.03.H98", "name": "Huyện đo", "level": "district", "parent_code": "000.00.00.H98"}]
        rows += [
            {
                "code": f"{n // 100:03d}.{n % 100:02d}.03.H98",
                "name": f"Xã đo {n}",
                "level": "commune",
                "parent_code": "000.00.03.H98",
            }
            for n in range(1, 1001)
        ]
        print("importing 1,004 agencies …", flush=True)
        (await http.post("/v1/agencies/import", params={"format": "json"}, json=rows, headers=admin)).raise_for_status()
        group = {
            "name": "bench-communes",
            "title": "1.000 xã",
            "rules": [{"level": "commune", "under": "000.00.03.H98"}],
        }
        (await http.post("/v1/groups", json=group, headers=admin)).raise_for_status()
        client = (await http.post("/v1/agencies/000.00.01.H98/clients", json={"name": "bench"}, headers=admin)).json()
        token = await get_token(http, client["client_id"], client["client_secret"])

    attachment = bench_pdf(100 * 1024)
    await _send_many(gateway, token, "000.00.02.H98", attachment, 20)  # warm-up
    via_gateway = await _send_many(gateway, token, "000.00.02.H98", attachment, DOCUMENTS)
    direct = await _send_many(exchange, token, "000.00.02.H98", attachment, DOCUMENTS)

    async with httpx.AsyncClient(base_url=gateway, timeout=300, headers={"Authorization": f"Bearer {token}"}) as http:
        pdf = make_pdf(["Thong bao toan tinh"])
        started = time.perf_counter()
        response = await http.post(
            "/v1/documents",
            data={"metadata": metadata(groups=["bench-communes"])},
            files={"files": ("thong-bao.pdf", pdf, "application/pdf")},
        )
        broadcast_ms = (time.perf_counter() - started) * 1000
        assert response.status_code == 202, response.text
        assert len(response.json()["deliveries"]) == 1000

    conn = await asyncpg.connect(asyncpg_dsn(url))
    await conn.execute("CREATE TEMP TABLE d (id uuid, document_id uuid, recipient_code text, status text)")
    started = time.perf_counter()
    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO d VALUES ($1, $2, $3, 'pending')",
            [(uuid.uuid4(), uuid.uuid4(), f"{n:03d}.00.03.H98") for n in range(1000)],
        )
    raw_ms = (time.perf_counter() - started) * 1000
    await conn.close()

    pid = topology.processes["exchange"].pid
    idle_kib = _rss_kib(pid)
    peak = [idle_kib]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kib(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    async with httpx.AsyncClient(base_url=gateway, timeout=600, headers={"Authorization": f"Bearer {token}"}) as http:
        with Progress() as progress:
            progress.add_task("uploading 200 MB through the gateway", total=None)
            started = time.perf_counter()
            response = await http.post(
                "/v1/documents",
                content=_big_body(),
                headers={"Content-Type": "multipart/form-data; boundary=lienthong-bench"},
            )
            upload_seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    assert response.status_code == 202, response.text[:500]
    assert response.json()["attachments"][0]["size"] == BIG

    print(
        f"documents/s (100 KB attachment, {CONCURRENCY} concurrent, through the gateway): {via_gateway:,.1f}"
        f"    ceiling straight to the exchange: {direct:,.1f}"
    )
    print(
        f"one document to 1,000 recipients: {broadcast_ms:,.0f} ms until all 1,000 deliveries exist"
        f"    ceiling: raw INSERT of 1,000 rows {raw_ms:,.0f} ms"
    )
    print(
        f"exchange RSS during a 200 MB upload: peak {peak[0] / 1024:,.0f} MiB"
        f" (+{(peak[0] - idle_kib) / 1024:,.0f} MiB)    before: {idle_kib / 1024:,.0f} MiB;"
        f" upload took {upload_seconds:,.1f} s ({BIG / upload_seconds / 1e6:,.0f} MB/s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
