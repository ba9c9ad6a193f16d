"""Statistics: the tables of ``/v1/statistics`` over a generated delivery history, in the
production topology (five processes, PostgreSQL, RabbitMQ).

1. history: a province of 30 departments and 10 districts of 15 communes (191 agencies, created
   through the registry's API); ``LIENTHONG_BENCH_STATISTICS_DELIVERIES`` deliveries (default
   10,000,000; four recipients per document) over the last twelve months, with their history
   (pending, 01 for 97 %, 03 for 90 %, 06 for 75 %, recalls for 0.5 %), written by SQL
   (``generate_series``) straight into the exchange's tables, month by month, their keys and
   indexes dropped during the load and made again after it (as a bulk import does);
2. refresh: the first refresh of the rollups over the whole history (timed), then one incremental
   refresh after a thousand new deliveries, as the exchange's background task does every minute;
3. reads: p50 / p95 of each statistics endpoint through the gateway (one call at a time,
   ``LIENTHONG_BENCH_STATISTICS_REPEAT`` times, default 30), beside the raw rollup query the
   endpoint is built on, run by this process on the same database; and, once, what the same
   per-level figures cost as a scan of the history (what the rollups spare each request).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from typing import Any

import asyncpg
import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bench.common import asyncpg_dsn, production_topology, token
from services.exchange.statistics.service import StatisticsRefresher
from shared.db import Database

DELIVERIES = int(os.environ.get("LIENTHONG_BENCH_STATISTICS_DELIVERIES", "10000000"))
REPEAT = int(os.environ.get("LIENTHONG_BENCH_STATISTICS_REPEAT", "30"))
RECIPIENTS = 4
MONTHS = 12
ADMIN_SECRET = "bench"  # production_topology's
PROVINCE = "000.00.00.H97"
DEPARTMENTS = [f"000.{n:02d}.00.H97" for n in range(1, 31)]
DISTRICTS = [f"000.00.{n:02d}.H97" for n in range(1, 11)]
COMMUNES = {d: [f"{n:03d}.00.{d[7:9]}.H97" for n in range(1, 16)] for d in DISTRICTS}
AGENCIES = [PROVINCE, *DEPARTMENTS, *DISTRICTS, *(c for cs in COMMUNES.values() for c in cs)]
TIMEZONE = "Asia/Ho_Chi_Minh"

# one month of history: documents numbered first..last, created in [start, end); each delivery's
# recipient is another agency, chosen by the document's number (four different ones); its statuses
# come after it by skewed random durations
HISTORY_SQL = """
WITH docs AS (
    INSERT INTO document (id, sender_code, sender_client_id, kind, promulgation_year, code_number, code_notation,
                          type_name, subject, promulgation_date, urgency, steering_type, created_at)
    SELECT gen_random_uuid(), ($1::text[])[1 + (i % $2)], 'bench', 'new', 2026, i::text, 'CV-BENCH', 'Công văn',
           'Văn bản đo hiệu năng', current_date, 0, 0,
           $4::timestamptz + ($5::timestamptz - $4::timestamptz) * ((i - $6)::float8 / $7)
    FROM generate_series($6::bigint, $6::bigint + $7 - 1) AS i
    RETURNING id, sender_code, code_number, created_at
), planned AS MATERIALIZED (
    SELECT gen_random_uuid() AS id, d.id AS document_id, d.sender_code, d.created_at,
           ($1::text[])[1 + ((d.code_number::bigint + j * 37) % $2)] AS recipient_code, p.luck,
           d.created_at + interval '1 second' * (60 + 86400 * power(p.r1, 3)) AS arrived,
           d.created_at + interval '1 second' * (60 + 86400 * power(p.r1, 3) + 600 + 3 * 86400 * power(p.r2, 3))
               AS registered,
           d.created_at + interval '1 second' * (60 + 86400 * power(p.r1, 3) + 600 + 3 * 86400 * power(p.r2, 3)
               + 3600 + 20 * 86400 * power(p.r3, 2)) AS completed
    FROM docs d, generate_series(1, $3) AS j,
    LATERAL (SELECT random() + j * 0 AS luck, random() + j * 0 AS r1, random() + j * 0 AS r2,
                    random() + j * 0 AS r3) AS p
), deliveries AS (
    INSERT INTO delivery (id, document_id, recipient_code, status, arrival_deadline, created_at, updated_at)
    SELECT id, document_id, recipient_code,
           CASE WHEN luck < 0.75 AND completed < $8 THEN '06' WHEN luck < 0.90 AND registered < $8 THEN '03'
                WHEN luck < 0.97 AND arrived < $8 THEN '01' ELSE 'pending' END,
           created_at + interval '10 hours', created_at, created_at
    FROM planned
)
INSERT INTO delivery_event (id, delivery_id, status, actor_code, created_at)
SELECT gen_random_uuid(), t.id, e.status, e.actor, e.at
FROM planned t,
LATERAL (VALUES
    ('pending', t.sender_code, t.created_at, true),
    ('01', t.recipient_code, t.arrived, t.luck < 0.97),
    ('03', t.recipient_code, t.registered, t.luck < 0.90),
    ('06', t.recipient_code, t.completed, t.luck < 0.75),
    ('13', t.sender_code, t.arrived + interval '1 hour', t.luck > 0.995)
) AS e(status, actor, at, happened)
WHERE e.happened AND e.at < $8::timestamptz
"""

# what the levels table would cost without rollups: a scan of the year's history per request
SCAN_SQL = """
SELECT v.recipient_code, count(*) FILTER (WHERE e.status = 'pending'),
       count(*) FILTER (WHERE e.status = '01' AND e.created_at <= v.arrival_deadline),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.created_at - v.created_at))
           FILTER (WHERE e.status = '01'),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM e.created_at - v.created_at))
           FILTER (WHERE e.status = '06')
FROM delivery_event e JOIN delivery v ON v.id = e.delivery_id
WHERE v.created_at >= $1
GROUP BY v.recipient_code
"""


def _percentiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


def _month_starts(now: dt.datetime) -> list[dt.datetime]:
    starts = []
    for back in range(MONTHS, -1, -1):
        index = now.year * 12 + now.month - 1 - back
        starts.append(dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC))
    return starts


async def _directory(http: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    """Create the province's agencies; return a statistics reader's Authorization header."""
    bodies: list[dict[str, Any]] = [{"code": PROVINCE, "name": "UBND tỉnh (bench)", "level": "province"}]
    bodies += [{"code": c, "name": f"Sở {c}", "level": "department", "parent_code": PROVINCE} for c in DEPARTMENTS]
    bodies += [{"code": c, "name": f"UBND huyện {c}", "level": "district", "parent_code": PROVINCE} for c in DISTRICTS]
    bodies += [
        {"code": c, "name": f"UBND xã {c}", "level": "commune", "parent_code": d}
        for d, communes in COMMUNES.items()
        for c in communes
    ]
    for body in bodies:
        (await http.post("/v1/agencies", json=body, headers=admin)).raise_for_status()
    created = await http.post(
        f"/v1/agencies/{PROVINCE}/clients", json={"name": "bench statistics", "role": "statistics"}, headers=admin
    )
    created.raise_for_status()
    secret = created.json()
    return {"Authorization": f"Bearer {await token(http, secret['client_id'], secret['client_secret'])}"}


TABLES = ("document", "delivery", "delivery_event")


async def _without_indexes(connection: asyncpg.Connection) -> tuple[list[str], list[str]]:
    """Drop the history tables' indexes and constraints (as a bulk import does); return the
    statements that make them again: keys and indexes first, then foreign keys."""
    tables = "ARRAY['exchange.document', 'exchange.delivery', 'exchange.delivery_event']::regclass[]"
    constraints = await connection.fetch(
        f"SELECT conname, conrelid::regclass::text AS tab, contype::text AS contype, pg_get_constraintdef(oid) AS def "
        f"FROM pg_constraint WHERE contype IN ('p', 'u', 'f') AND (conrelid = ANY({tables}) "
        f"OR (contype = 'f' AND confrelid = ANY({tables})))"
    )
    named = {row["conname"] for row in constraints}
    indexes = await connection.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'exchange' AND tablename = ANY($1::text[])",
        list(TABLES),
    )
    foreign = [row for row in constraints if row["contype"] == "f"]
    keys = [row for row in constraints if row["contype"] != "f"]
    for row in foreign + keys:
        await connection.execute(f'ALTER TABLE {row["tab"]} DROP CONSTRAINT "{row["conname"]}"')
    plain = [row for row in indexes if row["indexname"] not in named]
    for row in plain:
        await connection.execute(f'DROP INDEX exchange."{row["indexname"]}"')
    first = [f'ALTER TABLE {row["tab"]} ADD CONSTRAINT "{row["conname"]}" {row["def"]}' for row in keys]
    first += [row["indexdef"] for row in plain]
    then = [f'ALTER TABLE {row["tab"]} ADD CONSTRAINT "{row["conname"]}" {row["def"]}' for row in foreign]
    return first, then


async def _history(dsn: str, progress: Progress, end: dt.datetime) -> tuple[float, float]:
    """Write the history month by month without indexes, then index it; return both durations."""
    connection = await asyncpg.connect(dsn, server_settings={"search_path": "exchange"})
    documents = DELIVERIES // RECIPIENTS
    starts = [*_month_starts(end)[1:], end]
    per_month = documents // MONTHS
    task = progress.add_task("writing the history (deliveries)", total=documents * RECIPIENTS)
    try:
        first_steps, then_steps = await _without_indexes(connection)
        started = time.perf_counter()
        first = 0
        for month in range(MONTHS):
            count = per_month if month < MONTHS - 1 else documents - first
            low, high = starts[month], starts[month + 1] if month < MONTHS - 1 else end
            await connection.execute(HISTORY_SQL, AGENCIES, len(AGENCIES), RECIPIENTS, low, high, first, count, end)
            first += count
            progress.advance(task, count * RECIPIENTS)
        written = time.perf_counter() - started
        await connection.execute("SET maintenance_work_mem = '1GB'")
        steps = progress.add_task(
            "indexing it (the exchange's keys and indexes)", total=len(first_steps) + len(then_steps)
        )
        for statement in first_steps + then_steps:
            await connection.execute(statement)
            progress.advance(steps)
        await connection.execute("ANALYZE document; ANALYZE delivery; ANALYZE delivery_event")
        indexed = time.perf_counter() - started - written
    finally:
        await connection.close()
    return written, indexed


async def _recent(dsn: str, count: int, now: dt.datetime) -> None:
    """``count`` new deliveries in the last minute (what an incremental refresh finds)."""
    connection = await asyncpg.connect(dsn, server_settings={"search_path": "exchange"})
    try:
        await connection.execute(
            HISTORY_SQL,
            AGENCIES,
            len(AGENCIES),
            RECIPIENTS,
            now - dt.timedelta(minutes=1),
            now,
            10**9,
            count // RECIPIENTS,
            now,
        )
    finally:
        await connection.close()


async def _timed(http: httpx.AsyncClient, path: str, params: dict[str, str], headers: dict[str, str]) -> list[float]:
    latencies = []
    for _ in range(REPEAT):
        begin = time.perf_counter()
        response = await http.get(path, params=params, headers=headers)
        latencies.append((time.perf_counter() - begin) * 1000)
        response.raise_for_status()
    return latencies


async def _raw(connection: asyncpg.Connection, sql: str, *args: Any) -> list[float]:
    latencies = []
    for _ in range(REPEAT):
        begin = time.perf_counter()
        await connection.fetch(sql, *args)
        latencies.append((time.perf_counter() - begin) * 1000)
    return latencies


async def main() -> None:
    print(
        f"history: {DELIVERIES:,} deliveries ({RECIPIENTS} per document, {MONTHS} months), "
        f"{len(AGENCIES)} agencies; each read {REPEAT} times",
        flush=True,
    )
    env = {"LIENTHONG_EXCHANGE__STATISTICS_REFRESH_SECONDS": "0"}  # the benchmark refreshes, timed
    async with production_topology(env) as running:
        dsn = asyncpg_dsn(running.database_url)
        now = dt.datetime.now(dt.UTC)
        async with httpx.AsyncClient(base_url=running.topology.url("gateway"), timeout=120) as http:
            admin = {"Authorization": f"Bearer {await token(http, 'admin', ADMIN_SECRET)}"}
            reader = await _directory(http, admin)
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns) as progress:
                written, indexed = await _history(dsn, progress, now - dt.timedelta(minutes=2))
            print(
                f"history written in {written:,.0f} s ({DELIVERIES / written:,.0f} deliveries/s), "
                f"indexed in {indexed:,.0f} s",
                flush=True,
            )

            database = Database(running.database_url, "exchange")
            refresher = StatisticsRefresher(database, timezone=TIMEZONE, settle_seconds=0)
            try:
                print("first refresh of the rollups over the whole history …", flush=True)
                begin = time.perf_counter()
                first = await refresher.refresh(until=now - dt.timedelta(minutes=1, seconds=30))
                full = time.perf_counter() - begin
                await _recent(dsn, 1000, dt.datetime.now(dt.UTC))
                begin = time.perf_counter()
                step = await refresher.refresh(until=dt.datetime.now(dt.UTC))
                incremental = time.perf_counter() - begin
            finally:
                await database.dispose()

            connection = await asyncpg.connect(dsn, server_settings={"search_path": "exchange"})
            try:
                rollup_rows = await connection.fetchval("SELECT count(*) FROM stat_agency_month")
                events = await connection.fetchval("SELECT count(*) FROM delivery_event")
                this_month = now.astimezone(dt.timezone(dt.timedelta(hours=7))).strftime("%Y-%m")
                index = now.year * 12 + now.month - 1 - (MONTHS - 1)
                first_month = f"{index // 12:04d}-{index % 12 + 1:02d}"
                sums = ", ".join(f"sum({c})" for c in ("received", "arrived", "arrived_in_time", "completed"))
                hist = ", ".join(f"sum(h01_{b:02d})" for b in range(33))
                raw_agency = (
                    f"SELECT agency_code, {sums}, {hist} FROM stat_agency_month "
                    "WHERE month BETWEEN $1 AND $2 GROUP BY agency_code"
                )
                raw_month = (
                    f"SELECT month, {sums}, {hist} FROM stat_agency_month WHERE month BETWEEN $1 AND $2 GROUP BY month"
                )
                district = DISTRICTS[0]
                subtree = [district, *COMMUNES[district]]
                raw_subtree = (
                    f"SELECT month, {sums}, {hist} FROM stat_agency_month WHERE month BETWEEN $1 AND $2 "
                    "AND agency_code = ANY($3) GROUP BY month"
                )
                months = {"from": first_month, "to": this_month}
                cases = [
                    ("summary, province", "/v1/statistics/summary", months, raw_agency, (first_month, this_month)),
                    ("levels, province", "/v1/statistics/levels", months, raw_agency, (first_month, this_month)),
                    ("months, province", "/v1/statistics/months", months, raw_month, (first_month, this_month)),
                    (
                        "months, a district's subtree",
                        "/v1/statistics/months",
                        {**months, "root": district},
                        raw_subtree,
                        (first_month, this_month, subtree),
                    ),
                    (
                        "agencies, slowest first",
                        "/v1/statistics/agencies",
                        {**months, "sort": "slowest"},
                        raw_agency,
                        (first_month, this_month),
                    ),
                    (
                        "agencies, one month",
                        "/v1/statistics/agencies",
                        {"from": this_month, "to": this_month},
                        raw_agency,
                        (this_month, this_month),
                    ),
                    (
                        "levels, XLSX export",
                        "/v1/statistics/levels/export",
                        {**months, "format": "xlsx"},
                        raw_agency,
                        (first_month, this_month),
                    ),
                    (
                        "agencies, CSV export",
                        "/v1/statistics/agencies/export",
                        {**months, "format": "csv"},
                        raw_agency,
                        (first_month, this_month),
                    ),
                ]
                rows = []
                for label, path, params, sql, args in cases:
                    through = _percentiles(await _timed(http, path, params, reader))
                    raw = _percentiles(await _raw(connection, sql, *args))
                    rows.append((label, through, raw))
                print("once: the per-level figures as a scan of the year's history …", flush=True)
                begin = time.perf_counter()
                await connection.fetch(SCAN_SQL, now - dt.timedelta(days=365))
                scan = time.perf_counter() - begin
            finally:
                await connection.close()

    print(f"\nhistory: {DELIVERIES:,} deliveries, {events:,} status changes; {rollup_rows:,} rollup rows")
    print(
        f"first refresh: {full:,.1f} s for {first.changes:,} changes ({first.changes / full:,.0f} changes/s); "
        f"incremental refresh after 1,000 new deliveries: {incremental * 1000:,.0f} ms ({step.changes:,} changes)"
    )
    print("\nreads, one at a time: through the gateway p50 / p95 ms | raw rollup query p50 / p95 ms")
    for label, (p50, p95), (r50, r95) in rows:
        print(f"  {label:<32} {p50:7.1f} / {p95:7.1f} | {r50:6.2f} / {r95:6.2f}")
    print(f"the same per-level figures as a scan of the history: {scan * 1000:,.0f} ms (once)")
    print("target: p95 under 100 ms through the gateway at 10,000,000 deliveries")
