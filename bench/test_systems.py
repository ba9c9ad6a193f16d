"""The test suite's own cost: CPU ms to start an in-process test system (gateway and services on
SQLite, from the migrated templates), issue one token and stop it, as ``tests/conftest.py:
running_system`` does for nearly every test — with the route states FastAPI works out at an app's
first request shared between systems (``_share_route_states``, the suite's default) and without
(``LIENTHONG_TEST_SHARE_ROUTE_STATES=0``), each in a process of its own; ceiling, same run: the
same without a single request (start and stop alone)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSTEMS = 20


async def _measure() -> dict[str, float]:
    from services.cli import settle_heap

    # the suite's own fixture module (imported by name: it is the tests', not typed as the code is)
    running_system = importlib.import_module("tests.conftest").running_system
    settle_heap()

    async def cycle(request: bool) -> float:
        started = time.process_time()
        for _ in range(SYSTEMS):
            with tempfile.TemporaryDirectory() as tmp:
                async with running_system(Path(tmp) / "var") as api:
                    if request:
                        await api.admin()
        return (time.process_time() - started) * 1000 / SYSTEMS

    await cycle(True)  # the templates, the imports: once
    return {"with a token": await cycle(True), "start and stop alone": await cycle(False)}


def _run(share: str) -> dict[str, float]:
    env = {**os.environ, "LIENTHONG_TEST_SHARE_ROUTE_STATES": share}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncio, json, bench.test_systems as t; print(json.dumps(asyncio.run(t._measure())))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def main() -> None:
    print(f"{SYSTEMS} test systems started, given one token and stopped, in each mode …", flush=True)
    shared = await asyncio.to_thread(_run, "1")
    alone = await asyncio.to_thread(_run, "0")
    print(
        f"CPU ms per test system (start, one token, stop): {shared['with a token']:.0f} with the route states"
        f" shared, {alone['with a token']:.0f} without    ceiling: start and stop alone"
        f" {shared['start and stop alone']:.0f}"
    )
