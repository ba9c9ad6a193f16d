"""Sending a document through the gateway: the first slice end to end, refused documents (which change
nothing), state secrets, Decree 30 metadata and broadcast to a group."""

from __future__ import annotations

import hashlib
import json
import secrets
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from services.exchange.config import ExchangeSection
from tests.conftest import ONE_DATABASE, running_system
from tests.helpers import (
    PDF,
    Api,
    Client,
    assert_problem,
    blobs,
    delivery_for,
    document,
    inbox,
    inbox_ids,
    inbox_items,
    metadata,
    random_code,
    report,
    send_ok,
    sent_items,
    snapshot,
    statuses,
    upload_leftovers,
)

XML = '<?xml version="1.0" encoding="UTF-8"?><phuLuc>Danh sách đơn vị</phuLuc>'.encode()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"


SMALL_LIMIT = 1024


@pytest.fixture
async def small_api(database_url: str | None, tmp_path: Path) -> AsyncIterator[Api]:
    """Like `api`, with attachments limited to SMALL_LIMIT bytes."""
    exchange = ExchangeSection(max_attachment_bytes=SMALL_LIMIT)
    async with running_system(tmp_path / "var", database_url, exchange=exchange) as caller:
        yield caller


def codes(*clients: Client) -> list[str]:
    return [c.agency_code for c in clients]


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
    assert statuses(sender_view) == ["pending", "01"]
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


@ONE_DATABASE
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


@ONE_DATABASE
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


@ONE_DATABASE
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


@ONE_DATABASE
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


@ONE_DATABASE
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


@ONE_DATABASE
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


# --- state secrets -------------------------------------------------------------------------------


@ONE_DATABASE
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


@ONE_DATABASE
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
        ("NĐ", "Nghị định", "NĐ"),
        ("Hướng dẫn liên ngành", "Hướng dẫn liên ngành", None),  # any other type, as given
    ]
    for given, name, abbreviation in cases:
        accepted = await send_ok(api, sender, [recipient], type_name=given)
        seen = await document(api, recipient, accepted["id"])
        assert (seen["type_name"], seen["type_code"]) == (name, abbreviation), given
        [item] = [i for i in await inbox_items(api, recipient) if i["document_id"] == accepted["id"]]
        assert item["type_name"] == name

    before = await snapshot(api, sender, recipient)
    for unknown in ["Sao y", "hd", "x" * 101]:  # a copy form; Hướng dẫn or Hợp đồng; too long
        response = await api.send(sender, [recipient.agency_code], type_name=unknown)
        body = assert_problem(response, 422, "metadata_invalid")
        assert [e["loc"] for e in body["errors"]] == [["type_name"]], unknown
    assert await snapshot(api, sender, recipient) == before


@ONE_DATABASE
async def test_field_limits_and_dates(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    refused: list[tuple[dict[str, Any], list[Any]]] = [
        ({"subject": "V" * 501}, ["subject"]),
        ({"code_notation": "K" * 31}, ["code_notation"]),
        ({"code_number": "1" * 12}, ["code_number"]),
        ({"signer": {"position": "Chủ tịch", "full_name": "N" * 51}}, ["signer", "full_name"]),
        ({"urgency": 4}, ["urgency"]),  # hỏa tốc hẹn giờ: read from old packets, not offered
        ({"page_count": 1000}, ["page_count"]),
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
        urgency=3,
        page_count=999,
        promulgation_date="2026-11-20",
        due_date="2026-11-20",
    )
    seen = await document(api, recipient, accepted["id"])
    assert (seen["subject"], seen["code_notation"], seen["signer"]["full_name"]) == ("Ề" * 500, "K" * 30, "N" * 50)
    assert (seen["urgency"], seen["page_count"], seen["due_date"]) == (3, 999, "2026-11-20")


async def test_length_limits_apply_to_the_stored_nfc_text(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    subject = "Kế hoạch triển khai chuyển đổi số " * 12  # 408 characters in NFC
    nfd = unicodedata.normalize("NFD", subject)
    assert len(subject) <= 500 < len(nfd)
    response = await api.send(sender, [recipient.agency_code], subject=nfd)
    assert response.status_code == 202, response.text
    assert (await document(api, recipient, response.json()["id"]))["subject"] == subject.strip()


@ONE_DATABASE
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
