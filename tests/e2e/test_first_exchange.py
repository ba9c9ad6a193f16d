"""The first slice end to end, through real HTTP: agency A sends a PDF to agency B through the
gateway; B finds it, downloads it, reports 01; A sees 01; the archive records it once.

Run twice: the embedded mode (`lienthong dev`, one process, SQLite, in-process bus) and the
production topology (each service its own process, PostgreSQL, RabbitMQ).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.demo import Credentials, run_demo, seed_demo_province
from services.runtime import Topology
from services.settings import Settings
from tests.conftest import free_port, topology_running
from tests.helpers import poll

ROOT = Path(__file__).resolve().parents[2]


async def _exchange_and_check_archive(base_url: str, admin: Credentials, var_dir: Path) -> None:
    steps: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        creds = await seed_demo_province(http, admin, var_dir / "demo-credentials.json")
        assert len(creds) == 7
        again = await seed_demo_province(http, admin, var_dir / "demo-credentials.json")  # idempotent
        assert again == creds
        seen = await run_demo(http, creds, steps.append)
        assert [s[:2] for s in steps] == ["1.", "2.", "3.", "4.", "5.", "6.", "7."]
        assert "status 01" in steps[-1]
        delivery = seen["deliveries"][0]
        assert delivery["status"] == "01"
        assert [e["status"] for e in delivery["history"]] == ["pending", "01"]

        # The archive consumed document.submitted.v1 (outbox → bus → idempotent consumer).
        token = (
            await http.post(
                "/v1/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": creds["000.00.02.H10"].client_id,
                    "client_secret": creds["000.00.02.H10"].client_secret,
                },
            )
        ).json()["access_token"]
        response = await poll(
            lambda: http.get(f"/v1/archive/records/{seen['id']}", headers={"Authorization": f"Bearer {token}"}),
            lambda r: r.status_code == 200,
            within=10,
        )
        assert response.status_code == 200, f"the archive never recorded the document: {response.text}"
        record = response.json()
        assert record["sender_code"] == "000.00.01.H10"
        assert record["recipient_codes"] == ["000.00.02.H10"]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[str, Credentials, Path]]:
    port = free_port()
    var_dir = tmp_path / "var"
    env = {**os.environ, "LIENTHONG_VAR_DIR": str(var_dir), "LIENTHONG_LOG_JSON": "false"}
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "dev", "--port", str(port), "--no-seed"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert process.poll() is None, (tmp_path / "dev.log").read_text()
            try:
                if httpx.get(f"{base_url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        admin = json.loads((var_dir / "admin-credentials.json").read_text())
        yield base_url, Credentials(admin["client_id"], admin["client_secret"]), var_dir
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.mark.heavy
async def test_first_exchange_in_embedded_mode(embedded):
    base_url, admin, var_dir = embedded
    await _exchange_and_check_archive(base_url, admin, var_dir)
    assert (var_dir / "exchange.db").exists() and (var_dir / "registry.db").exists()


def _worker_processes(pid: int) -> list[int]:
    """The worker processes uvicorn's supervisor (``serve --workers N``) spawned."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.topology
async def test_first_exchange_in_production_topology(tmp_path: Path, fresh_pg_database: str, broker_prefix: str):
    """The five services, the gateway and the exchange each as two worker processes sharing a port
    (``LIENTHONG_<SERVICE>__WORKERS``): a document goes through whichever answers."""
    workers = {"LIENTHONG_GATEWAY__WORKERS": "2", "LIENTHONG_EXCHANGE__WORKERS": "2"}
    async with topology_running(tmp_path / "var", fresh_pg_database, broker_prefix, **workers) as running:
        await _first_exchange_in_topology(*running)


async def _first_exchange_in_topology(topology: Topology, settings: Settings) -> None:
    assert len(topology.processes) == 5
    assert len({p.pid for p in topology.processes.values()}) == 5
    for name, count in (("gateway", 2), ("exchange", 2), ("registry", 0)):
        assert len(_worker_processes(topology.processes[name].pid)) == count, name
    secret = settings.registry.admin_client_secret
    assert secret is not None
    admin = Credentials(settings.registry.admin_client_id, secret.get_secret_value())
    await _exchange_and_check_archive(topology.url("gateway"), admin, settings.var_dir)
    ready = (await asyncio.to_thread(httpx.get, f"{topology.url('gateway')}/ready")).json()
    assert ready["checks"] == {
        "broker": "ok",
        "registry": "ok",
        "exchange": "ok",
        "signature": "ok",
        "archive": "ok",
    }
