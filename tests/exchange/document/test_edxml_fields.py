"""The document holds what an edXML packet carries: codes of either form (an agency known only by
its Decision 20/2020 code registers, is addressed and sends), the DocumentId, the packet's other
fields, the organ info of sender and recipients frozen at send time, the trace and Bussiness."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, assert_problem, document, send_ok, snapshot

LONGEST = "H41" + ".123" * 8  # a Decision 20/2020 code of 35 characters


# PostgreSQL only: it is the database that holds a code to its column's width (SQLite does not)
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_codes_of_either_form_and_the_edxml_fields_are_kept(api: Api) -> None:
    admin = await api.admin()
    # an agency known only by its Decision 20 code: registered, addressed and sending
    d20 = await api.create_agency(LONGEST.lower(), email="vanthu@example.gov.vn", phone="0238 3844 000")
    assert (d20["code"], d20["new_code"]) == (LONGEST, LONGEST)
    for code, new_code in [("H4", None), ("H41.1234", None), ("H41" + ".1" * 17, None), ("H41.1", "H42")]:
        body = {"code": code, "name": "Sở", "level": "department", "new_code": new_code}
        assert_problem(await api.http.post("/v1/agencies", json=body, headers=admin), 422, "validation_failed")
    renamed = await api.http.patch(f"/v1/agencies/{LONGEST}", json={"new_code": "H42"}, headers=admin)
    assert_problem(renamed, 422, "validation_failed")  # its code is its Decision 20 code, for good
    old = await api.agency_client()
    new = await api.agency_client(LONGEST)
    fields: dict[str, Any] = {
        "type_name": "Nghị định",
        "type_number": "2",
        "type_detail": "0",
        "copy_form": "Sao y",
        "confidentiality": "Lưu hành nội bộ",
        "content": "Nội dung văn bản",
        "to_places": ["Như trên", "Lưu: VT"],
        "language": "vi",
        "sphere_of_promulgation": "Toàn quốc",
        "typer_notation": "NVA",
        "promulgation_amount": 5,
        "direction": True,
        "appendixes": ["Phụ lục I"],
        "response_for": [{"organ_id": "000.00.00.g22", "code": "7816/VPCP-TTĐT", "promulgation_date": "2015-09-30"}],
        "paper": True,
        "staff_info": {"department": "Văn phòng", "staff": "Trần Thị B", "mobile": "0912000000"},
        "attachments": [{"description": "Văn bản chính", "content_id": "main.pdf"}],
    }
    accepted = await send_ok(api, new, [old], code_number="05", code_notation="NĐ-CP", **fields)
    seen = await document(api, new, accepted["id"])
    assert seen["edxml_document_id"] == f"{LONGEST},2026/11/20,05/NĐ-CP"
    expected = {k: v for k, v in fields.items() if k not in ("confidentiality", "paper", "staff_info", "attachments")}
    expected.update(copy_form="SY", circulation="Lưu hành nội bộ")
    expected["response_for"] = [{**fields["response_for"][0], "organ_id": "000.00.00.G22"}]
    got = {k: seen[k] for k in expected}
    for item in got["response_for"]:
        assert item.pop("document_id") is None and item.pop("edxml_document_id") is None
    assert got == expected
    assert seen["sender_organ"]["organ_id"] == LONGEST
    assert (seen["sender_organ"]["email"], seen["sender_organ"]["telephone"]) == (d20["email"], d20["phone"])
    assert seen["trace"][0]["organ_id"] == LONGEST
    assert seen["business"] == {
        "document_id": seen["edxml_document_id"],
        "bussiness_doc_type": 0,
        "bussiness_doc_reason": None,
        "paper": True,
        "staff_info": {**fields["staff_info"], "email": None},
        "document_info": None,
        "document_receiver": None,
        "receiver_list": [],
        "replacement_info_list": [],
    }
    [attachment] = seen["attachments"]
    assert (attachment["content_id"], attachment["description"]) == ("main.pdf", "Văn bản chính")
    [delivery] = seen["deliveries"]
    assert delivery["organ"]["organ_id"] == old.agency_code and delivery["organ"]["organ_name"]
    assert [e["actor_code"] for e in delivery["history"]] == [LONGEST]

    # the old-form agency answers to the new-form one; a given DocumentId is unique per sender
    given = "000.00.00.G22,2026/11/20,7816/VPCP-TTĐT"
    reply = await send_ok(api, old, [new], edxml_document_id=given, code_number="7816")
    assert (await document(api, new, reply["id"]))["edxml_document_id"] == given
    before = await snapshot(api, old, new)
    again = await api.send(old, [new.agency_code], edxml_document_id=given, code_number="7817")
    assert_problem(again, 409, "document_duplicate")
    secret = await api.send(old, [new.agency_code], circulation="Tối mật", code_number="7818")
    assert_problem(secret, 422, "document_classified")
    too_many = await api.send(old, [new.agency_code], attachments=[{}, {}], code_number="7819")
    assert_problem(too_many, 422, "metadata_invalid")
    assert await snapshot(api, old, new) == before
