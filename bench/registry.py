"""Registry: import 10,000 agencies, resolve a group of 1,000 agencies, look up 10,000 agencies by
code — through the registry's API (ASGI in-process: token check, SQL, JSON) on PostgreSQL. Ceiling:
the same reads as raw asyncpg queries in the same run."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from rich.progress import Progress

from bench.common import scratch_database
from services.registry.app import create_app
from services.registry.dependencies import transfer_service
from services.settings import Settings
from shared.auth import Scope, TokenIssuer, generate_keypair
from shared.runtime import app_runtime
from shared.service import ServiceRuntime

DISTRICTS = 9
COMMUNES_PER_DISTRICT = 1000  # the first district's 1,000 communes make the group
DEPARTMENTS = 1000 - DISTRICTS


def directory_rows() -> list[dict[str, str]]:
    """A province, 990 departments, 9 districts with 1,000 communes each: 10,000 agencies."""
    province = "000.00.00.H99"
    rows = [{"code": province, "name": "Ủy ban nhân dân tỉnh thử nghiệm", "level": "province"}]
    for d in range(1, DEPARTMENTS + 1):
        rows.append(
            {
                "code": f"{d // 100:03d}.{d % 100:02d}.00.H99",
                "name": f"Sở thử nghiệm {d}",
                "level": "department",
                "parent_code": province,
            }
        )
    for k in range(DISTRICTS):
        district = f"000.00.{k + 1:02d}.I99"
        rows.append(
            {"code": district, "name": f"Ủy ban nhân dân huyện {k + 1}", "level": "district", "parent_code": province}
        )
        for c in range(COMMUNES_PER_DISTRICT - 1 if k == DISTRICTS - 1 else COMMUNES_PER_DISTRICT):
            rows.append(
                {
                    "code": f"{c // 100:03d}.{c % 100:02d}.{k + 1:02d}.J99",
                    "name": f"Ủy ban nhân dân xã {k}-{c}",
                    "level": "commune",
                    "parent_code": district,
                }
            )
    return rows


async def main() -> None:
    rows = directory_rows()
    async with scratch_database() as url:
        with tempfile.TemporaryDirectory() as tmp:
            private, public = generate_keypair(Path(tmp) / "keys")
            settings = Settings(
                var_dir=Path(tmp),
                database_url=url,
                broker_url="memory://",
                log_json=False,
                auth={"private_key_file": private, "public_key_file": public},
            )
            token = TokenIssuer(private.read_bytes(), settings.auth.issuer, settings.auth.audience, 3600).issue(
                "bench", None, [Scope.REGISTRY_ADMIN]
            )
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                runtime = app_runtime(app, ServiceRuntime)
                with Progress() as progress:
                    task = progress.add_task(f"importing {len(rows):,} agencies", total=len(rows))
                    started = time.perf_counter()
                    async with runtime.db.session() as session:
                        await transfer_service(session, "bench").import_rows(
                            rows, progress=lambda done, _t: progress.update(task, completed=done)
                        )
                    import_seconds = time.perf_counter() - started
                assert runtime.relay is not None
                await runtime.relay.stop()  # the bus has no subscriber; keep the relay out of the timings

                transport = httpx.ASGITransport(app=app)
                auth = {"Authorization": f"Bearer {token}"}
                async with httpx.AsyncClient(transport=transport, base_url="http://registry", headers=auth) as http:
                    group = {
                        "name": "communes-of-district-1",
                        "title": "Xã của huyện 1",
                        "rules": [{"level": "commune", "under": "000.00.01.I99"}],
                    }
                    assert (await http.post("/v1/groups", json=group)).status_code == 201
                    timings = []
                    for _ in range(20):
                        started = time.perf_counter()
                        response = await http.get("/v1/groups/communes-of-district-1/members")
                        timings.append(time.perf_counter() - started)
                        assert response.json()["count"] == COMMUNES_PER_DISTRICT
                    group_ms = sorted(timings)[len(timings) // 2] * 1000

                    codes = [r["code"] for r in rows]
                    started = time.perf_counter()
                    response = await http.post("/v1/agencies/lookup", json={"codes": codes})
                    bulk_ms = (time.perf_counter() - started) * 1000
                    assert len(response.json()["found"]) == len(codes)

                    with Progress() as progress:
                        task = progress.add_task("10,000 single lookups", total=len(codes))
                        started = time.perf_counter()
                        for n, code in enumerate(codes, start=1):
                            assert (await http.get(f"/v1/agencies/{code}")).status_code == 200
                            if n % 500 == 0:
                                progress.update(task, completed=n)
                        single_seconds = time.perf_counter() - started

                    # the framework's own ceiling: the cheapest route, same client, same process
                    started = time.perf_counter()
                    for _ in range(2000):
                        await http.get("/health")
                    health_rate = 2000 / (time.perf_counter() - started)

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute("SET search_path TO registry")
        started = time.perf_counter()
        for code in codes:
            await conn.fetchrow("SELECT * FROM agency WHERE code = $1", code)
        raw_single_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await conn.fetch("SELECT * FROM agency WHERE code = ANY($1::text[])", codes)
        raw_bulk_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        await conn.fetch(
            "WITH RECURSIVE t(id) AS (SELECT id FROM agency WHERE parent_id = (SELECT id FROM agency WHERE code = $1) "
            "UNION ALL SELECT a.id FROM agency a JOIN t ON a.parent_id = t.id) "
            "SELECT * FROM agency WHERE id IN (SELECT id FROM t) AND level = 'commune' AND status = 'active'",
            "000.00.01.I99",
        )
        raw_group_ms = (time.perf_counter() - started) * 1000
        await conn.close()

    print(
        f"import:               {len(rows) / import_seconds:,.0f} agencies/s ({len(rows):,} in {import_seconds:.1f} s, "
        "validation + history + outbox events)"
    )
    print(
        f"group of 1,000:       {group_ms:.1f} ms to resolve (median of 20, API)"
        f"   ceiling {raw_group_ms:.1f} ms (raw SQL)"
    )
    print(
        f"lookup 10,000 (bulk): {bulk_ms:.0f} ms in one call (API)"
        f"                 ceiling {raw_bulk_ms:.0f} ms (raw SQL)"
    )
    print(
        f"lookup 10,000 (one by one): {len(codes) / single_seconds:,.0f} lookups/s (API)    "
        f"ceiling {len(codes) / raw_single_seconds:,.0f}/s (raw asyncpg, sequential); "
        f"the framework alone (GET /health, same client): {health_rate:,.0f} req/s"
    )


if __name__ == "__main__":
    asyncio.run(main())
