"""The exchange through the gateway: send, inbox, download, national delivery statuses."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from services.demo.pdf import make_pdf
from services.exchange.config import ExchangeSection
from shared.auth import Scope
from tests.conftest import running_system
from tests.helpers import (
    Api,
    Client,
    assert_problem,
    document,
    inbox_ids,
    metadata,
    race,
    random_code,
    report,
    send_ok,
    upload_leftovers,
)

PDF = make_pdf(["Ke hoach chuyen doi so"])
PDF_SHA = hashlib.sha256(PDF).hexdigest()
XML = '<?xml version="1.0" encoding="UTF-8"?><phuLuc>Danh sách đơn vị</phuLuc>'.encode()
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
SMALL_LIMIT = 1024


@pytest.fixture
async def small_api(database_url: str | None, tmp_path: Path) -> AsyncIterator[Api]:
    """Like `api`, with attachments limited to SMALL_LIMIT bytes."""
    exchange = ExchangeSection(max_attachment_bytes=SMALL_LIMIT)
    async with running_system(tmp_path / "var", database_url, exchange=exchange) as caller:
        yield caller


async def inbox(api: Api, client: Client, **params: Any) -> dict[str, Any]:
    response = await api.http.get("/v1/inbox", params=params, headers=client.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def blobs(api: Api) -> list[Path]:
    """Every stored blob (the upload tmp/ directory excluded)."""
    root = api.settings.blob_dir
    return [p for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts]


def history(delivery: dict[str, Any]) -> list[str]:
    return [event["status"] for event in delivery["history"]]


# --- the first slice -------------------------------------------------------------------------


async def test_first_slice_end_to_end(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()

    response = await api.send(
        sender,
        [recipient.agency_code],
        files=[("van-ban.pdf", PDF, "application/pdf")],
        subject="Kế hoạch chuyển đổi số năm 2027",
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    [delivery] = accepted["deliveries"]
    assert delivery["recipient_code"] == recipient.agency_code
    assert delivery["status"] == "pending"
    [attachment] = accepted["attachments"]
    assert attachment["file_name"] == "van-ban.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert attachment["size"] == len(PDF)

    page = await inbox(api, recipient)
    [item] = page["items"]
    assert page["next_cursor"] is None
    assert item["document_id"] == accepted["id"]
    assert item["delivery_id"] == delivery["id"]
    assert item["status"] == "pending"
    assert item["sender_code"] == sender.agency_code
    assert item["subject"] == "Kế hoạch chuyển đổi số năm 2027"

    download = await api.http.get(
        f"/v1/documents/{accepted['id']}/attachments/{attachment['id']}", headers=recipient.auth
    )
    assert download.status_code == 200
    body = download.content
    assert hashlib.sha256(body).hexdigest() == attachment["sha256"] == download.headers["x-content-sha256"]
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-length"] == str(len(body))
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''van-ban.pdf"
    assert download.headers["etag"] == f'"{attachment["sha256"]}"'

    arrived = await report(api, recipient, delivery["id"], "01")
    assert arrived.status_code == 200, arrived.text
    reported = arrived.json()
    assert reported["delivery_id"] == delivery["id"]
    assert reported["document_id"] == accepted["id"]
    assert (reported["previous_status"], reported["status"]) == ("pending", "01")

    seen = await document(api, sender, accepted["id"])
    [sender_view] = seen["deliveries"]
    assert sender_view["status"] == "01"
    assert history(sender_view) == ["pending", "01"]
    assert [e["actor_code"] for e in sender_view["history"]] == [sender.agency_code, recipient.agency_code]
    assert seen["sender_code"] == sender.agency_code
    assert seen["signer"] == {"competence": None, "position": "Chủ tịch", "full_name": "Nguyễn Văn A"}
    assert (await inbox(api, recipient))["items"][0]["status"] == "01"


async def test_multiple_recipients_and_files(api: Api) -> None:
    sender = await api.agency_client()
    b, c = await api.agency_client(), await api.agency_client()
    files = [
        ("van-ban.pdf", PDF, "application/pdf"),
        ("Phụ lục kèm theo.xml", XML, "text/plain"),  # the type is read from the bytes, not the label
        ("../../etc/passwd", PDF, "application/octet-stream"),  # a path, and a PDF declared as bytes
        ("so-do.png", PNG, "image/png"),
    ]
    accepted = await send_ok(api, sender, [c, b, c], files=files)

    assert sorted(d["recipient_code"] for d in accepted["deliveries"]) == sorted([b.agency_code, c.agency_code])
    assert {d["status"] for d in accepted["deliveries"]} == {"pending"}
    assert [(a["file_name"], a["content_type"], a["size"]) for a in accepted["attachments"]] == [
        ("van-ban.pdf", "application/pdf", len(PDF)),
        ("Phụ lục kèm theo.xml", "application/xml", len(XML)),
        ("passwd", "application/pdf", len(PDF)),
        ("so-do.png", "image/png", len(PNG)),
    ]
    contents = [PDF, XML, PDF, PNG]
    assert [a["sha256"] for a in accepted["attachments"]] == [hashlib.sha256(x).hexdigest() for x in contents]
    assert len(blobs(api)) == 3  # the same bytes twice are stored once

    for recipient in (b, c):
        assert await inbox_ids(api, recipient) == [accepted["id"]]
        for attachment, content in zip(accepted["attachments"], contents, strict=True):
            url = f"/v1/documents/{accepted['id']}/attachments/{attachment['id']}"
            download = await api.http.get(url, headers=recipient.auth)
            assert download.status_code == 200
            assert download.content == content
            assert (
                download.headers["content-disposition"]
                == f"attachment; filename*=UTF-8''{quote(attachment['file_name'])}"
            )
    assert await inbox_ids(api, sender) == []

    seen = await document(api, sender, accepted["id"])
    assert [d["recipient_code"] for d in seen["deliveries"]] == sorted([b.agency_code, c.agency_code])


# --- who sees what ---------------------------------------------------------------------------


async def test_outsider_gets_404_on_document_and_attachment(api: Api) -> None:
    sender, recipient, outsider = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    attachment_id = accepted["attachments"][0]["id"]

    response = await api.http.get(f"/v1/documents/{accepted['id']}", headers=outsider.auth)
    assert_problem(response, 404, "document_not_found")
    response = await api.http.get(f"/v1/documents/{accepted['id']}/attachments/{attachment_id}", headers=outsider.auth)
    assert_problem(response, 404, "document_not_found")
    assert PDF_SHA not in response.text
    assert await inbox_ids(api, outsider) == []


async def test_unknown_document_or_attachment_is_404(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    other = await send_ok(api, sender, [recipient])

    response = await api.http.get(f"/v1/documents/{uuid.uuid4()}", headers=sender.auth)
    assert_problem(response, 404, "document_not_found")
    response = await api.http.get(f"/v1/documents/{accepted['id']}/attachments/{uuid.uuid4()}", headers=recipient.auth)
    assert_problem(response, 404, "attachment_not_found")
    # an attachment is only reachable under its own document
    mismatched = f"/v1/documents/{accepted['id']}/attachments/{other['attachments'][0]['id']}"
    assert_problem(await api.http.get(mismatched, headers=recipient.auth), 404, "attachment_not_found")
    response = await api.http.get("/v1/documents/not-a-uuid", headers=sender.auth)
    assert_problem(response, 422, "validation_failed")


async def test_recipient_sees_only_its_own_delivery(api: Api) -> None:
    sender, b, c = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [b, c])
    c_delivery = next(d["id"] for d in accepted["deliveries"] if d["recipient_code"] == c.agency_code)

    seen_by_b = await document(api, b, accepted["id"])
    assert [d["recipient_code"] for d in seen_by_b["deliveries"]] == [b.agency_code]
    assert c.agency_code not in json.dumps(seen_by_b)

    # b cannot move c's delivery either
    response = await report(api, b, c_delivery, "01")
    assert_problem(response, 404, "delivery_not_found")
    seen_by_c = await document(api, c, accepted["id"])
    assert seen_by_c["deliveries"][0]["status"] == "pending"


async def test_sender_cannot_report_a_status_on_a_recipients_delivery(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = accepted["deliveries"][0]["id"]

    response = await report(api, sender, delivery_id, "01")
    assert_problem(response, 404, "delivery_not_found")
    assert_problem(await report(api, recipient, str(uuid.uuid4()), "01"), 404, "delivery_not_found")

    [delivery] = (await document(api, sender, accepted["id"]))["deliveries"]
    assert (delivery["status"], history(delivery)) == ("pending", ["pending"])


async def test_without_documents_send_scope_nothing_is_sent(api: Api) -> None:
    recipient = await api.agency_client()
    receive_only = await api.agency_client(scopes=[Scope.RECEIVE])
    response = await api.send(receive_only, [recipient.agency_code])
    body = assert_problem(response, 403, "forbidden")
    assert body["required_scope"] == Scope.SEND
    assert await inbox_ids(api, recipient) == []
    assert blobs(api) == []


async def test_without_a_valid_token_the_answer_is_401_and_admin_has_no_inbox(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    anonymous = Client(sender.agency_code, sender.client_id, sender.client_secret, "not-a-token")
    response = await api.send(anonymous, [recipient.agency_code])
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_problem(await api.http.get("/v1/inbox"), 401, "unauthorized")
    assert_problem(await api.http.get("/v1/inbox", headers=await api.admin()), 403, "forbidden")
    assert await inbox_ids(api, recipient) == []


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
    assert history(delivery) == ["pending", "01", "03", "04", "05", "06"]
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
    assert history(delivery) == ["pending", "01"]


async def test_rejection_needs_a_reason(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = accepted["deliveries"][0]["id"]
    assert (await report(api, recipient, delivery_id, "01")).status_code == 200

    assert_problem(await report(api, recipient, delivery_id, "02"), 422, "metadata_invalid")
    assert_problem(await report(api, recipient, delivery_id, "02", note="   "), 422, "metadata_invalid")
    [delivery] = (await document(api, sender, accepted["id"]))["deliveries"]
    assert (delivery["status"], history(delivery)) == ("01", ["pending", "01"])

    rejected = await report(api, recipient, delivery_id, "02", note="Gửi nhầm đơn vị")
    assert rejected.status_code == 200
    [delivery] = (await document(api, sender, accepted["id"]))["deliveries"]
    assert delivery["status"] == "02"
    assert delivery["history"][-1]["note"] == "Gửi nhầm đơn vị"
    body = assert_problem(await report(api, recipient, delivery_id, "03"), 409, "delivery_transition_invalid")
    assert body["allowed_next"] == []


# --- refused documents change nothing --------------------------------------------------------


async def test_unknown_recipient_is_refused_and_nobody_receives(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    unknown = random_code("Z")
    response = await api.send(sender, [recipient.agency_code, unknown])
    body = assert_problem(response, 422, "recipient_invalid")
    assert body["unknown_recipients"] == [unknown]
    assert body["inactive_recipients"] == []
    assert await inbox_ids(api, recipient) == []
    assert await inbox_ids(api, sender) == []
    assert blobs(api) == []


async def test_metadata_that_is_not_json_is_refused(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    for raw in ["{not json", "[1, 2", "Kế hoạch"]:
        response = await api.http.post(
            "/v1/documents",
            data={"metadata": raw},
            files=[("files", ("van-ban.pdf", PDF, "application/pdf"))],
            headers=sender.auth,
        )
        body = assert_problem(response, 422, "metadata_invalid")
        assert "not JSON" in body["detail"], raw
    assert await inbox_ids(api, recipient) == []
    assert blobs(api) == []


async def test_metadata_not_matching_the_schema_is_refused(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    cases: list[tuple[dict[str, Any], list[Any] | None]] = [
        ({"urgency": 9}, ["urgency"]),
        ({"code_number": "1" * 12}, ["code_number"]),
        ({"sender_code": recipient.agency_code}, ["sender_code"]),
        ({"recipients": []}, None),  # addressed to nobody
        ({"recipients": [recipient.agency_code, "UBND-TINH"]}, ["recipients", 1]),
        ({"subject": "   "}, ["subject"]),
        ({"promulgation_date": "20/11/2026"}, ["promulgation_date"]),
    ]
    for overrides, loc in cases:
        data = {"metadata": json.dumps({**metadata([recipient.agency_code]), **overrides})}
        response = await api.http.post(
            "/v1/documents", data=data, files=[("files", ("a.pdf", PDF, "application/pdf"))], headers=sender.auth
        )
        body = assert_problem(response, 422, "metadata_invalid")
        assert loc is None or loc in [e["loc"] for e in body["errors"]], overrides
    array = await api.http.post(
        "/v1/documents",
        data={"metadata": "[]"},
        files=[("files", ("a.pdf", PDF, "application/pdf"))],
        headers=sender.auth,
    )
    assert_problem(array, 422, "metadata_invalid")
    assert await inbox_ids(api, recipient) == []
    assert blobs(api) == []


async def test_attachment_of_a_refused_kind_is_415_and_nothing_is_kept(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    for name, content in [("ghi-chu.txt", "Họp lúc 9 giờ".encode()), ("bao-cao.pdf", b"MZ\x90\x00not a pdf")]:
        files = [("van-ban.pdf", PDF, "application/pdf"), (name, content, "application/pdf")]
        response = await api.send(sender, [recipient.agency_code], files=files)
        body = assert_problem(response, 415, "attachment_type_not_allowed")
        assert body["file_name"] == name
        assert "application/pdf" in body["allowed"]
    assert await inbox_ids(api, recipient) == []
    assert upload_leftovers(api) == []


async def test_document_without_files_is_refused(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await api.send(sender, [recipient.agency_code], files=[])
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    without_metadata = await api.http.post(
        "/v1/documents", files=[("files", ("a.pdf", PDF, "application/pdf"))], headers=sender.auth
    )
    assert_problem(without_metadata, 422, "validation_failed")
    assert await inbox_ids(api, recipient) == []


async def test_attachment_over_the_limit_is_413_and_nothing_is_kept(small_api: Api) -> None:
    api = small_api
    sender, recipient = await api.agency_client(), await api.agency_client()
    too_big = b"%PDF-1.7\n" + b"0" * SMALL_LIMIT
    response = await api.send(sender, [recipient.agency_code], files=[("lon.pdf", too_big, "application/pdf")])
    body = assert_problem(response, 413, "payload_too_large")
    assert body["max_bytes"] == SMALL_LIMIT
    assert await inbox_ids(api, recipient) == []
    assert blobs(api) == []
    assert upload_leftovers(api) == []

    exactly = b"%PDF-1.7\n" + b"0" * (SMALL_LIMIT - 9)
    assert len(exactly) == SMALL_LIMIT
    accepted = await send_ok(api, sender, [recipient], files=[("vua.pdf", exactly, "application/pdf")])
    assert accepted["attachments"][0]["size"] == SMALL_LIMIT
    assert await inbox_ids(api, recipient) == [accepted["id"]]


async def test_refused_document_leaves_no_blob_behind(small_api: Api) -> None:
    api = small_api
    sender, recipient = await api.agency_client(), await api.agency_client()
    too_big = b"%PDF-1.7\n" + b"0" * SMALL_LIMIT
    files = [("nho.pdf", PDF, "application/pdf"), ("lon.pdf", too_big, "application/pdf")]
    assert_problem(await api.send(sender, [recipient.agency_code], files=files), 413, "payload_too_large")
    files = [("nho.pdf", PDF, "application/pdf"), ("ghi-chu.txt", b"plain text", "text/plain")]
    assert_problem(await api.send(sender, [recipient.agency_code], files=files), 415, "attachment_type_not_allowed")
    assert await inbox_ids(api, recipient) == []
    assert blobs(api) == []


# --- idempotency -----------------------------------------------------------------------------


async def test_idempotency_key_replay_returns_the_original_document(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    key = {"Idempotency-Key": f"qlvb-{uuid.uuid4()}"}
    first = await api.send(sender, [recipient.agency_code], headers=key, code_number="31")
    assert first.status_code == 202
    again = await api.send(sender, [recipient.agency_code], headers=key, code_number="31")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await inbox_ids(api, recipient) == [first.json()["id"]]

    other_key = await api.send(sender, [recipient.agency_code], headers={"Idempotency-Key": f"qlvb-{uuid.uuid4()}"})
    no_key = await api.send(sender, [recipient.agency_code])
    assert (other_key.status_code, no_key.status_code) == (202, 202)
    assert len({first.json()["id"], other_key.json()["id"], no_key.json()["id"]}) == 3
    assert len(await inbox_ids(api, recipient)) == 3


async def test_idempotency_keys_belong_to_their_sender(api: Api) -> None:
    a, b, recipient = await api.agency_client(), await api.agency_client(), await api.agency_client()
    key = {"Idempotency-Key": "same-key"}
    from_a = await api.send(a, [recipient.agency_code], headers=key)
    from_b = await api.send(b, [recipient.agency_code], headers=key)
    assert (from_a.status_code, from_b.status_code) == (202, 202)
    assert from_a.json()["id"] != from_b.json()["id"]
    assert sorted(await inbox_ids(api, recipient)) == sorted([from_a.json()["id"], from_b.json()["id"]])


async def test_refused_request_does_not_burn_its_idempotency_key(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    key = {"Idempotency-Key": "retry-me"}
    refused = await api.send(sender, [recipient.agency_code, random_code("Z")], headers=key)
    assert_problem(refused, 422, "recipient_invalid")
    retried = await api.send(sender, [recipient.agency_code], headers=key)
    assert retried.status_code == 202
    assert await inbox_ids(api, recipient) == [retried.json()["id"]]


async def test_replay_with_several_recipients_is_the_original_answer(api: Api) -> None:
    sender, b, c = await api.agency_client(), await api.agency_client(), await api.agency_client()
    ordered = sorted([b.agency_code, c.agency_code], reverse=True)  # not in code order
    key = {"Idempotency-Key": "two-recipients"}
    first = await api.send(sender, ordered, headers=key, code_number="32")
    again = await api.send(sender, ordered, headers=key, code_number="32")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()


async def test_concurrent_requests_with_one_idempotency_key_create_one_document(api: Api) -> None:
    """All three requests pass the replay check before any inserts (see writes_held)."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    key = {"Idempotency-Key": "double-click"}
    calls = [api.send(sender, [recipient.agency_code], headers=key, code_number="33") for _ in range(3)]
    statuses = await race(api, "exchange", "document", calls)
    assert sorted(statuses, key=str) == [202, 409, 409]
    assert len(await inbox_ids(api, recipient)) == 1
    replay = await api.send(sender, [recipient.agency_code], headers=key, code_number="33")
    assert replay.status_code == 200
    assert await inbox_ids(api, recipient) == [replay.json()["id"]]


# --- inbox -----------------------------------------------------------------------------------


async def test_inbox_filters_by_status_and_pages_newest_first(api: Api) -> None:
    sender, recipient, other = await api.agency_client(), await api.agency_client(), await api.agency_client()
    ids = [(await send_ok(api, sender, [recipient], subject=f"Văn bản {n}"))["id"] for n in range(3)]
    await send_ok(api, sender, [other])
    first_delivery = (await inbox(api, recipient))["items"][-1]
    assert first_delivery["document_id"] == ids[0]
    assert (await report(api, recipient, first_delivery["delivery_id"], "01")).status_code == 200

    page1 = await inbox(api, recipient, limit=2)
    assert [i["document_id"] for i in page1["items"]] == [ids[2], ids[1]]
    assert page1["next_cursor"]
    page2 = await inbox(api, recipient, limit=2, cursor=page1["next_cursor"])
    assert [i["document_id"] for i in page2["items"]] == [ids[0]]
    assert page2["next_cursor"] is None

    pending = await inbox(api, recipient, status="pending")
    assert [i["document_id"] for i in pending["items"]] == [ids[2], ids[1]]
    arrived = await inbox(api, recipient, status="01")
    assert [(i["document_id"], i["status"]) for i in arrived["items"]] == [(ids[0], "01")]
    assert (await inbox(api, recipient, status="06"))["items"] == []

    pending_page = await inbox(api, recipient, status="pending", limit=1)
    assert [i["document_id"] for i in pending_page["items"]] == [ids[2]]
    rest = await inbox(api, recipient, status="pending", limit=1, cursor=pending_page["next_cursor"])
    assert [i["document_id"] for i in rest["items"]] == [ids[1]]
    assert rest["next_cursor"] is None


async def test_bad_inbox_parameters_are_refused(api: Api) -> None:
    recipient = await api.agency_client()
    for params, status, code in [
        ({"status": "99"}, 422, "validation_failed"),
        ({"status": "arrived"}, 422, "validation_failed"),
        ({"limit": 0}, 422, "validation_failed"),
        ({"limit": 501}, 422, "validation_failed"),
        ({"cursor": "zzz"}, 400, "bad_request"),
        ({"cursor": "not a cursor!"}, 400, "bad_request"),
    ]:
        response = await api.http.get("/v1/inbox", params=params, headers=recipient.auth)
        assert_problem(response, status, code)
