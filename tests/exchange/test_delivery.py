"""Delivery statuses through the gateway in the national order (pending → 01 → 03 → 04 → 05 → 06,
01 → 02), recall answers (13 → 15 / 16) and overdue deliveries with the working-day calendar."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import update

from services.exchange.calendar import WorkingCalendar
from services.exchange.delivery.service import accepted_next
from services.exchange.delivery.status import TRANSITIONS
from services.exchange.models import Delivery
from shared.db import utcnow
from tests.helpers import (
    Api,
    advance,
    assert_problem,
    delivery_for,
    delivery_seen,
    document,
    exchange_db,
    inbox_ids,
    inbox_items,
    random_code,
    recall,
    received_ids,
    report,
    send_ok,
    sent_ids,
    sent_items,
    snapshot,
    statuses,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


NATIONAL = ["01", "02", "03", "04", "05", "06"]


# What TRANSITIONS says, written out: the API must answer exactly this in `allowed_next`.
ALLOWED_NEXT: dict[str, list[str]] = {
    "pending": ["01"],
    "01": ["02", "03"],
    "02": [],
    "03": ["04", "05", "06"],
    "04": ["04", "05", "06"],  # 04 again: logged, the status stays
    "05": ["04", "05", "06"],
    "06": [],
}


# How a recipient brings a fresh delivery to each status.
PATHS: dict[str, list[str]] = {
    "pending": [],
    "01": ["01"],
    "02": ["01", "02"],
    "03": ["01", "03"],
    "04": ["01", "03", "04"],
    "05": ["01", "03", "04", "05"],
    "06": ["01", "03", "04", "05", "06"],
}


def local_today() -> dt.date:
    return WorkingCalendar().today(utcnow())


# --- delivery statuses -----------------------------------------------------------------------


async def test_full_path_01_to_06(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = accepted["deliveries"][0]["id"]

    previous = "pending"
    for status in ["01", "03", "04", "05", "06"]:
        response = await report(api, recipient, delivery_id, status, note=f"bước {status}")
        assert response.status_code == 200, response.text
        assert (response.json()["previous_status"], response.json()["status"]) == (previous, status)
        previous = status

    [delivery] = (await document(api, sender, accepted["id"]))["deliveries"]
    assert delivery["status"] == "06"
    assert statuses(delivery) == ["pending", "01", "03", "04", "05", "06"]
    assert [e["note"] for e in delivery["history"]] == [None, "bước 01", "bước 03", "bước 04", "bước 05", "bước 06"]

    done = await report(api, recipient, delivery_id, "01")
    body = assert_problem(done, 409, "delivery_transition_invalid")
    assert (body["current_status"], body["allowed_next"]) == ("06", [])


async def test_out_of_order_status_is_refused_with_the_allowed_next(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = accepted["deliveries"][0]["id"]

    for status in ["03", "06", "02"]:
        body = assert_problem(
            await report(api, recipient, delivery_id, status, note="x"), 409, "delivery_transition_invalid"
        )
        assert (body["current_status"], body["allowed_next"]) == ("pending", ["01"])
    for status in ["pending", "07", "1", ""]:  # not a national code at all
        assert_problem(await report(api, recipient, delivery_id, status), 422, "validation_failed")

    assert (await report(api, recipient, delivery_id, "01")).status_code == 200
    for status in ["01", "04", "06"]:
        body = assert_problem(await report(api, recipient, delivery_id, status), 409, "delivery_transition_invalid")
        assert (body["current_status"], sorted(body["allowed_next"])) == ("01", ["02", "03"])

    [delivery] = (await document(api, sender, accepted["id"]))["deliveries"]
    assert statuses(delivery) == ["pending", "01"]


async def test_rejection_needs_a_reason(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = accepted["deliveries"][0]["id"]
    assert (await report(api, recipient, delivery_id, "01")).status_code == 200

    assert_problem(await report(api, recipient, delivery_id, "02"), 422, "metadata_invalid")
    assert_problem(await report(api, recipient, delivery_id, "02", note="   "), 422, "metadata_invalid")
    [delivery] = (await document(api, sender, accepted["id"]))["deliveries"]
    assert (delivery["status"], statuses(delivery)) == ("01", ["pending", "01"])

    rejected = await report(api, recipient, delivery_id, "02", note="Gửi nhầm đơn vị")
    assert rejected.status_code == 200
    [delivery] = (await document(api, sender, accepted["id"]))["deliveries"]
    assert delivery["status"] == "02"
    assert delivery["history"][-1]["note"] == "Gửi nhầm đơn vị"
    body = assert_problem(await report(api, recipient, delivery_id, "03"), 409, "delivery_transition_invalid")
    assert body["allowed_next"] == []


# --- statuses: the national order --------------------------------------------------------------


def test_allowed_next_table_is_what_transitions_and_repeats_say() -> None:
    assert {k.value: accepted_next(k) for k in TRANSITIONS} == ALLOWED_NEXT


async def test_full_forward_path_pending_01_03_04_05_06(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = delivery_for(accepted, recipient)
    assert accepted["deliveries"][0]["status"] == "pending"

    previous = "pending"
    for status in ["01", "03", "04", "05", "06"]:
        response = await report(api, recipient, delivery_id, status, note=f"Bước {status}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["delivery_id"] == delivery_id
        assert body["document_id"] == accepted["id"]
        assert body["recipient_code"] == recipient.agency_code
        assert (body["previous_status"], body["status"]) == (previous, status)
        # the sender and the recipient both see the new status at once
        assert delivery_seen(await document(api, sender, accepted["id"]), recipient)["status"] == status
        assert delivery_seen(await document(api, recipient, accepted["id"]), recipient)["status"] == status
        [item] = await inbox_items(api, recipient)
        assert item["status"] == status
        previous = status

    seen = delivery_seen(await document(api, sender, accepted["id"]), recipient)
    assert statuses(seen) == ["pending", "01", "03", "04", "05", "06"]
    assert [e["actor_code"] for e in seen["history"]] == [sender.agency_code] + [recipient.agency_code] * 5
    assert [e["note"] for e in seen["history"]] == [None, "Bước 01", "Bước 03", "Bước 04", "Bước 05", "Bước 06"]
    [sent_item] = await sent_items(api, sender)
    assert sent_item["by_status"] == {"06": 1}


async def test_rejection_01_to_02_needs_a_note_and_ends_the_delivery(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = delivery_for(accepted, recipient)
    await advance(api, recipient, delivery_id, ["01"])
    before = await document(api, sender, accepted["id"])

    assert_problem(await report(api, recipient, delivery_id, "02"), 422, "metadata_invalid")
    assert_problem(await report(api, recipient, delivery_id, "02", note="  "), 422, "metadata_invalid")
    assert await document(api, sender, accepted["id"]) == before

    rejected = await report(api, recipient, delivery_id, "02", note="Gửi nhầm đơn vị")
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["previous_status"], rejected.json()["status"]) == ("01", "02")
    seen = delivery_seen(await document(api, sender, accepted["id"]), recipient)
    assert seen["status"] == "02"
    assert statuses(seen) == ["pending", "01", "02"]
    last = seen["history"][-1]
    assert (last["note"], last["actor_code"]) == ("Gửi nhầm đơn vị", recipient.agency_code)


async def test_every_invalid_jump_is_refused_with_the_allowed_next(api: Api) -> None:
    """From each status, every national code (and 15/16, with no recall pending) that TRANSITIONS
    does not allow (nor REPEATABLE) is refused with 409 delivery_transition_invalid, `current_status`
    and `allowed_next` exactly as they say; pending→03, 01→04, 04→03, 06→anything and
    02→anything are among them. Nothing changes."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    deliveries: dict[str, tuple[str, str]] = {}
    for state, path in PATHS.items():
        accepted = await send_ok(api, sender, [recipient], subject=f"Văn bản ở trạng thái {state}")
        delivery_id = delivery_for(accepted, recipient)
        await advance(api, recipient, delivery_id, path)
        deliveries[state] = (accepted["id"], delivery_id)
    before = await snapshot(api, sender, recipient)

    tried: list[tuple[str, str]] = []
    for state, (_document_id, delivery_id) in deliveries.items():
        for wanted in [*NATIONAL, "15", "16"]:
            if wanted in ALLOWED_NEXT[state]:
                continue
            response = await report(api, recipient, delivery_id, wanted, note="Ghi chú")
            body = assert_problem(response, 409, "delivery_transition_invalid")
            assert body["current_status"] == state, (state, wanted)
            assert body["allowed_next"] == ALLOWED_NEXT[state], (state, wanted)
            tried.append((state, wanted))
    for jump in [("pending", "03"), ("01", "04"), ("04", "03"), ("06", "01"), ("06", "06"), ("02", "03")]:
        assert jump in tried
    assert {w for s, w in tried if s == "06"} == {*NATIONAL, "15", "16"}
    assert {w for s, w in tried if s == "02"} == {*NATIONAL, "15", "16"}

    assert await snapshot(api, sender, recipient) == before
    for state, (document_id, _delivery_id) in deliveries.items():
        seen = delivery_seen(await document(api, sender, document_id), recipient)
        assert seen["status"] == state
        assert statuses(seen) == ["pending", *PATHS[state]]
        assert seen["recall_status"] is None


async def test_a_status_that_is_not_a_national_code_is_a_validation_error(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = delivery_for(accepted, recipient)
    for status in ["pending", "13", "07", "1", ""]:
        assert_problem(await report(api, recipient, delivery_id, status), 422, "validation_failed")
    assert statuses(delivery_seen(await document(api, sender, accepted["id"]), recipient)) == ["pending"]


async def test_only_the_recipient_reports_statuses(api: Api) -> None:
    sender, recipient, other_recipient, outsider = (
        await api.agency_client(),
        await api.agency_client(),
        await api.agency_client(),
        await api.agency_client(),
    )
    accepted = await send_ok(api, sender, [recipient, other_recipient])
    delivery_id = delivery_for(accepted, recipient)
    before = await document(api, sender, accepted["id"])

    for intruder in (sender, outsider, other_recipient):
        assert_problem(await report(api, intruder, delivery_id, "01"), 404, "delivery_not_found")
    assert_problem(await report(api, recipient, str(uuid.uuid4()), "01"), 404, "delivery_not_found")
    assert await document(api, sender, accepted["id"]) == before

    assert (await report(api, recipient, delivery_id, "01")).status_code == 200


# --- recall --------------------------------------------------------------------------------------


async def test_recall_agreed_by_one_recipient_and_refused_by_the_other(api: Api) -> None:
    sender, a, b = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [a, b])
    document_id = accepted["id"]
    attachment_id = accepted["attachments"][0]["id"]
    a_delivery, b_delivery = delivery_for(accepted, a), delivery_for(accepted, b)
    await advance(api, a, a_delivery, ["01"])

    response = await recall(api, sender, document_id, "Sai sót số liệu")
    assert response.status_code == 200, response.text
    requested = response.json()
    assert requested["document_id"] == document_id
    assert sorted(d["id"] for d in requested["deliveries"]) == sorted([a_delivery, b_delivery])

    seen = await document(api, sender, document_id)
    assert seen["recall_reason"] == "Sai sót số liệu"
    for recipient, history in ((a, ["pending", "01", "13"]), (b, ["pending", "13"])):
        delivery = delivery_seen(seen, recipient)
        assert delivery["recall_status"] == "13"
        assert statuses(delivery) == history
        last = delivery["history"][-1]
        assert (last["actor_code"], last["note"]) == (sender.agency_code, "Sai sót số liệu")
    assert delivery_seen(seen, a)["status"] == "01"  # the processing status is kept apart

    # while the recall is pending, it is answered before anything else
    for recipient, delivery_id, wanted in ((a, a_delivery, "03"), (b, b_delivery, "01"), (a, a_delivery, "02")):
        body = assert_problem(
            await report(api, recipient, delivery_id, wanted, note="x"), 409, "delivery_transition_invalid"
        )
        assert (body["current_status"], body["allowed_next"]) == ("13", ["15", "16"])
    [a_item] = await inbox_items(api, a)
    assert (a_item["status"], a_item["recall_status"]) == ("01", "13")
    assert delivery_seen(await document(api, a, document_id), a)["recall_status"] == "13"

    # A agrees: its copy is withdrawn
    agreed = await report(api, a, a_delivery, "15", note="Đồng ý thu hồi")
    assert agreed.status_code == 200, agreed.text
    assert (agreed.json()["previous_status"], agreed.json()["status"]) == ("13", "15")
    assert_problem(await api.http.get(f"/v1/documents/{document_id}", headers=a.auth), 404, "document_not_found")
    download = await api.http.get(f"/v1/documents/{document_id}/attachments/{attachment_id}", headers=a.auth)
    assert_problem(download, 404, "document_not_found")
    assert await inbox_ids(api, a) == []
    assert await received_ids(api, a) == []
    assert await received_ids(api, a, status="01") == []
    assert_problem(await report(api, a, a_delivery, "03"), 404, "delivery_not_found")
    assert_problem(await report(api, a, a_delivery, "16"), 404, "delivery_not_found")

    seen = await document(api, sender, document_id)
    a_seen = delivery_seen(seen, a)
    assert (a_seen["status"], a_seen["recall_status"]) == ("01", "15")
    assert statuses(a_seen) == ["pending", "01", "13", "15"]
    assert a_seen["history"][-1]["actor_code"] == a.agency_code
    assert a_seen["history"][-1]["note"] == "Đồng ý thu hồi"
    assert a_seen["overdue"] is False

    # B refuses: it keeps reading and goes on with its statuses
    refused = await report(api, b, b_delivery, "16", note="Đã ban hành kế hoạch thực hiện")
    assert refused.status_code == 200, refused.text
    assert (refused.json()["previous_status"], refused.json()["status"]) == ("13", "16")
    b_doc = await document(api, b, document_id)
    assert delivery_seen(b_doc, b)["recall_status"] == "16"
    download = await api.http.get(f"/v1/documents/{document_id}/attachments/{attachment_id}", headers=b.auth)
    assert download.status_code == 200
    assert await inbox_ids(api, b) == [document_id]
    await advance(api, b, b_delivery, ["01", "03"])
    # 15/16 without a pending recall
    for answer in ("15", "16"):
        body = assert_problem(await report(api, b, b_delivery, answer), 409, "delivery_transition_invalid")
        assert (body["current_status"], body["allowed_next"]) == ("03", ["04", "05", "06"])
    b_seen = delivery_seen(await document(api, sender, document_id), b)
    assert (b_seen["status"], b_seen["recall_status"]) == ("03", "16")
    assert statuses(b_seen) == ["pending", "13", "16", "01", "03"]


async def test_recall_again_targets_refusals_only_and_then_there_is_nothing_to_recall(api: Api) -> None:
    sender, a, b = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [a, b])
    document_id = accepted["id"]
    a_delivery, b_delivery = delivery_for(accepted, a), delivery_for(accepted, b)
    assert (await recall(api, sender, document_id, "Lần 1")).status_code == 200

    # every copy is 13: nothing more to recall
    before = await document(api, sender, document_id)
    body = assert_problem(await recall(api, sender, document_id, "Lần 1 bis"), 409, "recall_invalid")
    assert "detail" in body
    assert await document(api, sender, document_id) == before

    assert (await report(api, a, a_delivery, "15")).status_code == 200
    assert (await report(api, b, b_delivery, "16")).status_code == 200
    again = await recall(api, sender, document_id, "Lần 2")
    assert again.status_code == 200, again.text
    assert [d["id"] for d in again.json()["deliveries"]] == [b_delivery]
    seen = await document(api, sender, document_id)
    assert delivery_seen(seen, a)["recall_status"] == "15"
    assert delivery_seen(seen, b)["recall_status"] == "13"
    assert statuses(delivery_seen(seen, b)) == ["pending", "13", "16", "13"]

    # all are 13 or 15 now
    before = await document(api, sender, document_id)
    assert_problem(await recall(api, sender, document_id, "Lần 3"), 409, "recall_invalid")
    assert_problem(await recall(api, sender, document_id, "Lần 3", recipients=[a.agency_code]), 409, "recall_invalid")
    after = await document(api, sender, document_id)
    assert after == before
    assert after["recall_reason"] == "Lần 2"


async def test_recall_limited_to_some_recipients_affects_only_them(api: Api) -> None:
    sender, a, b = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [a, b])
    document_id = accepted["id"]
    a_delivery, b_delivery = delivery_for(accepted, a), delivery_for(accepted, b)

    # a recipient the document was not sent to: refused, nothing changes
    stranger = random_code("Z")
    before = await document(api, sender, document_id)
    body = assert_problem(
        await recall(api, sender, document_id, "Sai", recipients=[b.agency_code, stranger]), 422, "recipient_invalid"
    )
    assert body["unknown_recipients"] == [stranger]
    assert await document(api, sender, document_id) == before

    response = await recall(api, sender, document_id, "Gửi nhầm", recipients=[b.agency_code.lower()])
    assert response.status_code == 200, response.text
    assert [d["id"] for d in response.json()["deliveries"]] == [b_delivery]
    seen = await document(api, sender, document_id)
    assert delivery_seen(seen, a)["recall_status"] is None
    assert statuses(delivery_seen(seen, a)) == ["pending"]
    assert delivery_seen(seen, b)["recall_status"] == "13"

    await advance(api, a, a_delivery, ["01", "03"])  # A is not concerned
    body = assert_problem(await report(api, b, b_delivery, "01"), 409, "delivery_transition_invalid")
    assert body["allowed_next"] == ["15", "16"]
    # A has nothing to answer
    body = assert_problem(await report(api, a, a_delivery, "15"), 409, "delivery_transition_invalid")
    assert (body["current_status"], body["allowed_next"]) == ("03", ["04", "05", "06"])


async def test_recall_of_a_document_you_did_not_send_is_404(api: Api) -> None:
    sender, recipient, outsider = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    before = await document(api, sender, accepted["id"])
    for caller in (recipient, outsider):
        assert_problem(await recall(api, caller, accepted["id"], "Không phải của tôi"), 404, "document_not_found")
    assert_problem(await recall(api, sender, str(uuid.uuid4()), "Không có"), 404, "document_not_found")
    # a recall needs a reason
    no_reason = await api.http.post(f"/v1/documents/{accepted['id']}/recall", json={}, headers=sender.auth)
    assert_problem(no_reason, 422, "validation_failed")
    assert await document(api, sender, accepted["id"]) == before
    assert delivery_seen(before, recipient)["recall_status"] is None


# --- overdue -------------------------------------------------------------------------------------


def test_calendar_arrival_deadline_is_the_end_of_the_next_working_day() -> None:
    """The deadline is local midnight ending the first working day strictly after the local day of
    sending (Decree 30: register an incoming document the same day, at the latest the next working
    day). Weekends and holidays are skipped; the day is taken in Asia/Ho_Chi_Minh, not UTC."""
    calendar = WorkingCalendar()

    def at(day: str, time: str) -> dt.datetime:
        return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=HCM)

    def end_of(day: str) -> dt.datetime:
        return (dt.datetime.fromisoformat(day).replace(tzinfo=HCM) + dt.timedelta(days=1)).astimezone(dt.UTC)

    # Friday 20 Nov 2026 afternoon → end of Monday 23 (= 2026-11-23 17:00 UTC)
    friday = calendar.arrival_deadline(at("2026-11-20", "15:30"))
    assert friday == end_of("2026-11-23") == dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.UTC)
    assert friday.tzinfo is not None and friday.utcoffset() == dt.timedelta(0)
    # a weekday → the next day
    assert calendar.arrival_deadline(at("2026-11-18", "09:00")) == end_of("2026-11-19")
    # Saturday or Sunday → end of Monday: the first working day after the day of sending. A document
    # arriving on a day off is registered on the next working day, which is the deadline; a Friday
    # 23:59 and a Saturday 00:01 send get the same deadline.
    assert calendar.arrival_deadline(at("2026-11-21", "10:00")) == end_of("2026-11-23")
    assert calendar.arrival_deadline(at("2026-11-22", "23:59")) == end_of("2026-11-23")
    assert calendar.arrival_deadline(at("2026-11-20", "23:59")) == calendar.arrival_deadline(at("2026-11-21", "00:01"))
    # the local day counts: Thursday 16:30 UTC is Thursday 23:30 in Vietnam, 17:30 UTC is Friday
    thursday_late = dt.datetime(2026, 11, 19, 16, 30, tzinfo=dt.UTC)
    assert calendar.arrival_deadline(thursday_late) == end_of("2026-11-20")
    assert calendar.arrival_deadline(thursday_late + dt.timedelta(hours=1)) == end_of("2026-11-23")
    assert calendar.today(thursday_late) == dt.date(2026, 11, 19)
    assert calendar.today(thursday_late + dt.timedelta(hours=1)) == dt.date(2026, 11, 20)

    # holidays are not working days
    monday_off = WorkingCalendar(holidays=[dt.date(2026, 11, 23)], national=False)  # only the days given
    assert monday_off.arrival_deadline(at("2026-11-20", "15:30")) == end_of("2026-11-24")
    assert monday_off.arrival_deadline(at("2026-11-21", "10:00")) == end_of("2026-11-24")
    assert monday_off.arrival_deadline(at("2026-11-23", "10:00")) == end_of("2026-11-24")  # sent on the holiday
    # a week off (Tết 2027: Friday 5 to Friday 12 February) → the Monday after
    tet = WorkingCalendar(holidays=[dt.date(2027, 2, 5) + dt.timedelta(days=n) for n in range(8)], national=False)
    assert tet.arrival_deadline(at("2027-02-04", "16:00")) == end_of("2027-02-15")
    assert not tet.is_working_day(dt.date(2027, 2, 8)) and tet.is_working_day(dt.date(2027, 2, 15))


async def test_delivery_past_its_due_date_is_overdue_until_completed(api: Api) -> None:
    sender, late, rejecting = await api.agency_client(), await api.agency_client(), await api.agency_client()
    today = local_today()
    overdue_doc = await send_ok(
        api,
        sender,
        [late, rejecting],
        promulgation_date=(today - dt.timedelta(days=5)).isoformat(),
        due_date=(today - dt.timedelta(days=2)).isoformat(),
    )
    on_time = await send_ok(api, sender, [late], due_date=None)
    late_delivery = delivery_for(overdue_doc, late)

    async def overdue_everywhere(expected: bool) -> None:
        seen = await document(api, sender, overdue_doc["id"])
        assert delivery_seen(seen, late)["overdue"] is expected
        assert delivery_seen(await document(api, late, overdue_doc["id"]), late)["overdue"] is expected
        items = {i["document_id"]: i for i in await inbox_items(api, late)}
        assert items[overdue_doc["id"]]["overdue"] is expected
        assert items[on_time["id"]]["overdue"] is False
        assert await inbox_ids(api, late, overdue="true") == ([overdue_doc["id"]] if expected else [])
        assert await received_ids(api, late, overdue="true") == ([overdue_doc["id"]] if expected else [])
        not_overdue = [on_time["id"]] if expected else [on_time["id"], overdue_doc["id"]]
        assert await inbox_ids(api, late, overdue="false") == not_overdue
        assert await received_ids(api, late, overdue="false") == not_overdue

    await overdue_everywhere(True)
    assert delivery_seen(await document(api, sender, on_time["id"]), late)["overdue"] is False
    sent = {i["document_id"]: i for i in await sent_items(api, sender)}
    assert (sent[overdue_doc["id"]]["overdue"], sent[on_time["id"]]["overdue"]) == (2, 0)
    assert await sent_ids(api, sender, overdue="true") == [overdue_doc["id"]]
    assert await sent_ids(api, sender, overdue="false") == [on_time["id"]]

    # the due date is for completing: reporting progress does not end the delay, 06 does
    for status in ["01", "03", "04", "05"]:
        await advance(api, late, late_delivery, [status])
        await overdue_everywhere(True)
    await advance(api, late, late_delivery, ["06"])
    await overdue_everywhere(False)

    # a rejection (02) ends it too
    assert delivery_seen(await document(api, sender, overdue_doc["id"]), rejecting)["overdue"] is True
    await advance(api, rejecting, delivery_for(overdue_doc, rejecting), ["01", "02"])
    assert delivery_seen(await document(api, sender, overdue_doc["id"]), rejecting)["overdue"] is False
    sent = {i["document_id"]: i for i in await sent_items(api, sender)}
    assert sent[overdue_doc["id"]]["overdue"] == 0
    assert await sent_ids(api, sender, overdue="true") == []
    assert await sent_ids(api, sender, overdue="false") == [on_time["id"], overdue_doc["id"]]


async def test_delivery_past_its_arrival_deadline_is_overdue_until_registered(api: Api) -> None:
    """The deadline to register (03) or return (02) is computed by the working-day calendar at send
    time (Decree 30, Art. 4); 01 alone does not meet it. A working day
    cannot pass during a test: the deadline of the stored delivery is moved into the past, as it
    would be once the next working day has ended."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = delivery_for(accepted, recipient)
    seen = await document(api, sender, accepted["id"])
    calendar = WorkingCalendar(api.settings.exchange.holidays, api.settings.exchange.timezone)
    created = dt.datetime.fromisoformat(seen["created_at"])
    deadline = dt.datetime.fromisoformat(delivery_seen(seen, recipient)["arrival_deadline"])
    assert deadline == calendar.arrival_deadline(created, urgent=False)
    assert deadline > utcnow()
    assert delivery_seen(seen, recipient)["overdue"] is False
    assert await inbox_ids(api, recipient, overdue="true") == []

    async with exchange_db(api).session() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == uuid.UUID(delivery_id))
            .values(arrival_deadline=utcnow() - dt.timedelta(minutes=1))
        )

    assert delivery_seen(await document(api, sender, accepted["id"]), recipient)["overdue"] is True
    [item] = await inbox_items(api, recipient)
    assert item["overdue"] is True
    assert await inbox_ids(api, recipient, overdue="true") == [accepted["id"]]
    assert await inbox_ids(api, recipient, overdue="false") == []
    assert await sent_ids(api, sender, overdue="true") == [accepted["id"]]

    await advance(api, recipient, delivery_id, ["01"])  # arrived, not registered: still late
    assert delivery_seen(await document(api, sender, accepted["id"]), recipient)["overdue"] is True
    assert await sent_ids(api, sender, overdue="true") == [accepted["id"]]
    await advance(api, recipient, delivery_id, ["03"])  # registered: the deadline no longer applies
    assert delivery_seen(await document(api, sender, accepted["id"]), recipient)["overdue"] is False
    assert await inbox_ids(api, recipient, overdue="true") == []
    assert await inbox_ids(api, recipient, overdue="false") == [accepted["id"]]
    assert await sent_ids(api, sender, overdue="true") == []
