"""The statistics: a district with two communes and a department exchange documents; part of the
history is moved into a past month (a seeded month), the rollups are refreshed, and the tables,
exports and business metrics are read as the statistics reader, on both databases."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from openpyxl import load_workbook
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from services.exchange.dependencies import ExchangeRuntime
from services.exchange.models import Delivery, DeliveryEvent, Document
from services.exchange.statistics.histogram import BOUNDS, bucket_of, percentile
from shared.config import SERVICE_NAMES
from shared.db import utcnow
from shared.roles import Role
from tests.conftest import TEMPLATES, running_system
from tests.helpers import Api, Client, advance, assert_problem, delivery_for, random_code, recall, send_ok

SEEDED = dt.datetime(2026, 10, 5, 1, 0, tzinfo=dt.UTC)  # 08:00 in Hà Nội, 5 October 2026
MINUTES = 60
TABLES = ("/v1/statistics/summary", "/v1/statistics/levels", "/v1/statistics/months", "/v1/statistics/agencies")


@dataclass
class World:
    api: Api
    district: Client
    commune_1: Client
    commune_2: Client
    department: Client
    reader: dict[str, str]
    agency: Client
    this_month: str

    @property
    def exchange(self) -> ExchangeRuntime:
        return cast(ExchangeRuntime, self.api.service_runtime("exchange"))

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = await self.api.http.get(path, params=params, headers=self.reader)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def execute(world: World, statement: Any) -> None:
    async with world.exchange.db.session() as session:
        await session.execute(statement)


async def seed_times(world: World, delivery_id: str, offsets: dict[str, int]) -> None:
    """Move a delivery into the seeded month: created at SEEDED, each status ``offsets`` minutes later."""
    key = uuid.UUID(delivery_id)
    await execute(
        world,
        update(Delivery)
        .where(Delivery.id == key)
        .values(created_at=SEEDED, arrival_deadline=SEEDED + dt.timedelta(hours=10)),
    )
    for status, minutes in offsets.items():
        await execute(
            world,
            update(DeliveryEvent)
            .where(DeliveryEvent.delivery_id == key, DeliveryEvent.status == status)
            .values(created_at=SEEDED + dt.timedelta(minutes=minutes)),
        )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    var = tmp_path_factory.mktemp("statistics") / "var"
    exchange = {"statistics_refresh_seconds": 0, "statistics_settle_seconds": 0}
    if request.param == "postgres":
        async with TEMPLATES.pg_clone() as url, running_system(var, url, exchange=exchange) as api:
            yield await build(api)
    else:
        async with running_system(var, exchange=exchange) as api:
            yield await build(api)


async def build(api: Api) -> World:
    province = await api.create_agency(random_code(), level="province")
    district = await api.create_agency(random_code(), level="district", parent_code=province["code"])
    communes = [await api.create_agency(random_code(), level="commune", parent_code=district["code"]) for _ in "12"]
    department = await api.create_agency(random_code(), level="department", parent_code=province["code"])
    clients = [await api.agency_client(a["code"]) for a in (district, *communes, department)]
    created = await api.http.post(
        f"/v1/agencies/{province['code']}/clients",
        json={"name": "thống kê", "role": Role.STATISTICS},
        headers=await api.admin(),
    )
    assert created.status_code == 201, created.text
    token = await api.token(created.json()["client_id"], created.json()["client_secret"])
    reader = {"Authorization": f"Bearer {token.json()['access_token']}"}
    this_month = utcnow().astimezone(dt.timezone(dt.timedelta(hours=7))).strftime("%Y-%m")
    return World(api, *clients, reader=reader, agency=clients[0], this_month=this_month)


@pytest.fixture(scope="module")
async def history(world: World) -> World:
    """The department sends one document to the district and both communes (moved to October);
    the district sends one to commune 1 this month, left pending and overdue."""
    d, c1, c2, s = world.district, world.commune_1, world.commune_2, world.department
    first = await send_ok(world.api, s, [d, c1, c2])
    # a further 05 (a progress note) is logged, not counted again
    await advance(world.api, c1, delivery_for(first, c1), ["01", "03", "04", "05", "05", "06"])
    await advance(world.api, c2, delivery_for(first, c2), ["01"])
    await advance(world.api, d, delivery_for(first, d), ["01", "03"])
    assert (await recall(world.api, s, first["id"], "Sai sót", recipients=[c2.agency_code])).status_code == 200
    await advance(world.api, c2, delivery_for(first, c2), ["15"])
    # commune 1 answers in 30 min (in time), registers in 2 h and completes in 3 days; commune 2
    # answers in 20 h (late), the district in 5 min
    await seed_times(world, delivery_for(first, c1), {"pending": 0, "01": 30, "03": 120, "06": 3 * 24 * 60})
    await seed_times(world, delivery_for(first, c1), {"04": 180, "05": 240})
    await seed_times(world, delivery_for(first, c2), {"pending": 0, "01": 20 * 60, "13": 21 * 60, "15": 22 * 60})
    await seed_times(world, delivery_for(first, d), {"pending": 0, "01": 5, "03": 10})
    await execute(world, update(Document).where(Document.id == uuid.UUID(first["id"])).values(created_at=SEEDED))
    # the district registered it (03) but has not completed it by its due date: overdue too
    late = update(Delivery).where(Delivery.id == uuid.UUID(delivery_for(first, d)))
    await execute(world, late.values(due_date=dt.date(2026, 10, 20)))
    second = await send_ok(world.api, d, [c1])
    overdue = update(Delivery).where(Delivery.id == uuid.UUID(delivery_for(second, c1)))
    await execute(world, overdue.values(arrival_deadline=utcnow() - dt.timedelta(hours=1)))
    report = await world.exchange.statistics_refresher.refresh()
    assert report.changes == 14  # 4 pending, 10 statuses (recall included); the repeated 05 not counted
    return world


def row_of(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    [row] = [r for r in rows if r[key] == value]
    return row


def test_percentiles_come_from_fixed_buckets() -> None:
    assert bucket_of(0) == 0 and bucket_of(59.9) == 0 and bucket_of(60) == 1 and bucket_of(10**9) == len(BOUNDS)
    counts = [0] * (len(BOUNDS) + 1)
    counts[bucket_of(45 * MINUTES)] = 10  # ten between 45 min and 1 h
    assert percentile(counts, 0.5) == 45 * MINUTES + 15 * MINUTES * 0.5
    assert percentile([0] * len(counts), 0.5) is None
    counts[-1] = 90  # past 30 days: its lower bound
    assert percentile(counts, 0.9) == BOUNDS[-1]


async def test_the_seeded_month_per_agency_of_a_subtree(history: World) -> None:
    w = history
    table = await w.get("/v1/statistics/agencies", root=w.district.agency_code, **{"from": "2026-10", "to": "2026-10"})
    assert (table["from"], table["to"], table["root"]) == ("2026-10", "2026-10", w.district.agency_code)
    assert [r["agency_code"] for r in table["rows"]] == sorted(
        [w.district.agency_code, w.commune_1.agency_code, w.commune_2.agency_code]
    )
    c1 = row_of(table["rows"], "agency_code", w.commune_1.agency_code)
    assert (c1["documents_received"], c1["answered_01"], c1["answered_01_in_time"], c1["completed"]) == (1, 1, 1, 1)
    assert c1["answered_01_in_time_share"] == 1.0 and c1["level"] == "commune"
    assert 0.5 <= c1["median_hours_to_01"] < 0.75  # the 30-45 min bucket
    assert 2 <= c1["median_hours_to_03"] < 3 and 72 <= c1["p90_hours_to_06"] < 96
    c2 = row_of(table["rows"], "agency_code", w.commune_2.agency_code)
    assert (c2["answered_01"], c2["answered_01_in_time"], c2["answered_01_in_time_share"]) == (1, 0, 0.0)
    assert 18 <= c2["median_hours_to_01"] < 24 and c2["median_hours_to_03"] is None
    assert c2["last_active_at"] is not None
    # the sender is outside the subtree: its figures are in its own row
    everyone = await w.get("/v1/statistics/agencies", sort="sent", **{"from": "2026-10", "to": "2026-10"})
    s = row_of(everyone["rows"], "agency_code", w.department.agency_code)
    assert (s["documents_sent"], s["deliveries_sent"], s["recipients_reached"]) == (1, 3, 3)
    assert (s["recalls_requested"], s["recalls_agreed"]) == (1, 1)
    slowest = await w.get("/v1/statistics/agencies", sort="slowest", limit=1, **{"from": "2026-10", "to": "2026-10"})
    assert [r["agency_code"] for r in slowest["rows"]] == [w.commune_2.agency_code]


async def test_levels_months_summary_and_adoption(history: World) -> None:
    w = history
    root = w.district.agency_code
    levels = await w.get("/v1/statistics/levels", root=root, **{"from": "2026-10", "to": w.this_month})
    assert [r["level"] for r in levels["rows"]] == ["district", "commune"]
    communes = row_of(levels["rows"], "level", "commune")
    assert (communes["agencies"], communes["documents_received"], communes["answered_01_in_time"]) == (2, 3, 1)
    # the communes acted only in October (this month commune 1 only received): the adoption figure
    # counts the last 30 days; the district sent this month
    assert (communes["agencies_active_30d"], communes["adoption_share"], communes["overdue_now"]) == (0, 0.0, 1)
    district = row_of(levels["rows"], "level", "district")
    assert (district["agencies"], district["agencies_active_30d"], district["adoption_share"]) == (1, 1, 1.0)
    assert district["overdue_now"] == 1  # past its due date
    months = await w.get("/v1/statistics/months", root=root, **{"from": "2026-09", "to": w.this_month})
    assert months["rows"][0] == {**months["rows"][0], "month": "2026-09", "documents_received": 0}
    october = row_of(months["rows"], "month", "2026-10")
    now = row_of(months["rows"], "month", w.this_month)
    assert (october["documents_received"], now["documents_received"], now["documents_sent"]) == (3, 1, 1)
    summary = (await w.get("/v1/statistics/summary", root=root, **{"from": "2026-10", "to": w.this_month}))["rows"]
    assert summary[0]["agencies"] == 3 and summary[0]["agencies_active_30d"] == 1 and summary[0]["overdue_now"] == 2
    assert (await w.get("/v1/statistics/summary", level="commune", root=root))["rows"][0]["agencies"] == 2


async def test_an_incremental_refresh_counts_each_change_once(history: World) -> None:
    w = history
    before = (await w.get("/v1/statistics/summary", **{"from": "2026-10", "to": w.this_month}))["rows"][0]
    second = await w.api.http.get("/v1/inbox", headers=w.commune_1.auth)
    [pending] = [item for item in second.json()["items"] if item["sender_code"] == w.district.agency_code]
    await advance(w.api, w.commune_1, pending["delivery_id"], ["01"])
    await w.exchange.statistics_refresher.refresh()
    await w.exchange.statistics_refresher.refresh()  # nothing new: nothing counted twice
    after = (await w.get("/v1/statistics/summary", **{"from": "2026-10", "to": w.this_month}))["rows"][0]
    assert after["answered_01"] == before["answered_01"] + 1
    assert after["documents_sent"] == before["documents_sent"] and after["overdue_now"] == before["overdue_now"] - 1
    # counted bit by bit or all at once (`lienthong statistics refresh --rebuild`): the same tables
    tables = {path: await w.get(path, **{"from": "2026-10", "to": w.this_month}) for path in TABLES}
    report = await w.exchange.statistics_refresher.refresh(rebuild=True)
    assert report.changes == 15
    for path, table in tables.items():
        assert (await w.get(path, **{"from": "2026-10", "to": w.this_month}))["rows"] == table["rows"], path


async def test_exports_have_the_json_columns(history: World) -> None:
    w = history
    params = {"root": w.district.agency_code, "from": "2026-10", "to": "2026-10"}
    table = await w.get("/v1/statistics/agencies", **params)
    answer = await w.api.http.get("/v1/statistics/agencies/export", params=params, headers=w.reader)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert list(rows[0]) == list(table["rows"][0])
    assert [r["agency_code"] for r in rows] == [r["agency_code"] for r in table["rows"]]
    assert rows[0]["agency_name"] == table["rows"][0]["agency_name"]  # Vietnamese, as given
    xlsx = await w.api.http.get("/v1/statistics/levels/export", params={**params, "format": "xlsx"}, headers=w.reader)
    assert xlsx.status_code == 200 and "attachment" in xlsx.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True)["levels"]
    header, *values = [list(r) for r in sheet.iter_rows(values_only=True)]
    levels = (await w.get("/v1/statistics/levels", **params))["rows"]
    assert header == list(levels[0]) and [v[header.index("documents_received")] for v in values] == [
        r["documents_received"] for r in levels
    ]


async def test_bad_selections_are_refused_and_agencies_are_not_readers(history: World) -> None:
    w, get = history, history.api.http.get
    answer = await get("/v1/statistics/levels", params={"from": "2026-10", "to": "2026-01"}, headers=w.reader)
    assert_problem(answer, 422, "statistics_range_invalid")
    assert_problem(
        await get("/v1/statistics/levels", params={"root": "000.00.99.Z99"}, headers=w.reader),
        404,
        "statistics_agency_not_found",
    )
    assert_problem(
        await get("/v1/statistics/months", params={"level": "galaxy"}, headers=w.reader),
        404,
        "statistics_level_not_found",
    )
    assert (await get("/v1/statistics/months", params={"from": "2026-13"}, headers=w.reader)).status_code in (400, 422)
    assert (await get("/v1/statistics/nope/export", headers=w.reader)).status_code in (400, 422)
    assert (await get("/v1/statistics/summary", headers=w.agency.auth)).status_code == 403


async def test_business_metrics_by_level_and_status(history: World) -> None:
    metrics = (await history.api.http.get("/services/exchange/metrics")).text
    assert 'lienthong_deliveries{level="commune",status="06"} 1.0' in metrics
    assert 'lienthong_delivery_statuses_total{level="commune",status="05"} 1.0' in metrics  # the repeat not counted
    assert 'lienthong_delivery_status_latency_seconds_bucket{le="3600.0",level="commune",status="01"}' in metrics
    assert 'lienthong_deliveries_overdue{level="commune"}' in metrics
    assert 'lienthong_transfer_failures{channel="push"} 0.0' in metrics
    assert 'lienthong_consumer_lag_messages{queue="exchange.dispatch",service="exchange"}' in metrics
    assert 'lienthong_dead_letters{queue="exchange.dispatch",service="exchange"} 0.0' in metrics
    assert history.commune_1.agency_code not in metrics  # no agency label


DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\b((?:lienthong|process)_[a-z0-9_]+)")


def queried_metrics() -> dict[str, set[str]]:
    """The metric names each of deploy/'s files queries (the dashboard's panels, the alert rules)."""
    dashboard = json.loads((DEPLOY / "grafana" / "lienthong.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p["targets"] for p in panels)
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {"OutboxLagging", "DeadLetters", "OverdueGrowing", "HighErrorRate"} <= {a["alert"] for a in alerts}
    return {
        "dashboard": {m for p in panels for t in p["targets"] for m in METRIC.findall(t["expr"])},
        "alerts": {m for a in alerts for m in METRIC.findall(a["expr"])},
    }


async def test_the_dashboard_and_the_alerts_query_only_exported_metrics(history: World) -> None:
    exported: set[str] = set()
    for path in ("/metrics", *(f"/services/{name}/metrics" for name in SERVICE_NAMES)):
        answer = await history.api.http.get(path)
        assert answer.status_code == 200, path
        exported |= {s.name for family in text_string_to_metric_families(answer.text) for s in family.samples}
    for source, names in queried_metrics().items():
        assert names and sorted(names - exported) == [], f"{source} queries metrics no service exports"
