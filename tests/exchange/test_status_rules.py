"""Statuses as real traffic sends them (forward jumps, repeated 04/05, stale reports by the
reporter's own timestamp, StaffInfo, 15/16 answering an update), "5" = "05" for duplicate numbers,
and Decree 30 deadlines (urgent documents within office hours). One system per database for the
module: every test makes agencies of its own."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from services.exchange.calendar import WorkingCalendar
from services.exchange.document.repository import _SAME_NUMBER
from shared.db import create_engine
from shared.migrations import _run, current_revision, upgrade
from tests.conftest import TEMPLATES, running_system
from tests.helpers import (
    Api,
    Client,
    advance,
    assert_problem,
    delivery_for,
    delivery_seen,
    document,
    exchange_db,
    get_json,
    recall,
    send_ok,
    statuses,
)

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
STAFF = {"department": "Văn phòng", "staff": "Trần Thị B", "email": "vanthu@example.gov.vn", "mobile": "0912345678"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    var = tmp_path_factory.mktemp(f"status-rules-{request.param}") / "var"
    if request.param == "sqlite":
        async with running_system(var) as caller:
            yield caller
        return
    async with TEMPLATES.pg_clone() as url, running_system(var, url) as caller:
        yield caller


async def post(api: Api, client: Client, delivery_id: str, status: str, **body: Any) -> dict[str, Any]:
    response = await api.http.post(
        f"/v1/deliveries/{delivery_id}/status", json={"status": status, **body}, headers=client.auth
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def at(minutes: int) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat()


async def fresh(api: Api, **metadata: Any) -> tuple[Client, Client, dict[str, Any], str]:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient], **metadata)
    return sender, recipient, accepted, delivery_for(accepted, recipient)


async def feed_statuses(api: Api, sender: Client) -> list[dict[str, Any]]:
    page = await get_json(api, sender, "/v1/feed")
    return [e["data"] for e in page["entries"] if e["type"] == "delivery.status_changed"]


async def test_forward_jumps_are_applied(api: Api) -> None:
    for path in (["01", "03", "05"], ["01", "03", "06"], ["01", "03", "04", "06"]):
        sender, recipient, accepted, delivery_id = await fresh(api)
        await advance(api, recipient, delivery_id, path[:-1])
        jumped = await post(api, recipient, delivery_id, path[-1])
        assert (jumped["previous_status"], jumped["status"], jumped["outcome"]) == (path[-2], path[-1], "applied")
        seen = delivery_seen(await document(api, sender, accepted["id"]), recipient)
        assert (seen["status"], statuses(seen)) == (path[-1], ["pending", *path])


async def test_a_repeated_04_or_05_is_logged_with_its_note_and_staff_without_moving(api: Api) -> None:
    sender, recipient, accepted, delivery_id = await fresh(api)
    await advance(api, recipient, delivery_id, ["01", "03", "04"])
    again = await post(api, recipient, delivery_id, "04", note="Giao lại cho Phòng Tổng hợp", staff=STAFF)
    assert (again["previous_status"], again["status"], again["outcome"]) == ("04", "04", "repeated")
    await advance(api, recipient, delivery_id, ["05"])
    for code, note in (("05", "Đã dự thảo báo cáo"), ("04", "Phân công thêm Phòng Kế hoạch")):
        repeated = await post(api, recipient, delivery_id, code, note=note)
        assert (repeated["previous_status"], repeated["outcome"]) == ("05", "repeated")

    seen = delivery_seen(await document(api, sender, accepted["id"]), recipient)
    assert seen["status"] == "05"  # never back to 04
    assert statuses(seen) == ["pending", "01", "03", "04", "04", "05", "05", "04"]
    assert [e["outcome"] for e in seen["history"]] == [
        None,
        *["applied"] * 3,
        "repeated",
        "applied",
        "repeated",
        "repeated",
    ]
    assert seen["history"][4]["note"] == "Giao lại cho Phòng Tổng hợp"
    assert seen["history"][4]["staff"] == STAFF
    # the sender hears of each, marked
    told = await feed_statuses(api, sender)
    assert [(s["status"], s["outcome"]) for s in told][-3:] == [
        ("05", "applied"),
        ("05", "repeated"),
        ("04", "repeated"),
    ]
    assert told[3]["staff"] == STAFF
    # after 06 a repeat is refused as before
    await advance(api, recipient, delivery_id, ["06"])
    body = assert_problem(
        await api.http.post(f"/v1/deliveries/{delivery_id}/status", json={"status": "05"}, headers=recipient.auth),
        409,
        "delivery_transition_invalid",
    )
    assert (body["current_status"], body["allowed_next"]) == ("06", [])


async def test_a_report_older_than_the_one_stored_is_recorded_as_stale(api: Api) -> None:
    """Packets arrive out of order: 06 (stamped 10:00) before 05 (stamped 09:00). The late 05 is
    answered 200 with outcome stale, kept in the history with its own timestamp, and changes nothing
    (no event for the sender); reports without a timestamp are compared by order only."""
    sender, recipient, accepted, delivery_id = await fresh(api)
    await post(api, recipient, delivery_id, "01", timestamp=at(0))
    await post(api, recipient, delivery_id, "03", timestamp=at(60), staff=STAFF)
    told_before = await feed_statuses(api, sender)

    late = await post(api, recipient, delivery_id, "04", timestamp=at(30), note="Giao Phòng A")
    assert (late["previous_status"], late["status"], late["outcome"]) == ("03", "04", "stale")
    assert dt.datetime.fromisoformat(late["timestamp"]) == T0 + dt.timedelta(minutes=30)
    seen = delivery_seen(await document(api, sender, accepted["id"]), recipient)
    assert seen["status"] == "03"
    last = seen["history"][-1]
    assert (last["status"], last["outcome"], last["note"]) == ("04", "stale", "Giao Phòng A")
    assert dt.datetime.fromisoformat(last["timestamp"]) == T0 + dt.timedelta(minutes=30)
    assert dt.datetime.fromisoformat(last["created_at"]) > dt.datetime.fromisoformat(last["timestamp"])
    assert seen["history"][-2]["staff"] == STAFF
    assert await feed_statuses(api, sender) == told_before

    # the same second is not older; a finished delivery answers a stale report, not 409
    assert (await post(api, recipient, delivery_id, "06", timestamp=at(60)))["outcome"] == "applied"
    stale = await post(api, recipient, delivery_id, "05", timestamp=at(59))
    assert (stale["previous_status"], stale["outcome"]) == ("06", "stale")
    assert delivery_seen(await document(api, sender, accepted["id"]), recipient)["status"] == "06"


async def test_bad_timestamps_and_staff_are_refused_and_change_nothing(api: Api) -> None:
    sender, recipient, accepted, delivery_id = await fresh(api)
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    for body in (
        {"timestamp": future},
        {"timestamp": "2026-11-20T08:00:00"},  # no time zone
        {"timestamp": "hôm qua"},
        {"timestamp": "0001-01-01T00:00:00+23:59"},  # out of range once in UTC
        {"staff": {"staff": "x" * 101}},
        {"staff": {"phone": "0912"}},  # not a StaffInfo field
        {"staff": {"department": "Văn\x1b[31m phòng"}},
    ):
        response = await api.http.post(
            f"/v1/deliveries/{delivery_id}/status", json={"status": "01", **body}, headers=recipient.auth
        )
        assert_problem(response, 422, "validation_failed")
    assert statuses(delivery_seen(await document(api, sender, accepted["id"]), recipient)) == ["pending"]


async def test_15_and_16_answer_an_update_once_and_a_recall_first(api: Api) -> None:
    sender, recipient, original, _ = await fresh(api)
    update = await send_ok(
        api,
        sender,
        [recipient],
        relation={"kind": "update", "document_id": original["id"], "metadata_changed": True},
    )
    delivery_id = delivery_for(update, recipient)
    await advance(api, recipient, delivery_id, ["01"])
    agreed = await post(api, recipient, delivery_id, "15", note="Đã cập nhật")
    assert (agreed["previous_status"], agreed["status"], agreed["outcome"]) == ("01", "15", "applied")
    seen = delivery_seen(await document(api, sender, update["id"]), recipient)
    assert (seen["status"], seen["update_answer"], seen["recall_status"]) == ("01", "15", None)
    assert (await feed_statuses(api, sender))[-1]["answers"] == "update"
    response = await api.http.post(
        f"/v1/deliveries/{delivery_id}/status", json={"status": "16"}, headers=recipient.auth
    )
    assert_problem(response, 409, "delivery_transition_invalid")
    assert (await document(api, recipient, update["id"]))["id"] == update["id"]  # still readable

    # a recall of the update is answered first, by the same codes
    assert (await recall(api, sender, update["id"], "Gửi nhầm")).status_code == 200
    refused = await post(api, recipient, delivery_id, "16")
    assert refused["previous_status"] == "13"
    seen = delivery_seen(await document(api, sender, update["id"]), recipient)
    assert (seen["recall_status"], seen["update_answer"]) == ("16", "15")
    assert (await feed_statuses(api, sender))[-1]["answers"] == "recall"


async def test_5_and_05_are_the_same_number(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    await send_ok(api, sender, [recipient], code_number="5", code_notation="TB-UBND")
    for number in ("05", "005"):
        again = await api.send(sender, [recipient.agency_code], code_number=number, code_notation="TB-UBND")
        body = assert_problem(again, 409, "document_duplicate")
        assert body["document_id"]
    await send_ok(api, sender, [recipient], code_number="05", code_notation="KH-UBND")  # another notation
    await send_ok(api, sender, [recipient], code_number="50", code_notation="TB-UBND")  # another number
    await send_ok(api, sender, [recipient], code_number="05", code_notation="TB-UBND", promulgation_date="2025-11-20")


async def test_the_duplicate_number_check_uses_the_number_index(api: Api) -> None:
    """The normalised comparison is the index's own expression: the planner uses the index, with
    the query's parameters bound as a send binds them."""
    async with exchange_db(api).engine.connect() as conn:
        sql = str(_SAME_NUMBER.compile(dialect=conn.dialect))
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        if conn.dialect.name == "sqlite":
            cursor = await driver.execute("EXPLAIN QUERY PLAN " + sql, (1,) * sql.count("?"))
            plan = [str(row) for row in await cursor.fetchall()]
        else:
            await driver.execute("SET enable_seqscan = off")  # a tiny table: make the planner show its choice
            plan = [row[0] for row in await driver.fetch("EXPLAIN " + sql, "000.00.00.H41", "5", "TB-UBND", 2026, 1)]
            await driver.execute("RESET enable_seqscan")
    assert any("uq_document_number" in line for line in plan), plan


async def test_an_urgent_document_is_due_within_office_hours(api: Api) -> None:
    settings = api.settings.exchange
    calendar = WorkingCalendar(
        settings.holidays,
        settings.timezone,
        office_hours=settings.office_hours,
        urgent_hours=settings.urgent_deadline_hours,
    )
    for urgency in (0, 1, 3):
        sender, recipient, accepted, _ = await fresh(api, urgency=urgency)
        seen = await document(api, sender, accepted["id"])
        created = dt.datetime.fromisoformat(seen["created_at"])
        deadline = dt.datetime.fromisoformat(delivery_seen(seen, recipient)["arrival_deadline"])
        assert deadline == calendar.arrival_deadline(created, urgent=urgency > 0), urgency


async def test_migration_0007_refuses_numbers_that_collide_and_goes_back(tmp_path: Path) -> None:
    """Documents already stored as "5" and "05" by one sender in one year would break the new index:
    the migration stops and names them; without them it goes up, and down again."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'exchange.db'}"
    await upgrade("exchange", url, "0005")
    engine = create_engine(url, None, poolclass=NullPool)
    insert = sa.text(
        "INSERT INTO document (id, sender_code, sender_client_id, kind, promulgation_year, code_number,"
        " code_notation, type_name, subject, promulgation_date, urgency, steering_type, created_at)"
        " VALUES (:id, '000.00.00.H41', 'c', 'new', 2026, :number, 'TB-UBND', 'Thông báo', 'x', '2026-11-20',"
        " 0, 0, '2026-11-20 00:00:00')"
    )
    try:
        async with engine.begin() as conn:
            for number in ("5", "05"):
                await conn.execute(insert, {"id": uuid.uuid4().hex, "number": number})
        with pytest.raises(RuntimeError, match=r"000\.00\.00\.H41 5/TB-UBND in 2026 \(2 documents\)"):
            await upgrade("exchange", url)
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE document SET kind = 'update' WHERE code_number = '05'"))
        await upgrade("exchange", url, "0007")
        assert await current_revision("exchange", url) == "0007"
        async with engine.connect() as conn:
            await conn.run_sync(_run, "exchange", "downgrade", revision="0005")
            await conn.commit()
        assert await current_revision("exchange", url) == "0005"
    finally:
        await engine.dispose()
