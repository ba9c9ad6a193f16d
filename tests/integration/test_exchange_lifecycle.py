"""The life of a document in the exchange, through the gateway, on SQLite and on PostgreSQL.

Delivery statuses (pending → 01 → 03 → 04 → 05 → 06, 01 → 02), recalls (13 → 15 / 16), updates and
replacements, duplicate numbers and idempotent replays, state secrets, Decree 30 metadata, group
broadcasts, the sent and received lists, overdue deliveries (with the working-day calendar), who may
see what, and the events the exchange writes to its outbox.

Every refused request is also checked to have changed nothing: the sender's sent list, the
recipients' inboxes and the document as its sender sees it are compared before and after.
"""

from __future__ import annotations

import datetime as dt
import secrets
import unicodedata
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select, update

from services.exchange.calendar import WorkingCalendar
from services.exchange.delivery.status import TRANSITIONS
from services.exchange.events import EVENTS
from services.exchange.models import Delivery, messaging
from shared.auth import Scope
from shared.db import Database, utcnow
from tests.helpers import (
    Api,
    Client,
    assert_problem,
    document,
    get_json,
    inbox_ids,
    inbox_items,
    random_code,
    received_ids,
    report,
    send_ok,
    sent_ids,
    sent_items,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NATIONAL = ["01", "02", "03", "04", "05", "06"]
# What TRANSITIONS says, written out: the API must answer exactly this in `allowed_next`.
ALLOWED_NEXT: dict[str, list[str]] = {
    "pending": ["01"],
    "01": ["02", "03"],
    "02": [],
    "03": ["04"],
    "04": ["05"],
    "05": ["06"],
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


# --- helpers -----------------------------------------------------------------------------------


def codes(*clients: Client) -> list[str]:
    return [c.agency_code for c in clients]


async def snapshot(api: Api, sender: Client, *recipients: Client) -> dict[str, Any]:
    """What a refused request must leave untouched: the sent list and every recipient's inbox."""
    state: dict[str, Any] = {"sent": await sent_items(api, sender)}
    for recipient in recipients:
        state[recipient.agency_code] = await inbox_items(api, recipient)
    return state


async def advance(api: Api, recipient: Client, delivery_id: str, path: list[str]) -> None:
    for status in path:
        response = await report(api, recipient, delivery_id, status, note="Lý do" if status == "02" else None)
        assert response.status_code == 200, (status, response.text)


async def recall(api: Api, sender: Client, document_id: str, reason: str, **extra: Any) -> httpx.Response:
    return await api.http.post(
        f"/v1/documents/{document_id}/recall", json={"reason": reason, **extra}, headers=sender.auth
    )


def delivery_for(accepted: dict[str, Any], recipient: Client) -> str:
    [delivery_id] = [d["id"] for d in accepted["deliveries"] if d["recipient_code"] == recipient.agency_code]
    return str(delivery_id)


def delivery_seen(doc: dict[str, Any], recipient: Client) -> dict[str, Any]:
    [delivery] = [d for d in doc["deliveries"] if d["recipient_code"] == recipient.agency_code]
    return dict(delivery)


def statuses(delivery: dict[str, Any]) -> list[str]:
    return [event["status"] for event in delivery["history"]]


def exchange_db(api: Api) -> Database:
    assert api.app is not None
    db: Database = api.service_runtime("exchange").db
    return db


def local_today() -> dt.date:
    return WorkingCalendar().today(utcnow())


# --- statuses: the national order --------------------------------------------------------------


def test_allowed_next_table_is_what_transitions_says() -> None:
    assert {k.value: [v.value for v in vs] for k, vs in TRANSITIONS.items()} == ALLOWED_NEXT


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
    does not allow is refused with 409 delivery_transition_invalid, `current_status` and
    `allowed_next` exactly as TRANSITIONS says; pending→03, 01→04, 03→06, 06→anything and
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
    for jump in [("pending", "03"), ("01", "04"), ("03", "06"), ("06", "01"), ("06", "06"), ("02", "03")]:
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
        assert (body["current_status"], body["allowed_next"]) == ("03", ["04"])
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
    assert (body["current_status"], body["allowed_next"]) == ("03", ["04"])


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


# --- update and replace --------------------------------------------------------------------------


async def test_update_reuses_the_number_and_shows_what_it_updates(api: Api) -> None:
    sender, a, b = await api.agency_client(), await api.agency_client(), await api.agency_client()
    number = str(secrets.randbelow(90000) + 10000)
    original = await send_ok(api, sender, [a, b], code_number=number, code_notation="KH-UBND")

    relation = {"kind": "update", "document_id": original["id"], "metadata_changed": True}
    updated = await send_ok(
        api, sender, [a, b], code_number=number, code_notation="KH-UBND", relation=relation, subject="Sửa đổi"
    )
    assert updated["id"] != original["id"]
    assert len(updated["deliveries"]) == 2

    for recipient in (a, b):
        items = {i["document_id"]: i for i in await inbox_items(api, recipient)}
        assert set(items) == {original["id"], updated["id"]}
        assert (items[updated["id"]]["kind"], items[updated["id"]]["original_document_id"]) == (
            "update",
            original["id"],
        )
        assert (items[original["id"]]["kind"], items[original["id"]]["original_document_id"]) == ("new", None)
        assert await received_ids(api, recipient, kind="update") == [updated["id"]]

    seen = await document(api, a, updated["id"])
    assert seen["kind"] == "update"
    assert seen["original_document_id"] == original["id"]
    assert seen["update_info"] == {"metadata_changed": True, "recipients_changed": False}
    assert (seen["code_number"], seen["code_notation"], seen["subject"]) == (number, "KH-UBND", "Sửa đổi")
    # an update does not supersede the original
    assert (await document(api, sender, original["id"]))["superseded_by"] is None
    assert (await document(api, sender, original["id"]))["update_info"] is None
    sent = {i["document_id"]: i for i in await sent_items(api, sender)}
    assert (sent[updated["id"]]["kind"], sent[updated["id"]]["original_document_id"]) == ("update", original["id"])

    # updates may be chained on the same original, each reusing the number
    second = await send_ok(
        api,
        sender,
        [a],
        code_number=number,
        code_notation="KH-UBND",
        relation={**relation, "metadata_changed": False, "recipients_changed": True},
    )
    assert (await document(api, sender, second["id"]))["update_info"] == {
        "metadata_changed": False,
        "recipients_changed": True,
    }


async def test_replace_supersedes_and_cannot_be_repeated(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    original = await send_ok(api, sender, [recipient])

    replacement = await send_ok(api, sender, [recipient], relation={"kind": "replace", "document_id": original["id"]})
    for reader in (sender, recipient):
        assert (await document(api, reader, original["id"]))["superseded_by"] == replacement["id"]
    seen = await document(api, recipient, replacement["id"])
    assert (seen["kind"], seen["original_document_id"], seen["update_info"], seen["superseded_by"]) == (
        "replace",
        original["id"],
        None,
        None,
    )
    [item] = [i for i in await inbox_items(api, recipient) if i["document_id"] == replacement["id"]]
    assert (item["kind"], item["original_document_id"]) == ("replace", original["id"])

    # the original was replaced already: neither a second replacement nor an update
    before = await snapshot(api, sender, recipient)
    for kind in ("replace", "update"):
        relation = {"kind": kind, "document_id": original["id"]}
        body = assert_problem(
            await api.send(sender, [recipient.agency_code], relation=relation), 409, "relation_invalid"
        )
        assert body["superseded_by"] == replacement["id"]
    assert await snapshot(api, sender, recipient) == before
    assert (await document(api, sender, original["id"]))["superseded_by"] == replacement["id"]

    # the replacement itself can be replaced
    third = await send_ok(api, sender, [recipient], relation={"kind": "replace", "document_id": replacement["id"]})
    assert (await document(api, sender, replacement["id"]))["superseded_by"] == third["id"]
    assert (await document(api, sender, original["id"]))["superseded_by"] == replacement["id"]

    # the outbox tells subscribers what was replaced
    async with exchange_db(api).session() as session:
        rows = (
            await session.execute(
                select(messaging.outbox.c.payload).where(messaging.outbox.c.routing_key == "document.replaced.v1")
            )
        ).scalars()
        replaced = [EVENTS["document.replaced.v1"].model_validate(p).model_dump(mode="json") for p in rows]
    assert {"document_id": original["id"], "replaced_by": replacement["id"], "sender_code": sender.agency_code} in (
        replaced
    )


async def test_relation_to_a_document_you_did_not_send_is_404(api: Api) -> None:
    sender, other, recipient = await api.agency_client(), await api.agency_client(), await api.agency_client()
    theirs = await send_ok(api, other, [recipient, sender])  # the sender even received it
    before = await snapshot(api, sender, recipient)
    for kind in ("update", "replace"):
        for target in (theirs["id"], str(uuid.uuid4())):
            response = await api.send(sender, [recipient.agency_code], relation={"kind": kind, "document_id": target})
            assert_problem(response, 404, "document_not_found")
    assert await snapshot(api, sender, recipient) == before
    assert (await document(api, other, theirs["id"]))["superseded_by"] is None


# --- duplicates and idempotent replays -----------------------------------------------------------


async def test_the_same_number_twice_in_a_year_is_a_duplicate(api: Api) -> None:
    sender, other_sender, recipient = await api.agency_client(), await api.agency_client(), await api.agency_client()
    number = str(secrets.randbelow(90000) + 10000)
    first = await send_ok(api, sender, [recipient], code_number=number, promulgation_date="2026-03-02")
    before = await snapshot(api, sender, recipient)

    again = await api.send(sender, [recipient.agency_code], code_number=number, promulgation_date="2026-11-20")
    body = assert_problem(again, 409, "document_duplicate")
    assert body["document_id"] == first["id"]
    assert await snapshot(api, sender, recipient) == before
    assert await sent_ids(api, sender) == [first["id"]]

    next_year = await send_ok(api, sender, [recipient], code_number=number, promulgation_date="2027-01-04")
    another_notation = await send_ok(api, sender, [recipient], code_number=number, code_notation="QĐ-UBND")
    from_another_sender = await send_ok(api, other_sender, [recipient], code_number=number)
    assert len({first["id"], next_year["id"], another_notation["id"], from_another_sender["id"]}) == 4
    assert await sent_ids(api, sender) == [another_notation["id"], next_year["id"], first["id"]]
    assert await sent_ids(api, other_sender) == [from_another_sender["id"]]


async def test_idempotency_key_replay_answers_200_with_the_same_document(api: Api) -> None:
    sender, other_sender, recipient = await api.agency_client(), await api.agency_client(), await api.agency_client()
    key = f"gui-{uuid.uuid4()}"
    first = await api.send(sender, [recipient.agency_code], headers={"Idempotency-Key": key}, code_number="41")
    assert first.status_code == 202, first.text

    replay = await api.send(sender, [recipient.agency_code], headers={"Idempotency-Key": key}, code_number="41")
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["deliveries"] == first.json()["deliveries"]
    assert replay.json()["attachments"] == first.json()["attachments"]
    assert await sent_ids(api, sender) == [first.json()["id"]]
    assert await inbox_ids(api, recipient) == [first.json()["id"]]
    assert len((await document(api, sender, first.json()["id"]))["deliveries"]) == 1

    # the key belongs to its sender: another agency using it sends its own document
    theirs = await api.send(other_sender, [recipient.agency_code], headers={"Idempotency-Key": key})
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["id"] != first.json()["id"]


async def test_sender_document_id_replay_answers_200_with_the_same_document(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    own_id = f"QLVB-{uuid.uuid4().hex[:12]}"
    number = str(secrets.randbelow(90000) + 10000)
    first = await api.send(sender, [recipient.agency_code], sender_document_id=own_id, code_number=number)
    assert first.status_code == 202, first.text
    # the replay is recognised as such, not refused as a duplicate number
    replay = await api.send(sender, [recipient.agency_code], sender_document_id=own_id, code_number=number)
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == first.json()["id"]
    assert [d["id"] for d in replay.json()["deliveries"]] == [d["id"] for d in first.json()["deliveries"]]
    assert await sent_ids(api, sender) == [first.json()["id"]]
    assert await inbox_ids(api, recipient) == [first.json()["id"]]
    assert (await document(api, recipient, first.json()["id"]))["sender_document_id"] == own_id


async def test_replay_returns_the_original_answer_with_its_redirections(api: Api) -> None:
    sender, retired, successor = await api.agency_client(), await api.agency_client(), await api.agency_client()
    retire = await api.http.post(
        f"/v1/agencies/{retired.agency_code}/status",
        json={"status": "retired", "reason": "Sáp nhập", "successor_code": successor.agency_code},
        headers=await api.admin(),
    )
    assert retire.status_code == 200, retire.text
    key = f"gui-{uuid.uuid4()}"
    first = await api.send(sender, [retired.agency_code], headers={"Idempotency-Key": key}, code_number="42")
    assert first.status_code == 202, first.text
    redirect = {"from_code": retired.agency_code, "to_code": successor.agency_code}
    assert first.json()["redirected"] == [redirect]

    replay = await api.send(sender, [retired.agency_code], headers={"Idempotency-Key": key}, code_number="42")
    assert replay.status_code == 200, replay.text
    assert replay.json() == first.json()


# --- state secrets -------------------------------------------------------------------------------


async def test_secret_documents_are_refused_and_nothing_is_stored(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    before = await snapshot(api, sender, recipient)
    to = [recipient.agency_code]
    for mark in ["Mật", "Tối mật", "Tuyệt mật", "mat", "MẬT", "  tối mật ", unicodedata.normalize("NFD", "Tuyệt mật")]:
        body = assert_problem(await api.send(sender, to, confidentiality=mark), 422, "document_classified")
        assert "state secret" in body["detail"], mark
    body = assert_problem(await api.send(sender, to, confidentiality="abc"), 422, "metadata_invalid")
    assert [e["loc"] for e in body["errors"]] == [["confidentiality"]]
    assert await snapshot(api, sender, recipient) == before
    assert [p for p in api.settings.blob_dir.rglob("*") if p.is_file()] == []

    absent = await send_ok(api, sender, [recipient])
    explicit_none = await send_ok(api, sender, [recipient], confidentiality=None)
    normal = await send_ok(api, sender, [recipient], confidentiality="Thường")
    assert await inbox_ids(api, recipient) == [normal["id"], explicit_none["id"], absent["id"]]


async def test_empty_confidentiality_means_normal(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await api.send(sender, [recipient.agency_code], confidentiality="")
    assert response.status_code == 202, response.text
    assert await inbox_ids(api, recipient) == [response.json()["id"]]


# --- Decree 30 metadata --------------------------------------------------------------------------


async def test_document_types_by_name_or_abbreviation_are_stored_canonically(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    cases = [
        ("Kế hoạch", "Kế hoạch", "KH"),
        ("KH", "Kế hoạch", "KH"),
        ("ke hoach", "Kế hoạch", "KH"),
        ("QĐ", "Quyết định", "QĐ"),
        ("qd", "Quyết định", "QĐ"),
        ("Công văn", "Công văn", None),
        ("cong van", "Công văn", None),
        ("Tờ trình", "Tờ trình", "TTr"),
    ]
    for given, name, abbreviation in cases:
        accepted = await send_ok(api, sender, [recipient], type_name=given)
        seen = await document(api, recipient, accepted["id"])
        assert (seen["type_name"], seen["type_code"]) == (name, abbreviation), given
        [item] = [i for i in await inbox_items(api, recipient) if i["document_id"] == accepted["id"]]
        assert item["type_name"] == name

    before = await snapshot(api, sender, recipient)
    for unknown in ["Bí kíp", "hd", "XYZ"]:  # hd: Hướng dẫn or Hợp đồng, ambiguous without diacritics
        response = await api.send(sender, [recipient.agency_code], type_name=unknown)
        body = assert_problem(response, 422, "metadata_invalid")
        assert [e["loc"] for e in body["errors"]] == [["type_name"]], unknown
    assert await snapshot(api, sender, recipient) == before


async def test_field_limits_and_dates(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    refused: list[tuple[dict[str, Any], list[Any]]] = [
        ({"subject": "V" * 501}, ["subject"]),
        ({"code_notation": "K" * 31}, ["code_notation"]),
        ({"code_number": "1" * 12}, ["code_number"]),
        ({"signer": {"position": "Chủ tịch", "full_name": "N" * 51}}, ["signer", "full_name"]),
        ({"urgency": 5}, ["urgency"]),
        ({"urgency": -1}, ["urgency"]),
        ({"promulgation_date": "2026-11-20", "due_date": "2026-11-19"}, []),
    ]
    before = await snapshot(api, sender, recipient)
    for overrides, loc in refused:
        body = assert_problem(await api.send(sender, [recipient.agency_code], **overrides), 422, "metadata_invalid")
        assert [e["loc"] for e in body["errors"]] == [loc], overrides
        if "due_date" in overrides:
            assert "due_date cannot be before promulgation_date" in body["errors"][0]["msg"]
    assert await snapshot(api, sender, recipient) == before

    # exactly at the limits: accepted and stored as sent
    accepted = await send_ok(
        api,
        sender,
        [recipient],
        subject="Ề" * 500,
        code_notation="K" * 30,
        signer={"position": "Chủ tịch", "full_name": "N" * 50},
        urgency=4,
        promulgation_date="2026-11-20",
        due_date="2026-11-20",
    )
    seen = await document(api, recipient, accepted["id"])
    assert (seen["subject"], seen["code_notation"], seen["signer"]["full_name"]) == ("Ề" * 500, "K" * 30, "N" * 50)
    assert (seen["urgency"], seen["due_date"]) == (4, "2026-11-20")


async def test_length_limits_apply_to_the_stored_nfc_text(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    subject = "Kế hoạch triển khai chuyển đổi số " * 12  # 408 characters in NFC
    nfd = unicodedata.normalize("NFD", subject)
    assert len(subject) <= 500 < len(nfd)
    response = await api.send(sender, [recipient.agency_code], subject=nfd)
    assert response.status_code == 202, response.text
    assert (await document(api, recipient, response.json()["id"]))["subject"] == subject.strip()


async def test_text_longer_than_its_limit_once_normalised_is_refused(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    subject = "\u0958" * 500
    assert len(unicodedata.normalize("NFC", subject)) == 1000
    before = await snapshot(api, sender, recipient)
    response = await api.send(sender, [recipient.agency_code], subject=subject)
    body = assert_problem(response, 422, "metadata_invalid")
    assert [e["loc"] for e in body["errors"]] == [["subject"]]
    assert await snapshot(api, sender, recipient) == before


# --- broadcast to a group ------------------------------------------------------------------------


async def test_broadcast_to_a_group_of_thirty_communes(api: Api) -> None:
    district = await api.create_agency(level="district", name="Ủy ban nhân dân huyện Thử Nghiệm")
    communes: list[Client] = []
    for n in range(30):
        created = await api.create_agency(
            code=random_code("X"), level="commune", parent_code=district["code"], name=f"Ủy ban nhân dân xã {n + 1}"
        )
        communes.append(await api.agency_client(created["code"]))
    elsewhere = await api.agency_client(
        (await api.create_agency(code=random_code("X"), level="commune", name="Xã nơi khác"))["code"]
    )
    group = f"xa-{secrets.token_hex(4)}"
    created_group = await api.http.post(
        "/v1/groups",
        json={"name": group, "title": "Các xã của huyện", "rules": [{"level": "commune", "under": district["code"]}]},
        headers=await api.admin(),
    )
    assert created_group.status_code == 201, created_group.text
    sender = await api.agency_client()

    response = await api.send(sender, [], groups=[group])
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert len(accepted["deliveries"]) == 30
    assert sorted(d["recipient_code"] for d in accepted["deliveries"]) == sorted(codes(*communes))
    assert {d["status"] for d in accepted["deliveries"]} == {"pending"}
    seen = await document(api, sender, accepted["id"])
    assert len(seen["deliveries"]) == 30
    [item] = await sent_items(api, sender)
    assert (item["recipients"], item["by_status"]) == (30, {"pending": 30})

    for commune in communes:
        [inbox_item] = await inbox_items(api, commune)
        assert inbox_item["document_id"] == accepted["id"]
        assert inbox_item["delivery_id"] == delivery_for(accepted, commune)
    assert await inbox_ids(api, elsewhere) == []
    assert await inbox_ids(api, sender) == []


# --- lists and filters ---------------------------------------------------------------------------


async def test_sent_and_received_lists_filter(api: Api) -> None:
    sender, r1, r2 = await api.agency_client(), await api.agency_client(), await api.agency_client()
    d1 = await send_ok(api, sender, [r1], type_name="Kế hoạch", promulgation_date="2026-01-10", urgency=0)
    d2 = await send_ok(api, sender, [r1, r2], type_name="Quyết định", promulgation_date="2026-02-15", urgency=2)
    d3 = await send_ok(api, sender, [r2], type_name="Công văn", promulgation_date="2026-03-20", urgency=1)
    d4 = await send_ok(
        api,
        sender,
        [r1],
        type_name="KH",
        promulgation_date="2026-01-12",
        relation={"kind": "update", "document_id": d1["id"]},
    )
    d5 = await send_ok(api, sender, [r1], type_name="Báo cáo", promulgation_date="2026-04-01", urgency=0)
    await advance(api, r1, delivery_for(d2, r1), ["01"])
    i1, i2, i3, i4, i5 = (d["id"] for d in (d1, d2, d3, d4, d5))

    async def sent(**params: Any) -> list[str]:
        return await sent_ids(api, sender, **params)

    async def received(client: Client, **params: Any) -> list[str]:
        return await received_ids(api, client, **params)

    # newest first
    assert await sent() == [i5, i4, i3, i2, i1]
    assert await received(r1) == [i5, i4, i2, i1]
    assert await received(r2) == [i3, i2]
    assert await inbox_ids(api, r1) == [i5, i4, i2, i1]

    # status: a document is listed when one of its deliveries is at that status
    assert await sent(status="01") == [i2]
    assert await sent(status="pending") == [i5, i4, i3, i2, i1]
    assert await sent(status="06") == []
    assert await received(r1, status="01") == [i2]
    assert await received(r1, status="pending") == [i5, i4, i1]
    assert await received(r2, status="pending") == [i3, i2]
    assert await inbox_ids(api, r1, status="01") == [i2]
    # type, by name or abbreviation
    for kh in ("KH", "Kế hoạch", "ke hoach"):
        assert await sent(type=kh) == [i4, i1]
        assert await received(r1, type=kh) == [i4, i1]
    assert await sent(type="QĐ") == [i2]
    assert await sent(type="Công văn") == [i3]
    assert await received(r1, type="Công văn") == []
    # promulgation dates, both ends included
    assert await sent(date_from="2026-02-15") == [i5, i3, i2]
    assert await sent(date_to="2026-01-12") == [i4, i1]
    assert await sent(date_from="2026-02-01", date_to="2026-03-31") == [i3, i2]
    assert await received(r1, date_from="2026-01-11", date_to="2026-02-15") == [i4, i2]
    # counterpart: a recipient of the sent documents, the sender of the received ones
    assert await sent(counterpart=r2.agency_code) == [i3, i2]
    assert await sent(counterpart=r2.agency_code.lower()) == [i3, i2]
    # status and counterpart hold for the same delivery: r2's copy of d2 is still pending
    assert await sent(counterpart=r2.agency_code, status="01") == []
    assert await sent(counterpart=r1.agency_code, status="01") == [i2]
    assert await received(r1, counterpart=sender.agency_code) == [i5, i4, i2, i1]
    assert await received(r1, counterpart=r2.agency_code) == []
    # urgency and kind
    assert await sent(urgency=2) == [i2]
    assert await sent(urgency=0) == [i5, i4, i1]
    assert await received(r2, urgency=1) == [i3]
    assert await sent(kind="update") == [i4]
    assert await sent(kind="new") == [i5, i3, i2, i1]
    assert await received(r1, kind="update") == [i4]
    assert await received(r2, kind="update") == []
    assert await sent(kind="replace") == []

    # sent items count their deliveries by status
    items = {i["document_id"]: i for i in await sent_items(api, sender)}
    assert (items[i2]["recipients"], items[i2]["by_status"]) == (2, {"01": 1, "pending": 1})
    assert (items[i1]["recipients"], items[i1]["by_status"]) == (1, {"pending": 1})
    assert items[i4]["original_document_id"] == i1

    # what cannot be a filter
    for params, status, code in [
        ({"type": "Bí kíp"}, 400, "bad_request"),
        ({"status": "13"}, 422, "validation_failed"),
        ({"urgency": 5}, 422, "validation_failed"),
        ({"kind": "other"}, 422, "validation_failed"),
        ({"box": "drafts"}, 422, "validation_failed"),
        ({"date_from": "20/11/2026"}, 422, "validation_failed"),
    ]:
        for box in ("sent", "received"):
            response = await api.http.get("/v1/documents", params={"box": box, **params}, headers=sender.auth)
            assert_problem(response, status, code)


async def test_cursor_pagination_over_five_documents(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    ids = [(await send_ok(api, sender, [recipient]))["id"] for _ in range(5)]

    for path, params, client in [
        ("/v1/documents", {"box": "sent"}, sender),
        ("/v1/documents", {"box": "received"}, recipient),
        ("/v1/inbox", {}, recipient),
    ]:
        seen: list[str] = []
        pages: list[int] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await get_json(api, client, path, **query)
            pages.append(len(page["items"]))
            seen.extend(i["document_id"] for i in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(pages) < 10, "the cursor does not advance"
        assert pages == [2, 2, 1], path
        assert seen == list(reversed(ids)), path  # all seen, once each, newest first
        assert len(set(seen)) == 5

    bad = await api.http.get("/v1/documents", params={"box": "sent", "cursor": "!!"}, headers=sender.auth)
    assert_problem(bad, 400, "bad_request")
    assert_problem(await api.http.get("/v1/inbox", params={"limit": 0}, headers=sender.auth), 422, "validation_failed")


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
    monday_off = WorkingCalendar(holidays=[dt.date(2026, 11, 23)])
    assert monday_off.arrival_deadline(at("2026-11-20", "15:30")) == end_of("2026-11-24")
    assert monday_off.arrival_deadline(at("2026-11-21", "10:00")) == end_of("2026-11-24")
    assert monday_off.arrival_deadline(at("2026-11-23", "10:00")) == end_of("2026-11-24")  # sent on the holiday
    # a week off (Tết 2027: Friday 5 to Friday 12 February) → the Monday after
    tet = WorkingCalendar(holidays=[dt.date(2027, 2, 5) + dt.timedelta(days=n) for n in range(8)])
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


async def test_pending_delivery_past_its_arrival_deadline_is_overdue_until_reported(api: Api) -> None:
    """The arrival deadline is computed by the working-day calendar at send time. A working day
    cannot pass during a test: the deadline of the stored delivery is moved into the past, as it
    would be once the next working day has ended."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = delivery_for(accepted, recipient)
    seen = await document(api, sender, accepted["id"])
    calendar = WorkingCalendar(api.settings.exchange.holidays, api.settings.exchange.timezone)
    created = dt.datetime.fromisoformat(seen["created_at"])
    deadline = dt.datetime.fromisoformat(delivery_seen(seen, recipient)["arrival_deadline"])
    assert deadline == calendar.arrival_deadline(created)
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

    await advance(api, recipient, delivery_id, ["01"])  # arrived: the arrival deadline no longer applies
    assert delivery_seen(await document(api, sender, accepted["id"]), recipient)["overdue"] is False
    assert await inbox_ids(api, recipient, overdue="true") == []
    assert await inbox_ids(api, recipient, overdue="false") == [accepted["id"]]
    assert await sent_ids(api, sender, overdue="true") == []


# --- authorization -------------------------------------------------------------------------------


async def test_an_outsider_sees_nothing(api: Api) -> None:
    sender, recipient, outsider = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    document_id, attachment_id = accepted["id"], accepted["attachments"][0]["id"]
    before = await document(api, sender, document_id)

    assert_problem(await api.http.get(f"/v1/documents/{document_id}", headers=outsider.auth), 404, "document_not_found")
    download = await api.http.get(f"/v1/documents/{document_id}/attachments/{attachment_id}", headers=outsider.auth)
    assert_problem(download, 404, "document_not_found")
    assert accepted["attachments"][0]["sha256"] not in download.text
    assert_problem(await recall(api, outsider, document_id, "Thu hồi"), 404, "document_not_found")
    assert await inbox_ids(api, outsider) == []
    assert await received_ids(api, outsider) == []
    assert await sent_ids(api, outsider) == []
    assert await received_ids(api, outsider, counterpart=sender.agency_code) == []
    assert await document(api, sender, document_id) == before


async def test_scopes_are_required(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    document_id, attachment_id = accepted["id"], accepted["attachments"][0]["id"]
    delivery_id = delivery_for(accepted, recipient)
    before = await snapshot(api, sender, recipient)

    # the recipient's own agency, but a client that may only send
    send_only = await api.agency_client(recipient.agency_code, scopes=[Scope.SEND])
    for path in (
        f"/v1/documents/{document_id}",
        f"/v1/documents/{document_id}/attachments/{attachment_id}",
        "/v1/inbox",
        "/v1/documents?box=received",
        "/v1/documents?box=sent",
    ):
        body = assert_problem(await api.http.get(path, headers=send_only.auth), 403, "forbidden")
        assert body["required_scope"] == Scope.RECEIVE, path
    assert_problem(await report(api, send_only, delivery_id, "01"), 403, "forbidden")

    # the sender's own agency, but a client that may only receive
    receive_only = await api.agency_client(sender.agency_code, scopes=[Scope.RECEIVE])
    body = assert_problem(await api.send(receive_only, [recipient.agency_code]), 403, "forbidden")
    assert body["required_scope"] == Scope.SEND
    body = assert_problem(await recall(api, receive_only, document_id, "Thu hồi"), 403, "forbidden")
    assert body["required_scope"] == Scope.SEND
    # it may still read what its agency sent
    assert (await api.http.get(f"/v1/documents/{document_id}", headers=receive_only.auth)).status_code == 200

    assert await snapshot(api, sender, recipient) == before
    seen = delivery_seen(await document(api, sender, document_id), recipient)
    assert (seen["status"], seen["recall_status"]) == ("pending", None)


# --- events --------------------------------------------------------------------------------------


async def test_send_recall_and_agreement_write_their_events_to_the_outbox(api: Api) -> None:
    sender, a, b = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [a, b], subject="Báo cáo tháng", due_date="2026-12-31")
    document_id = accepted["id"]
    a_delivery, b_delivery = delivery_for(accepted, a), delivery_for(accepted, b)
    assert (await recall(api, sender, document_id, "Nhầm số liệu")).status_code == 200
    assert (await report(api, a, a_delivery, "15", note="Đồng ý")).status_code == 200

    outbox = messaging.outbox
    async with exchange_db(api).session() as session:
        rows = (await session.execute(select(outbox).order_by(outbox.c.created_at, outbox.c.id))).mappings().all()
    mine = [(r["routing_key"], r["payload"]) for r in rows if r["payload"].get("document_id") == document_id]
    events = [(key, EVENTS[key].model_validate(data)) for key, data in mine]  # every payload matches its schema
    assert [key for key, _ in events] == [
        "document.submitted.v1",
        "delivery.status_changed.v1",
        "delivery.status_changed.v1",
        "document.recall_requested.v1",
        "delivery.status_changed.v1",
        "document.recalled.v1",
    ]
    submitted = events[0][1].model_dump(mode="json")
    assert submitted["kind"] == "new" and submitted["original_document_id"] is None
    assert submitted["sender_code"] == sender.agency_code
    assert (submitted["subject"], submitted["type_name"], submitted["due_date"]) == (
        "Báo cáo tháng",
        "Kế hoạch",
        "2026-12-31",
    )
    assert sorted((d["id"], d["recipient_code"]) for d in submitted["deliveries"]) == sorted(
        (d["id"], d["recipient_code"]) for d in accepted["deliveries"]
    )
    assert [a_["sha256"] for a_ in submitted["attachments"]] == [a_["sha256"] for a_ in accepted["attachments"]]

    changes = [e.model_dump(mode="json") for key, e in events if key == "delivery.status_changed.v1"]
    thirteen = sorted((c for c in changes if c["status"] == "13"), key=lambda c: c["delivery_id"])
    assert [c["delivery_id"] for c in thirteen] == sorted([a_delivery, b_delivery])
    for change in thirteen:
        assert (change["previous_status"], change["actor_code"], change["note"]) == (
            "pending",
            sender.agency_code,
            "Nhầm số liệu",
        )
    [fifteen] = [c for c in changes if c["status"] == "15"]
    assert (fifteen["delivery_id"], fifteen["recipient_code"], fifteen["actor_code"]) == (
        a_delivery,
        a.agency_code,
        a.agency_code,
    )
    assert (fifteen["previous_status"], fifteen["sender_code"], fifteen["note"]) == ("13", sender.agency_code, "Đồng ý")

    requested = events[3][1].model_dump(mode="json")
    assert (requested["sender_code"], requested["reason"]) == (sender.agency_code, "Nhầm số liệu")
    assert sorted(requested["delivery_ids"]) == sorted([a_delivery, b_delivery])
    recalled = events[5][1].model_dump(mode="json")
    assert (recalled["delivery_id"], recalled["recipient_code"], recalled["sender_code"]) == (
        a_delivery,
        a.agency_code,
        sender.agency_code,
    )
    assert dt.datetime.fromisoformat(recalled["recalled_at"]) <= utcnow()
