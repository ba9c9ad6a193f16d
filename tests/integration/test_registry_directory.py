"""The registry's directory through the gateway: codes in both national forms, Vietnamese names and
search, levels as data, a hierarchy of any depth, the lifecycle and its history, recipient groups,
delivery endpoints, certificates, API clients, bulk import and export, and who may change what.

Every test runs on SQLite and on PostgreSQL (the ``api`` fixture) and builds its own agencies with
random codes. Refused requests are checked to have changed nothing.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import os
import random
import string
import unicodedata
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.auth import Scope
from tests.helpers import Api, assert_problem, poll, random_code, send

DEFAULT_LEVELS = [("province", 10), ("department", 20), ("district", 30), ("commune", 40), ("other", 90)]
EXPORT_HEADER = "code,new_code,name,short_name,level,parent_code,email,phone,address,website,status,successor_code"


# --- codes -----------------------------------------------------------------------------------


async def test_qcvn_102_code_forms(api: Api) -> None:
    created = await api.create_agency("000.00.00.H41", level="province")
    assert created["code"] == "000.00.00.H41"
    lower = random_code()
    assert (await api.create_agency(lower.lower()))["code"] == lower

    for code in ["00.00.00.H41", "000.00.00.h4", "000.00.00.41H", "", "000.00.00", "000.00.00.H411", "000-00-00-H41"]:
        response = await api.http.post(
            "/v1/agencies", json={"code": code, "name": "Sở thử", "level": "department"}, headers=await api.admin()
        )
        body = assert_problem(response, 422, "validation_failed")
        assert ["body", "code"] in [e["loc"] for e in body["errors"]], code
    assert await codes_of(api) == sorted(["000.00.00.H41", lower])


async def test_decision_20_new_code_forms(api: Api) -> None:
    for new_code in ["H41", "H52.101.114", "h40.1"]:
        created = await api.create_agency(new_code=new_code)
        assert created["new_code"] == new_code.upper()

    for new_code in ["52.H", "H5", "H52.1234", "H52.1.2.3.4", "41", ""]:
        code = random_code()
        response = await api.http.post(
            "/v1/agencies",
            json={"code": code, "new_code": new_code, "name": "Sở thử", "level": "department"},
            headers=await api.admin(),
        )
        body = assert_problem(response, 422, "validation_failed")
        assert ["body", "new_code"] in [e["loc"] for e in body["errors"]], new_code
        assert_problem(await api.http.get(f"/v1/agencies/{code}", headers=await api.admin()), 404, "agency_not_found")
    assert len(await codes_of(api)) == 3


async def test_new_code_is_unique(api: Api) -> None:
    first = await api.create_agency(new_code="H52.101.114", name="Ủy ban nhân dân xã Thử Nhất")
    taken = random_code()
    response = await api.http.post(
        "/v1/agencies",
        json={"code": taken, "new_code": "h52.101.114", "name": "Xã khác", "level": "commune"},
        headers=await api.admin(),
    )
    body = assert_problem(response, 409, "agency_exists")
    assert body["agency_code"] == first["code"]
    assert_problem(await api.http.get(f"/v1/agencies/{taken}", headers=await api.admin()), 404, "agency_not_found")

    other = await api.create_agency(new_code="H52.101.115")
    patch = await api.http.patch(
        f"/v1/agencies/{other['code']}", json={"new_code": "H52.101.114"}, headers=await api.admin()
    )
    assert_problem(patch, 409, "agency_exists")
    assert (await get_agency(api, other["code"]))["new_code"] == "H52.101.115"
    assert (await get_agency(api, "H52.101.114"))["code"] == first["code"]
    assert await codes_of(api) == sorted([first["code"], other["code"]])


async def test_get_and_lookup_by_either_code_form(api: Api) -> None:
    a = await api.create_agency(new_code="H41", level="province")
    b = await api.create_agency(new_code="H52.101.114", level="commune")
    by_code = await get_agency(api, a["code"])
    assert await get_agency(api, "H41") == by_code
    assert await get_agency(api, "h41") == by_code
    assert (await get_agency(api, "H52.101.114"))["code"] == b["code"]

    unknown_new, unknown_old = "H99.999", random_code("Z")
    response = await api.http.post(
        "/v1/agencies/lookup",
        json={"codes": [a["code"], "h52.101.114", unknown_new, unknown_old]},
        headers=await api.admin(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(x["code"] for x in body["found"]) == sorted([a["code"], b["code"]])
    assert body["missing"] == sorted([unknown_new, unknown_old])


async def test_codes_in_request_bodies_accept_the_decision_20_form(api: Api) -> None:
    province = await api.create_agency(level="province", new_code="H41")
    code = random_code()
    created = await api.http.post(
        "/v1/agencies",
        json={"code": code, "name": "Sở Thử", "level": "department", "parent_code": "H41"},
        headers=await api.admin(),
    )
    assert created.status_code == 201, created.text
    assert created.json()["parent_code"] == province["code"]
    other = await api.create_agency()
    moved = await api.http.patch(
        f"/v1/agencies/{other['code']}", json={"parent_code": "H41"}, headers=await api.admin()
    )
    assert moved.status_code == 200, moved.text
    group = await api.http.post(
        "/v1/groups",
        json={"name": "tinh", "title": "Tỉnh", "members": ["H41"], "rules": [{"under": "H41", "level": "department"}]},
        headers=await api.admin(),
    )
    assert group.status_code == 201, group.text
    assert await member_codes(api, "tinh") == sorted([province["code"], code, other["code"]])
    retired = await api.http.post(
        f"/v1/agencies/{code}/status", json={"status": "retired", "successor_code": "H41"}, headers=await api.admin()
    )
    assert retired.status_code == 200, retired.text
    assert retired.json()["successor_code"] == province["code"]


# --- names and search ------------------------------------------------------------------------


async def test_names_are_stored_in_nfc(api: Api) -> None:
    name, short = "Sở Tài nguyên và Môi trường tỉnh Nghệ An", "Sở TN&MT"
    nfd_name, nfd_short = unicodedata.normalize("NFD", name), unicodedata.normalize("NFD", short)
    assert nfd_name != name
    created = await api.create_agency(name=nfd_name, short_name=nfd_short, address=unicodedata.normalize("NFD", "Vinh"))
    assert created["name"] == name and created["short_name"] == short
    fetched = await get_agency(api, created["code"])
    assert fetched["name"] == name
    assert unicodedata.is_normalized("NFC", fetched["name"])
    assert unicodedata.is_normalized("NFC", fetched["short_name"])

    patched = await api.http.patch(
        f"/v1/agencies/{created['code']}",
        json={"name": unicodedata.normalize("NFD", "Sở Xây dựng")},
        headers=await api.admin(),
    )
    assert patched.status_code == 200, patched.text
    assert (await get_agency(api, created["code"]))["name"] == "Sở Xây dựng"


async def test_search_without_diacritics(api: Api) -> None:
    token, other_token = random_word(), random_word()
    wanted = await api.create_agency(name=f"Sở Tài chính thử nghiệm {token}")
    await api.create_agency(name=f"Sở Tài nguyên thử nghiệm {token}")
    await api.create_agency(name=f"Sở Tài chính thử nghiệm {other_token}")
    await api.create_agency(name=unicodedata.normalize("NFD", f"Đài Phát thanh {token}"))

    assert await codes_of(api, q=f"so tai chinh {token}") == [wanted["code"]]
    assert await codes_of(api, q=f"SO TAI CHINH {token.upper()}") == [wanted["code"]]
    assert await codes_of(api, q=unicodedata.normalize("NFD", f"Sở Tài Chính {token}")) == [wanted["code"]]
    assert len(await codes_of(api, q=f"dai phat thanh {token}")) == 1
    assert len(await codes_of(api, q=token)) == 3
    assert await codes_of(api, q=f"so tai chinh {token} khongco") == []
    assert await codes_of(api, q=f"zq{random_word()}") == []


# --- levels ----------------------------------------------------------------------------------


async def test_levels_are_data(api: Api) -> None:
    levels = await api.http.get("/v1/agency-levels", headers=await api.admin())
    assert levels.status_code == 200, levels.text
    assert [(lv["code"], lv["rank"]) for lv in levels.json()] == DEFAULT_LEVELS

    code = random_code()
    unknown = await api.http.post(
        "/v1/agencies", json={"code": code, "name": "Thôn Thử", "level": "village"}, headers=await api.admin()
    )
    body = assert_problem(unknown, 422, "agency_level_unknown")
    assert body["known_levels"] == [c for c, _ in DEFAULT_LEVELS]
    assert await codes_of(api) == []

    added = await api.http.post(
        "/v1/agency-levels",
        json={"code": "village", "name": unicodedata.normalize("NFD", "Thôn, bản, tổ dân phố"), "rank": 50},
        headers=await api.admin(),
    )
    assert added.status_code == 201, added.text
    assert added.json() == {"code": "village", "name": "Thôn, bản, tổ dân phố", "rank": 50}
    listed = (await api.http.get("/v1/agency-levels", headers=await api.admin())).json()
    assert [(lv["code"], lv["rank"]) for lv in listed] == [*DEFAULT_LEVELS[:4], ("village", 50), ("other", 90)]
    village = await api.create_agency(code, level="village", name="Thôn Thử")
    assert village["level"] == "village"
    assert await codes_of(api, level="village") == [code]

    again = await api.http.post(
        "/v1/agency-levels", json={"code": "village", "name": "Thôn"}, headers=await api.admin()
    )
    assert_problem(again, 409, "agency_level_exists")

    agency = await api.agency_client()
    refused = await api.http.post("/v1/agency-levels", json={"code": "hamlet", "name": "Xóm"}, headers=agency.auth)
    body = assert_problem(refused, 403, "forbidden")
    assert body["required_scope"] == Scope.REGISTRY_ADMIN
    after = (await api.http.get("/v1/agency-levels", headers=agency.auth)).json()
    assert after == listed


# --- hierarchy -------------------------------------------------------------------------------


async def test_hierarchy_of_any_depth(api: Api) -> None:
    await add_level(api, "village", 50)
    t = await build_tree(api)
    unrelated = await api.create_agency(level="province")

    below_province = [t.district, t.commune, t.village, t.hamlet, t.district2, t.commune2, t.department]
    assert await codes_of(api, subtree=t.province) == sorted(below_province)
    assert await codes_of(api, subtree=t.district) == sorted([t.commune, t.village, t.hamlet])
    assert await codes_of(api, subtree=t.village) == [t.hamlet]
    assert await codes_of(api, subtree=t.hamlet) == []
    assert await codes_of(api, subtree=t.province, level="commune") == sorted([t.commune, t.commune2])
    assert await codes_of(api, parent=t.province) == sorted([t.district, t.district2, t.department])
    assert await codes_of(api, parent=t.commune) == [t.village]
    assert unrelated["code"] not in await codes_of(api, subtree=t.province)

    tree = await api.http.get("/v1/agencies/tree", params={"root": t.province}, headers=await api.admin())
    assert tree.status_code == 200, tree.text
    expected = (
        t.province,
        sorted(
            [
                (t.district, [(t.commune, [(t.village, [(t.hamlet, [])])])]),
                (t.district2, [(t.commune2, [])]),
                (t.department, []),
            ]
        ),
    )
    assert [shape(node) for node in tree.json()] == [expected]
    root = tree.json()[0]
    assert root["level"] == "province" and root["status"] == "active"
    district = next(n for n in root["children"] if n["code"] == t.district)
    assert district["children"][0]["children"][0]["level"] == "village"

    unknown = random_code("Z")
    for params in [{"subtree": unknown}, {"parent": unknown}]:
        response = await api.http.get("/v1/agencies", params=params, headers=await api.admin())
        assert_problem(response, 404, "agency_not_found")
    missing_root = await api.http.get("/v1/agencies/tree", params={"root": unknown}, headers=await api.admin())
    assert_problem(missing_root, 404, "agency_not_found")

    whole = await api.http.get("/v1/agencies/tree", headers=await api.admin())
    assert sorted(shape(node) for node in whole.json()) == sorted([expected, (unrelated["code"], [])])


async def test_moving_under_a_descendant_is_a_cycle_and_changes_nothing(api: Api) -> None:
    await add_level(api, "village", 50)
    t = await build_tree(api)
    before = await get_agency(api, t.district)
    history = await history_of(api, t.district)

    for target in [t.hamlet, t.commune, t.district]:
        response = await api.http.patch(
            f"/v1/agencies/{t.district}",
            json={"name": "Tên mới không được lưu", "parent_code": target},
            headers=await api.admin(),
        )
        assert_problem(response, 409, "hierarchy_cycle")
    unknown_parent = await api.http.patch(
        f"/v1/agencies/{t.district}",
        json={"name": "Tên mới không được lưu", "parent_code": random_code("Z")},
        headers=await api.admin(),
    )
    assert_problem(unknown_parent, 404, "parent_agency_not_found")
    assert await get_agency(api, t.district) == before
    assert await history_of(api, t.district) == history
    assert await codes_of(api, subtree=t.district) == sorted([t.commune, t.village, t.hamlet])
    assert await codes_of(api, subtree=t.province) == sorted(
        [t.district, t.commune, t.village, t.hamlet, t.district2, t.commune2, t.department]
    )

    # a legal move is a data change like any other
    moved = await api.http.patch(
        f"/v1/agencies/{t.village}", json={"parent_code": t.commune2}, headers=await api.admin()
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_code"] == t.commune2
    assert await codes_of(api, subtree=t.district2) == sorted([t.commune2, t.village, t.hamlet])


async def test_reform_moves_communes_to_the_province_and_retires_the_district(api: Api) -> None:
    province = (await api.create_agency(level="province", name="Ủy ban nhân dân tỉnh Thử"))["code"]
    district = (await api.create_agency(level="district", parent_code=province))["code"]
    communes = sorted([(await api.create_agency(level="commune", parent_code=district))["code"] for _ in range(3)])
    sender = await api.agency_client((await api.create_agency(parent_code=province))["code"])

    for commune in communes:
        response = await api.http.patch(
            f"/v1/agencies/{commune}", json={"parent_code": province}, headers=await api.admin()
        )
        assert response.status_code == 200, response.text
    retired = await set_status(api, district, "retired", reason="Sắp xếp đơn vị hành chính 2025", successor=province)
    assert retired["status"] == "retired" and retired["successor_code"] == province

    assert await codes_of(api, parent=province) == sorted([district, *communes, sender.agency_code])
    assert await codes_of(api, subtree=district) == []
    assert await codes_of(api, parent=province, level="commune") == communes
    assert [(await get_agency(api, c))["parent_code"] for c in communes] == [province] * 3
    change = (await history_of(api, communes[0]))[-1]
    assert change["action"] == "updated"
    assert change["changes"] == {"parent_code": [district, province]}

    # documents still addressed to the district reach the province
    sent = await send(api, sender, [district])
    assert sent.status_code == 202, sent.text
    assert sent.json()["redirected"] == [{"from_code": district, "to_code": province}]
    assert [d["recipient_code"] for d in sent.json()["deliveries"]] == [province]


async def test_patch_with_null_for_a_required_field_is_refused(api: Api) -> None:
    agency = await api.create_agency(name="Sở Nội vụ")
    response = await api.http.patch(f"/v1/agencies/{agency['code']}", json={"name": None}, headers=await api.admin())
    assert_problem(response, 422, "validation_failed")
    assert (await get_agency(api, agency["code"]))["name"] == "Sở Nội vụ"


# --- lifecycle and history -------------------------------------------------------------------


async def test_suspend_then_retire_with_history(api: Api) -> None:
    started = dt.datetime.now(dt.UTC)
    agency = await api.create_agency(name="Sở Thử")
    successor = await api.create_agency(name="Sở Kế thừa")
    code = agency["code"]
    patched = await api.http.patch(f"/v1/agencies/{code}", json={"phone": "0238 3 844 111"}, headers=await api.admin())
    assert patched.status_code == 200, patched.text

    suspended = await set_status(api, code, "suspended", reason="Tạm dừng để kiểm tra")
    assert suspended["status"] == "suspended"
    assert suspended["status_reason"] == "Tạm dừng để kiểm tra"
    assert suspended["successor_code"] is None
    assert (await get_agency(api, code))["status"] == "suspended"

    for body in [
        {"status": "retired", "reason": "Giải thể"},
        {"status": "retired", "successor_code": code},
        {"status": "retired", "successor_code": random_code("Z")},
        {"status": "suspended", "successor_code": successor["code"]},
    ]:
        response = await api.http.post(f"/v1/agencies/{code}/status", json=body, headers=await api.admin())
        assert_problem(response, 422, "successor_invalid")
    assert await get_agency(api, code) == suspended

    retired = await set_status(api, code, "retired", reason="Sáp nhập", successor=successor["code"])
    assert retired["status"] == "retired"
    assert retired["successor_code"] == successor["code"]
    assert (await get_agency(api, code))["successor_code"] == successor["code"]
    assert await codes_of(api, status="retired") == [code]

    history = await history_of(api, code)
    assert [h["action"] for h in history] == ["created", "updated", "status:suspended", "status:retired"]
    admin_id = api.settings.registry.admin_client_id
    assert {h["actor"] for h in history} == {admin_id}
    assert history[0]["changes"]["code"] == code
    assert history[1]["changes"] == {"phone": [None, "0238 3 844 111"]}
    assert history[2]["changes"]["status"] == ["active", "suspended"]
    assert history[2]["changes"]["reason"] == "Tạm dừng để kiểm tra"
    assert history[3]["changes"] == {
        "status": ["suspended", "retired"],
        "reason": "Sáp nhập",
        "successor_code": successor["code"],
    }
    stamps = [dt.datetime.fromisoformat(h["created_at"]) for h in history]
    assert all(s.tzinfo is not None for s in stamps)
    assert stamps == sorted(stamps)
    assert started - dt.timedelta(seconds=5) <= stamps[0] <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)


async def test_an_agency_reads_its_own_history_only(api: Api) -> None:
    own = await api.agency_client()
    other = await api.create_agency()
    mine = await api.http.get(f"/v1/agencies/{own.agency_code}/history", headers=own.auth)
    assert mine.status_code == 200, mine.text
    assert [h["action"] for h in mine.json()] == ["created"]
    theirs = await api.http.get(f"/v1/agencies/{other['code']}/history", headers=own.auth)
    assert_problem(theirs, 403, "forbidden")


# --- what suspension and retirement do -------------------------------------------------------


async def test_suspended_agency_gets_no_token(api: Api) -> None:
    agency = await api.agency_client()
    await set_status(api, agency.agency_code, "suspended", reason="Kiểm tra")
    response = await api.token(agency.client_id, agency.client_secret)
    # valid credentials of an agency that may not act: 403 (OAuth2's unauthorized_client), not 401
    body = assert_problem(response, 403, "agency_inactive")
    assert "access_token" not in body
    assert body["error"] == "unauthorized_client"
    assert body["agency_status"] == "suspended"

    await set_status(api, agency.agency_code, "active")
    again = await api.token(agency.client_id, agency.client_secret)
    assert again.status_code == 200, again.text
    assert again.json()["agency_code"] == agency.agency_code


async def test_sending_to_a_suspended_agency_is_refused(api: Api) -> None:
    sender = await api.agency_client()
    recipient = await api.agency_client()
    await set_status(api, recipient.agency_code, "suspended", reason="Kiểm tra")

    response = await send(api, sender, [recipient.agency_code])
    body = assert_problem(response, 422, "recipient_invalid")
    assert body["inactive_recipients"] == [{"code": recipient.agency_code, "status": "suspended"}]
    assert body["unknown_recipients"] == []

    # nothing was delivered: once active again, its inbox is empty
    await set_status(api, recipient.agency_code, "active")
    inbox = await poll(
        lambda: api.http.get("/v1/inbox", headers=recipient.auth), lambda r: r.status_code != 403, within=5
    )
    assert inbox.status_code == 200, inbox.text
    assert inbox.json()["items"] == []


async def test_sending_to_a_retired_agency_reaches_its_successor(api: Api) -> None:
    sender = await api.agency_client()
    retired = await api.agency_client()
    successor = await api.agency_client()
    await set_status(api, retired.agency_code, "retired", successor=successor.agency_code)

    response = await send(api, sender, [retired.agency_code])
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["redirected"] == [{"from_code": retired.agency_code, "to_code": successor.agency_code}]
    assert [d["recipient_code"] for d in accepted["deliveries"]] == [successor.agency_code]

    inbox = await api.http.get("/v1/inbox", headers=successor.auth)
    assert [i["document_id"] for i in inbox.json()["items"]] == [accepted["id"]]
    document = await api.http.get(f"/v1/documents/{accepted['id']}", headers=sender.auth)
    assert [d["recipient_code"] for d in document.json()["deliveries"]] == [successor.agency_code]
    # the retired agency's credentials are refused, and it has no delivery of its own
    refused = await api.http.get("/v1/inbox", headers=retired.auth)
    assert_problem(refused, 403, "agency_inactive")

    # a chain of retirements is followed to the agency that is active now
    final = await api.agency_client()
    await set_status(api, successor.agency_code, "retired", successor=final.agency_code)
    chained = await send(api, sender, [retired.agency_code, successor.agency_code])
    assert chained.status_code == 202, chained.text
    assert chained.json()["redirected"] == [
        {"from_code": retired.agency_code, "to_code": final.agency_code},
        {"from_code": successor.agency_code, "to_code": final.agency_code},
    ]
    assert [d["recipient_code"] for d in chained.json()["deliveries"]] == [final.agency_code]
    inbox = await api.http.get("/v1/inbox", headers=final.auth)
    assert [i["document_id"] for i in inbox.json()["items"]] == [chained.json()["id"]]


# --- recipient groups ------------------------------------------------------------------------


async def test_groups_resolve_their_current_active_members(api: Api) -> None:
    province = (await api.create_agency(level="province"))["code"]
    departments = sorted([(await api.create_agency(parent_code=province))["code"] for _ in range(3)])
    district_x = (await api.create_agency(level="district", parent_code=province))["code"]
    district_y = (await api.create_agency(level="district", parent_code=province))["code"]
    communes_x = sorted([(await api.create_agency(level="commune", parent_code=district_x))["code"] for _ in range(2)])
    commune_y = (await api.create_agency(level="commune", parent_code=district_y))["code"]
    retired = (await api.create_agency(level="other"))["code"]
    successor = (await api.create_agency(level="other"))["code"]

    await create_group(api, "static", members=[departments[0], departments[1], retired])
    await create_group(api, "all-departments", rules=[{"level": "department"}])
    await create_group(api, "communes-of-x", rules=[{"level": "commune", "under": district_x}])
    await create_group(api, "districts-of-province", rules=[{"under": province, "level": "district"}])
    await create_group(api, "everything-under-x", rules=[{"under": district_x.lower()}])

    assert await member_codes(api, "all-departments") == departments
    assert await member_codes(api, "communes-of-x") == communes_x
    assert await member_codes(api, "districts-of-province") == sorted([district_x, district_y])
    assert await member_codes(api, "everything-under-x") == communes_x
    assert commune_y not in await member_codes(api, "communes-of-x")

    # suspension and retirement are seen at once, without touching the groups
    await set_status(api, departments[1], "suspended", reason="Kiểm tra")
    await set_status(api, retired, "retired", successor=successor)
    await set_status(api, communes_x[0], "suspended")

    static = await members_of(api, "static")
    assert static["count"] == 2
    assert {m["code"]: m["via"] for m in static["members"]} == {
        departments[0]: "group:static",
        successor: f"group:static,successor:{retired}",
    }
    assert static["skipped"] == [departments[1]]
    assert await member_codes(api, "all-departments") == [departments[0], departments[2]]
    assert await member_codes(api, "communes-of-x") == [communes_x[1]]

    group = await api.http.get("/v1/groups/static", headers=await api.admin())
    assert group.json()["members"] == sorted([departments[0], departments[1], retired])
    listed = await api.http.get("/v1/groups", headers=await api.admin())
    assert [g["name"] for g in listed.json()] == [
        "all-departments",
        "communes-of-x",
        "districts-of-province",
        "everything-under-x",
        "static",
    ]


async def test_group_is_replaced_and_deleted(api: Api) -> None:
    a, b, c = [(await api.create_agency())["code"] for _ in range(3)]
    district = (await api.create_agency(level="district"))["code"]
    commune = (await api.create_agency(level="commune", parent_code=district))["code"]
    created = await create_group(api, "notice", members=[a, b], title="Nhận thông báo")
    assert created["members"] == sorted([a, b]) and created["rules"] == []

    replaced = await api.http.put(
        "/v1/groups/notice",
        json={
            "title": "Nhận thông báo mới",
            "description": "Danh sách sau sắp xếp",
            "members": [c],
            "rules": [{"level": "commune", "under": district}],
        },
        headers=await api.admin(),
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["title"] == "Nhận thông báo mới"
    assert body["members"] == [c]
    assert body["rules"] == [{"level": "commune", "under": district}]
    assert body["created_at"] == created["created_at"]
    assert await member_codes(api, "notice") == sorted([c, commune])
    assert (await api.http.get("/v1/groups/notice", headers=await api.admin())).json() == body

    deleted = await api.http.delete("/v1/groups/notice", headers=await api.admin())
    assert deleted.status_code == 204
    assert_problem(await api.http.get("/v1/groups/notice", headers=await api.admin()), 404, "group_not_found")
    assert_problem(await api.http.get("/v1/groups/notice/members", headers=await api.admin()), 404, "group_not_found")
    assert_problem(await api.http.delete("/v1/groups/notice", headers=await api.admin()), 404, "group_not_found")
    assert (await api.http.get("/v1/groups", headers=await api.admin())).json() == []


async def test_invalid_groups_are_refused_and_nothing_is_written(api: Api) -> None:
    known = (await api.create_agency())["code"]
    unknown_member, unknown_root = random_code("Z"), random_code("Y")
    for definition, detail in [
        ({"members": [known, unknown_member]}, {"unknown_members": [unknown_member]}),
        ({"rules": [{"level": "hamlet"}]}, {"unknown_levels": ["hamlet"]}),
        ({"rules": [{"level": "commune", "under": unknown_root}]}, {"unknown_rule_agencies": [unknown_root]}),
    ]:
        response = await api.http.post(
            "/v1/groups", json={"name": "broken", "title": "Nhóm lỗi", **definition}, headers=await api.admin()
        )
        body = assert_problem(response, 422, "group_invalid")
        for key, value in detail.items():
            assert body[key] == value, body
        assert_problem(await api.http.get("/v1/groups/broken", headers=await api.admin()), 404, "group_not_found")

    empty = await api.http.post("/v1/groups", json={"name": "empty", "title": "Rỗng"}, headers=await api.admin())
    assert_problem(empty, 422, "validation_failed")
    assert (await api.http.get("/v1/groups", headers=await api.admin())).json() == []

    original = await create_group(api, "kept", members=[known])
    duplicate = await api.http.post(
        "/v1/groups",
        json={"name": "kept", "title": "Trùng", "rules": [{"level": "province"}]},
        headers=await api.admin(),
    )
    assert_problem(duplicate, 409, "group_exists")
    bad_put = await api.http.put(
        "/v1/groups/kept", json={"title": "Sửa lỗi", "members": [unknown_member]}, headers=await api.admin()
    )
    assert_problem(bad_put, 422, "group_invalid")
    assert (await api.http.get("/v1/groups/kept", headers=await api.admin())).json() == original

    agency = await api.agency_client()
    refused = await api.http.post(
        "/v1/groups", json={"name": "mine", "title": "Của tôi", "members": [known]}, headers=agency.auth
    )
    assert_problem(refused, 403, "forbidden")
    assert_problem(await api.http.get("/v1/groups/mine", headers=agency.auth), 404, "group_not_found")
    assert [g["name"] for g in (await api.http.get("/v1/groups", headers=agency.auth)).json()] == ["kept"]


async def test_sending_to_a_group_delivers_to_each_current_member_but_the_sender(api: Api) -> None:
    sender = await api.agency_client()
    member = await api.agency_client()
    district = (await api.create_agency(level="district"))["code"]
    communes = []
    for _ in range(2):
        commune = await api.create_agency(level="commune", parent_code=district)
        communes.append(await api.agency_client(commune["code"]))
    suspended = (await api.create_agency())["code"]
    await set_status(api, suspended, "suspended")
    await create_group(
        api,
        "broadcast",
        members=[sender.agency_code, member.agency_code, suspended],
        rules=[{"level": "commune", "under": district}],
    )

    response = await send(api, sender, [], groups=["broadcast"])
    assert response.status_code == 202, response.text
    accepted = response.json()
    expected = sorted([member.agency_code, *(c.agency_code for c in communes)])
    assert sorted(d["recipient_code"] for d in accepted["deliveries"]) == expected
    assert accepted["redirected"] == []
    for receiver in [member, *communes]:
        inbox = await api.http.get("/v1/inbox", headers=receiver.auth)
        assert [i["document_id"] for i in inbox.json()["items"]] == [accepted["id"]]
        assert inbox.json()["items"][0]["sender_code"] == sender.agency_code
    own = await api.http.get("/v1/inbox", headers=sender.auth)
    assert own.json()["items"] == []


async def test_group_changes_reach_the_exchange(api: Api) -> None:
    sender = await api.agency_client()
    receiver = await api.agency_client()

    unknown = await send(api, sender, [], groups=["later"])
    body = assert_problem(unknown, 422, "recipient_invalid")
    assert body["unknown_groups"] == ["later"]

    # the exchange cached "no such group"; creating it empties that cache through an event
    await create_group(api, "later", members=[sender.agency_code])
    only_sender = await poll(
        lambda: send(api, sender, [], groups=["later"]), lambda r: r.json().get("unknown_groups") != ["later"]
    )
    assert_problem(only_sender, 422, "recipient_invalid")
    assert (await api.http.get("/v1/inbox", headers=receiver.auth)).json()["items"] == []

    replaced = await api.http.put(
        "/v1/groups/later",
        json={"title": "Sau", "members": [sender.agency_code, receiver.agency_code]},
        headers=await api.admin(),
    )
    assert replaced.status_code == 200, replaced.text
    sent = await poll(lambda: send(api, sender, [], groups=["later"]), lambda r: r.status_code == 202)
    assert sent.status_code == 202, sent.text
    assert [d["recipient_code"] for d in sent.json()["deliveries"]] == [receiver.agency_code]
    inbox = await api.http.get("/v1/inbox", headers=receiver.auth)
    assert [i["document_id"] for i in inbox.json()["items"]] == [sent.json()["id"]]

    deleted = await api.http.delete("/v1/groups/later", headers=await api.admin())
    assert deleted.status_code == 204
    other = (await api.create_agency())["code"]
    gone = await send(api, sender, [other], groups=["later"])
    body = assert_problem(gone, 422, "recipient_invalid")
    assert body["unknown_groups"] == ["later"]
    assert len((await api.http.get("/v1/inbox", headers=receiver.auth)).json()["items"]) == 1


# --- delivery endpoints ----------------------------------------------------------------------


async def test_delivery_endpoint_defaults_to_pull_and_push_shows_its_secret_once(api: Api) -> None:
    agency = await api.create_agency(new_code="H41")
    code = agency["code"]
    default = await api.http.get(f"/v1/agencies/{code}/endpoint", headers=await api.admin())
    assert default.status_code == 200, default.text
    assert default.json() == {
        "agency_code": code,
        "mode": "pull",
        "webhook_url": None,
        "has_webhook_secret": False,
        "amqp_queue": None,
        "updated_at": None,
    }

    url = "https://qlvb.example.gov.vn/lienthong/webhook"
    pushed = await api.http.put(
        f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
    )
    assert pushed.status_code == 200, pushed.text
    body = pushed.json()
    assert body["mode"] == "push" and body["webhook_url"] == url and body["has_webhook_secret"] is True
    assert isinstance(body["webhook_secret"], str) and len(body["webhook_secret"]) >= 32

    shown = await api.http.get("/v1/agencies/H41/endpoint", headers=await api.admin())
    assert shown.json()["has_webhook_secret"] is True
    assert shown.json()["webhook_url"] == url
    assert "webhook_secret" not in shown.json()
    assert body["webhook_secret"] not in shown.text

    entry = (await history_of(api, code))[-1]
    assert entry["action"] == "endpoint"
    assert entry["actor"] == api.settings.registry.admin_client_id
    assert entry["changes"]["after"] == {"mode": "push", "webhook_url": url, "amqp_queue": None}
    assert body["webhook_secret"] not in json.dumps(entry)

    local = await api.http.put(
        f"/v1/agencies/{code}/endpoint",
        json={"mode": "push", "webhook_url": "http://localhost:8080/hook", "webhook_secret": "s" * 32},
        headers=await api.admin(),
    )
    assert local.status_code == 200, local.text
    assert local.json()["webhook_secret"] is None  # given, not generated: not echoed
    assert local.json()["has_webhook_secret"] is True

    amqp = await api.http.put(
        f"/v1/agencies/{code}/endpoint",
        json={"mode": "amqp", "amqp_queue": "qlvb.h41.inbox"},
        headers=await api.admin(),
    )
    assert amqp.status_code == 200, amqp.text
    assert amqp.json()["mode"] == "amqp" and amqp.json()["amqp_queue"] == "qlvb.h41.inbox"
    assert amqp.json()["has_webhook_secret"] is False and amqp.json()["webhook_secret"] is None
    assert amqp.json()["webhook_url"] is None


async def test_invalid_delivery_endpoints_are_refused(api: Api) -> None:
    code = (await api.create_agency())["code"]
    url = "https://qlvb.example.gov.vn/hook"
    set_up = await api.http.put(
        f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
    )
    assert set_up.status_code == 200
    before = (await api.http.get(f"/v1/agencies/{code}/endpoint", headers=await api.admin())).json()
    history = await history_of(api, code)

    for body in [
        {"mode": "push"},
        {"mode": "push", "webhook_url": "http://example.org/hook"},
        {"mode": "push", "webhook_url": "ftp://example.org/hook"},
        {"mode": "push", "webhook_url": url, "webhook_secret": "short"},
        {"mode": "amqp"},
        {"mode": "amqp", "amqp_queue": "bad queue name"},
        {"mode": "pull", "webhook_url": url},
        {"mode": "pull", "amqp_queue": "q"},
        {"mode": "email"},
    ]:
        response = await api.http.put(f"/v1/agencies/{code}/endpoint", json=body, headers=await api.admin())
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "validation_failed"
    assert (await api.http.get(f"/v1/agencies/{code}/endpoint", headers=await api.admin())).json() == before
    assert await history_of(api, code) == history


async def test_an_agency_sets_its_own_endpoint_only(api: Api) -> None:
    own = await api.agency_client()
    other = await api.agency_client()
    url = "https://van-thu.example.gov.vn/hook"
    response = await api.http.put(
        f"/v1/agencies/{own.agency_code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=own.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["webhook_secret"]
    mine = await api.http.get(f"/v1/agencies/{own.agency_code}/endpoint", headers=own.auth)
    assert mine.json()["mode"] == "push"
    entry = (await history_of(api, own.agency_code))[-1]
    assert entry["action"] == "endpoint" and entry["actor"] == own.client_id

    before = (await api.http.get(f"/v1/agencies/{own.agency_code}/endpoint", headers=await api.admin())).json()
    refused = await api.http.put(
        f"/v1/agencies/{own.agency_code}/endpoint",
        json={"mode": "amqp", "amqp_queue": "steal"},
        headers=other.auth,
    )
    assert_problem(refused, 403, "forbidden")
    assert_problem(await api.http.get(f"/v1/agencies/{own.agency_code}/endpoint", headers=other.auth), 403, "forbidden")
    assert (await api.http.get(f"/v1/agencies/{own.agency_code}/endpoint", headers=await api.admin())).json() == before


async def test_endpoint_history_records_the_previous_mode(api: Api) -> None:
    code = (await api.create_agency())["code"]
    url = "https://qlvb.example.gov.vn/hook"
    response = await api.http.put(
        f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
    )
    assert response.status_code == 200, response.text
    entry = (await history_of(api, code))[-1]
    assert entry["changes"]["before"] == {"mode": "pull", "webhook_url": None, "amqp_queue": None}
    assert entry["changes"]["after"] == {"mode": "push", "webhook_url": url, "amqp_queue": None}


# --- certificates ----------------------------------------------------------------------------


async def test_certificates_in_pem_and_der(api: Api) -> None:
    code = (await api.create_agency(name="Sở Tài chính"))["code"]
    seal, _ = make_certificate("Sở Tài chính tỉnh Nghệ An")
    pem = seal.public_bytes(serialization.Encoding.PEM).decode()
    uploaded = await api.http.post(
        f"/v1/agencies/{code}/certificates", json={"kind": "seal", "certificate": pem}, headers=await api.admin()
    )
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert body["agency_code"] == code and body["kind"] == "seal"
    assert body["subject"] == seal.subject.rfc4514_string()
    assert "CN=Sở Tài chính tỉnh Nghệ An" in body["subject"]
    assert body["issuer"] == seal.issuer.rfc4514_string()
    assert body["serial"] == format(seal.serial_number, "x")
    assert dt.datetime.fromisoformat(body["not_before"]) == seal.not_valid_before_utc
    assert dt.datetime.fromisoformat(body["not_after"]) == seal.not_valid_after_utc
    assert body["sha1"] == seal.fingerprint(hashes.SHA1()).hex()
    assert body["sha256"] == seal.fingerprint(hashes.SHA256()).hex()
    assert body["key_usage"] == ["digital_signature", "content_commitment"]
    assert x509.load_pem_x509_certificate(body["pem"].encode()) == seal

    signer, _ = make_certificate("Nguyễn Văn Ánh")
    der = base64.b64encode(signer.public_bytes(serialization.Encoding.DER)).decode()
    uploaded_der = await api.http.post(
        f"/v1/agencies/{code}/certificates", json={"kind": "signer", "certificate": der}, headers=await api.admin()
    )
    assert uploaded_der.status_code == 201, uploaded_der.text
    assert uploaded_der.json()["kind"] == "signer"
    assert uploaded_der.json()["sha256"] == signer.fingerprint(hashes.SHA256()).hex()
    assert uploaded_der.json()["subject"] == signer.subject.rfc4514_string()

    seal_der = base64.b64encode(seal.public_bytes(serialization.Encoding.DER)).decode()
    for kind, text in [("seal", pem), ("signer", seal_der)]:
        again = await api.http.post(
            f"/v1/agencies/{code}/certificates", json={"kind": kind, "certificate": text}, headers=await api.admin()
        )
        assert_problem(again, 409, "certificate_exists")

    listed = await api.http.get(f"/v1/agencies/{code}/certificates", headers=await api.admin())
    assert listed.status_code == 200
    assert [c["sha256"] for c in listed.json()] == [body["sha256"], uploaded_der.json()["sha256"]]
    actions = [h["action"] for h in await history_of(api, code)]
    assert actions == ["created", "certificate_added", "certificate_added"]


async def test_what_is_not_a_certificate_is_refused(api: Api) -> None:
    code = (await api.create_agency())["code"]
    _, key = make_certificate("Khóa riêng")
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    for garbage in [
        "hello",
        private_pem,
        base64.b64encode(os.urandom(600)).decode(),
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    ]:
        response = await api.http.post(
            f"/v1/agencies/{code}/certificates",
            json={"kind": "seal", "certificate": garbage},
            headers=await api.admin(),
        )
        assert_problem(response, 422, "certificate_invalid")
    assert (await api.http.get(f"/v1/agencies/{code}/certificates", headers=await api.admin())).json() == []
    assert [h["action"] for h in await history_of(api, code)] == ["created"]


async def test_certificate_is_deleted_once(api: Api) -> None:
    code = (await api.create_agency())["code"]
    cert, _ = make_certificate("Văn thư Sở")
    certificate_id = await upload_certificate(api, code, cert)
    other_code = (await api.create_agency())["code"]
    wrong_agency = await api.http.delete(
        f"/v1/agencies/{other_code}/certificates/{certificate_id}", headers=await api.admin()
    )
    assert_problem(wrong_agency, 404, "certificate_not_found")

    deleted = await api.http.delete(f"/v1/agencies/{code}/certificates/{certificate_id}", headers=await api.admin())
    assert deleted.status_code == 204
    assert (await api.http.get(f"/v1/agencies/{code}/certificates", headers=await api.admin())).json() == []
    again = await api.http.delete(f"/v1/agencies/{code}/certificates/{certificate_id}", headers=await api.admin())
    assert_problem(again, 404, "certificate_not_found")
    assert [h["action"] for h in await history_of(api, code)][-2:] == ["certificate_added", "certificate_removed"]
    # once removed, the same certificate may be registered again
    assert await upload_certificate(api, code, cert) != certificate_id


async def test_agencies_list_certificates_but_only_the_admin_changes_them(api: Api) -> None:
    agency = await api.agency_client()
    cert, _ = make_certificate("Sở Thử")
    certificate_id = await upload_certificate(api, agency.agency_code, cert)
    other, _ = make_certificate("Sở Giả")
    refused = await api.http.post(
        f"/v1/agencies/{agency.agency_code}/certificates",
        json={"kind": "seal", "certificate": other.public_bytes(serialization.Encoding.PEM).decode()},
        headers=agency.auth,
    )
    assert_problem(refused, 403, "forbidden")
    removal = await api.http.delete(
        f"/v1/agencies/{agency.agency_code}/certificates/{certificate_id}", headers=agency.auth
    )
    assert_problem(removal, 403, "forbidden")

    reader = await api.agency_client()
    listed = await api.http.get(f"/v1/agencies/{agency.agency_code}/certificates", headers=reader.auth)
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()] == [certificate_id]


# --- API clients -----------------------------------------------------------------------------


async def test_several_clients_per_agency_with_their_own_scopes(api: Api) -> None:
    code = (await api.create_agency())["code"]
    sender = await api.agency_client(code, scopes=[Scope.SEND])
    receiver = await api.agency_client(code, scopes=[Scope.RECEIVE, Scope.SEARCH])
    full = await api.agency_client(code)
    for client, scopes in [
        (sender, [Scope.SEND]),
        (receiver, [Scope.RECEIVE, Scope.SEARCH]),
        (full, list(Scope.AGENCY_DEFAULT)),
    ]:
        token = await api.token(client.client_id, client.client_secret)
        assert token.status_code == 200, token.text
        assert sorted(token.json()["scope"].split()) == sorted(scopes)
        assert token.json()["agency_code"] == code

    listed = await api.http.get(f"/v1/agencies/{code}/clients", headers=await api.admin())
    assert [c["client_id"] for c in listed.json()] == [sender.client_id, receiver.client_id, full.client_id]
    assert all("client_secret" not in c for c in listed.json())
    assert_problem(await api.http.get("/v1/inbox", headers=sender.auth), 403, "forbidden")
    assert (await api.http.get("/v1/inbox", headers=receiver.auth)).status_code == 200


async def test_rotation_with_overlap_keeps_the_old_secret_working(api: Api) -> None:
    client = await api.agency_client()
    before = dt.datetime.now(dt.UTC)
    rotated = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 3600}, headers=await api.admin()
    )
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["client_id"] == client.client_id
    assert body["client_secret"] != client.client_secret
    expires = dt.datetime.fromisoformat(body["previous_secrets_expire_at"])
    assert before + dt.timedelta(seconds=3590) <= expires <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3610)

    new = await api.token(client.client_id, body["client_secret"])
    old = await api.token(client.client_id, client.client_secret)
    assert new.status_code == 200, new.text
    assert old.status_code == 200, old.text


async def test_rotation_without_overlap_refuses_the_old_secret_at_once(api: Api) -> None:
    client = await api.agency_client()
    rotated = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 0}, headers=await api.admin()
    )
    assert rotated.status_code == 200, rotated.text
    assert_problem(await api.token(client.client_id, client.client_secret), 401, "invalid_client")
    new = await api.token(client.client_id, rotated.json()["client_secret"])
    assert new.status_code == 200, new.text

    again = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 0}, headers=await api.admin()
    )
    assert again.status_code == 200
    assert_problem(await api.token(client.client_id, rotated.json()["client_secret"]), 401, "invalid_client")
    assert (await api.token(client.client_id, again.json()["client_secret"])).status_code == 200

    for overlap in [-1, 30 * 86400 + 1]:
        bad = await api.http.post(
            f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": overlap}, headers=await api.admin()
        )
        assert_problem(bad, 422, "validation_failed")
    assert (await api.token(client.client_id, again.json()["client_secret"])).status_code == 200


async def test_revoked_client_gets_no_token(api: Api) -> None:
    client = await api.agency_client()
    sibling = await api.agency_client(client.agency_code)
    revoked = await api.http.post(f"/v1/clients/{client.client_id}/revoke", headers=await api.admin())
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_problem(await api.token(client.client_id, client.client_secret), 401, "invalid_client")
    rotate = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 0}, headers=await api.admin()
    )
    assert_problem(rotate, 404, "client_not_found")
    assert_problem(await api.token(client.client_id, client.client_secret), 401, "invalid_client")
    assert (await api.token(sibling.client_id, sibling.client_secret)).status_code == 200
    shown = await api.http.get(f"/v1/clients/{client.client_id}", headers=await api.admin())
    assert shown.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_clients_are_visible_to_their_agency_and_changed_by_the_admin_only(api: Api) -> None:
    client = await api.agency_client()
    sibling = await api.agency_client(client.agency_code)
    outsider = await api.agency_client()

    for caller in [client, sibling]:
        shown = await api.http.get(f"/v1/clients/{client.client_id}", headers=caller.auth)
        assert shown.status_code == 200, shown.text
        assert shown.json()["client_id"] == client.client_id
        assert shown.json()["agency_code"] == client.agency_code
        assert "client_secret" not in shown.json()
    assert_problem(
        await api.http.get(f"/v1/clients/{client.client_id}", headers=outsider.auth), 404, "client_not_found"
    )

    for caller in [client, outsider]:
        rotate = await api.http.post(
            f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 0}, headers=caller.auth
        )
        assert_problem(rotate, 403, "forbidden")
        revoke = await api.http.post(f"/v1/clients/{client.client_id}/revoke", headers=caller.auth)
        assert_problem(revoke, 403, "forbidden")
    assert (await api.token(client.client_id, client.client_secret)).status_code == 200
    shown = await api.http.get(f"/v1/clients/{client.client_id}", headers=await api.admin())
    assert shown.json()["revoked_at"] is None


# --- import and export -----------------------------------------------------------------------


async def test_csv_import_of_a_tree_then_again_then_modified(api: Api) -> None:
    await add_level(api, "village", 50)
    province, district, commune, village, department = fresh_codes(5)
    rows = [  # children before their parents
        {"code": village, "name": "Thôn Đông", "level": "village", "parent_code": commune},
        {
            "code": commune,
            "new_code": "H40.1.1",
            "name": "Ủy ban nhân dân xã Thử",
            "level": "commune",
            "parent_code": district,
        },
        {"code": district, "name": "Ủy ban nhân dân huyện Thử", "level": "district", "parent_code": province},
        {"code": department, "name": "Sở Tài chính", "level": "department", "parent_code": province, "phone": "0238 1"},
        {
            "code": province,
            "new_code": "H40",
            "name": unicodedata.normalize("NFD", "Ủy ban nhân dân tỉnh Thử"),
            "level": "province",
        },
    ]
    first = await import_file(api, to_csv(rows))
    assert first.status_code == 200, first.text
    report = first.json()
    assert report["dry_run"] is False and report["total"] == 5
    assert sorted(report["created"]) == sorted([province, district, commune, village, department])
    assert report["updated"] == [] and report["unchanged"] == 0
    assert await codes_of(api, subtree=province) == sorted([district, commune, village, department])
    assert (await get_agency(api, village))["parent_code"] == commune
    assert (await get_agency(api, "H40"))["name"] == "Ủy ban nhân dân tỉnh Thử"
    assert (await get_agency(api, commune))["new_code"] == "H40.1.1"

    second = await import_file(api, to_csv(rows))
    assert second.status_code == 200, second.text
    assert second.json()["created"] == [] and second.json()["updated"] == []
    assert second.json()["unchanged"] == 5

    rows[1]["parent_code"] = province  # the commune moves up
    rows[3]["phone"] = "0238 3 999 999"
    rows[4]["name"] = "Ủy ban nhân dân tỉnh Thử Mới"
    rows[4]["email"] = "ubnd@thu.gov.vn"
    third = await import_file(api, to_csv(rows))
    assert third.status_code == 200, third.text
    body = third.json()
    assert body["created"] == [] and body["unchanged"] == 2
    assert sorted((u["code"], u["changed"]) for u in body["updated"]) == sorted(
        [(commune, ["parent_code"]), (department, ["phone"]), (province, ["email", "name"])]
    )
    assert (await get_agency(api, commune))["parent_code"] == province
    assert (await get_agency(api, department))["phone"] == "0238 3 999 999"
    assert (await get_agency(api, province))["name"] == "Ủy ban nhân dân tỉnh Thử Mới"
    assert await codes_of(api, subtree=district) == []
    entry = (await history_of(api, commune))[-1]
    assert entry["action"] == "imported" and entry["changes"] == {"parent_code": [district, province]}


async def test_malformed_imports_write_nothing(api: Api) -> None:
    existing = (await api.create_agency(level="province", new_code="H41"))["code"]
    good, good2, other = fresh_codes(3)
    unknown_parent = random_code("Z")
    cases: list[tuple[str, list[dict[str, str]], set[tuple[int, str]]]] = [
        ("bad code", [row(good), row("00.00.00.H41"), row(good2)], {(2, "code")}),
        ("unknown parent", [row(good), row(good2, parent_code=unknown_parent)], {(2, "parent_code")}),
        (
            "cycle",
            [row(good, parent_code=existing), row(good2, parent_code=other), row(other, parent_code=good2)],
            {(2, "parent_code"), (3, "parent_code")},
        ),
        ("duplicate code", [row(good), row(good2), row(good, name="Trùng")], {(3, "code")}),
        ("unknown level", [row(good), row(good2, level="hamlet")], {(2, "level")}),
        ("blank name", [row(good), row(good2, name="  ")], {(2, "name")}),
        ("new_code taken", [row(good, new_code="H41"), row(good2)], {(1, "new_code")}),
        ("new_code twice", [row(good, new_code="H42"), row(good2, new_code="H42")], {(2, "new_code")}),
    ]
    for name, rows, expected in cases:
        for dry_run in (False, True):
            response = await import_file(api, to_csv(rows), dry_run=dry_run)
            body = assert_problem(response, 422, "import_invalid")
            assert {(e["row"], e["field"]) for e in body["errors"]} == expected, (name, body["errors"])
        missing = await api.http.get(f"/v1/agencies/{good}", headers=await api.admin())
        assert_problem(missing, 404, "agency_not_found")
        assert await codes_of(api) == [existing], name

    not_csv = await import_file(api, "tên,cấp\nx,y\n")
    assert_problem(not_csv, 422, "import_invalid")
    not_json = await import_file(api, "{", fmt="json")
    assert_problem(not_json, 422, "import_invalid")
    assert await codes_of(api) == [existing]


async def test_json_import_accepts_a_list_or_an_object(api: Api) -> None:
    a, b, c = fresh_codes(3)
    as_list = [{"code": a, "name": "Sở A", "level": "department"}, {"code": b, "name": "Sở B", "level": "department"}]
    response = await import_file(api, json.dumps(as_list, ensure_ascii=False), fmt="json")
    assert response.status_code == 200, response.text
    assert sorted(response.json()["created"]) == sorted([a, b])

    as_object = {"agencies": [*as_list, {"code": c, "name": "Phòng C", "level": "other", "parent_code": a}]}
    response = await import_file(api, json.dumps(as_object, ensure_ascii=False), fmt="json")
    assert response.status_code == 200, response.text
    assert response.json()["created"] == [c] and response.json()["unchanged"] == 2
    assert (await get_agency(api, c))["parent_code"] == a

    for body in ['{"items": []}', '"text"', "[1, 2]"]:
        assert_problem(await import_file(api, body, fmt="json"), 422, "import_invalid")
    assert await codes_of(api) == sorted([a, b, c])


async def test_dry_run_reports_and_writes_nothing(api: Api) -> None:
    parent, child = fresh_codes(2)
    rows = [
        {"code": child, "name": "Phòng Thử", "level": "other", "parent_code": parent},
        {"code": parent, "name": "Sở Thử", "level": "department"},
    ]
    dry = await import_file(api, to_csv(rows), dry_run=True)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert sorted(dry.json()["created"]) == sorted([parent, child])
    assert await codes_of(api) == []

    assert (await import_file(api, to_csv(rows))).status_code == 200
    before = await get_agency(api, parent)
    history = await history_of(api, parent)
    rows[1]["name"] = "Sở Thử Đổi Tên"
    dry = await import_file(api, to_csv(rows), dry_run=True)
    assert dry.status_code == 200, dry.text
    assert dry.json()["updated"] == [{"code": parent, "changed": ["name"]}]
    assert dry.json()["unchanged"] == 1
    assert await get_agency(api, parent) == before
    assert await history_of(api, parent) == history


async def test_export_then_reimport_changes_nothing(api: Api) -> None:
    province = await api.create_agency(
        level="province",
        new_code="H40",
        name=unicodedata.normalize("NFD", "Ủy ban nhân dân tỉnh Nghệ An"),
        short_name="UBND tỉnh",
        email="VanThu@NgheAn.gov.vn",
        website="https://nghean.gov.vn",
        phone="0238 3 844 444",
        address="Số 3 Trường Thi, thành phố Vinh",
    )
    district = await api.create_agency(level="district", parent_code=province["code"])
    commune = await api.create_agency(level="commune", parent_code=district["code"], new_code="H40.1.2")
    await set_status(api, district["code"], "retired", successor=province["code"])
    await set_status(api, commune["code"], "suspended")

    exported = await api.http.get("/v1/agencies/export", params={"format": "json"}, headers=await api.admin())
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/json")
    agencies = exported.json()["agencies"]
    assert [a["code"] for a in agencies] == [province["code"], district["code"], commune["code"]]
    assert agencies[0]["name"] == "Ủy ban nhân dân tỉnh Nghệ An" and agencies[0]["new_code"] == "H40"
    assert (agencies[1]["status"], agencies[1]["successor_code"]) == ("retired", province["code"])
    assert agencies[2]["status"] == "suspended"

    again = await import_file(api, exported.text, fmt="json")
    assert again.status_code == 200, again.text
    assert again.json() == {"dry_run": False, "total": 3, "created": [], "updated": [], "unchanged": 3}

    as_csv = await api.http.get("/v1/agencies/export", params={"format": "csv"}, headers=await api.admin())
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0] == EXPORT_HEADER
    assert [r["code"] for r in csv.DictReader(io.StringIO(as_csv.text))] == [a["code"] for a in agencies]
    again = await import_file(api, as_csv.text)
    assert again.status_code == 200, again.text
    assert again.json()["unchanged"] == 3 and again.json()["updated"] == []
    assert (await get_agency(api, district["code"]))["status"] == "retired"


async def test_csv_export_reimport_keeps_a_multi_line_address(api: Api) -> None:
    agency = await api.create_agency(address="Số 16 Trường Thi\nthành phố Vinh, Nghệ An")
    exported = await api.http.get("/v1/agencies/export", params={"format": "csv"}, headers=await api.admin())
    response = await import_file(api, exported.text)
    assert response.status_code == 200, response.text
    assert response.json()["updated"] == [] and response.json()["unchanged"] == 1
    assert (await get_agency(api, agency["code"]))["address"] == "Số 16 Trường Thi\nthành phố Vinh, Nghệ An"


async def test_csv_cells_with_only_spaces_mean_not_given(api: Api) -> None:
    code = random_code()
    text = f"code,new_code,name,short_name,level,parent_code,email\n{code}, ,Sở Thử,  ,department, , \n"
    response = await import_file(api, text)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == [code]
    created = await get_agency(api, code)
    assert created["new_code"] is None and created["short_name"] is None and created["email"] is None


async def test_only_the_admin_imports_and_exports(api: Api) -> None:
    agency = await api.agency_client()
    text = to_csv([{"code": random_code(), "name": "Sở Giả", "level": "department"}])
    for dry_run in (False, True):
        response = await import_file(api, text, headers=agency.auth, dry_run=dry_run)
        body = assert_problem(response, 403, "forbidden")
        assert body["required_scope"] == Scope.REGISTRY_ADMIN
    for fmt in ("csv", "json"):
        exported = await api.http.get("/v1/agencies/export", params={"format": fmt}, headers=agency.auth)
        assert_problem(exported, 403, "forbidden")
    assert await codes_of(api) == [agency.agency_code]


# --- who may change what ---------------------------------------------------------------------


async def test_an_agency_token_gets_403_on_every_write(api: Api) -> None:
    agency = await api.agency_client()
    other = await api.agency_client()
    code, other_code = agency.agency_code, other.agency_code
    await create_group(api, "kept", members=[other_code])
    cert, _ = make_certificate("Sở Thử")
    certificate_id = await upload_certificate(api, code, cert)
    second, _ = make_certificate("Sở Khác")
    before = await snapshot(api, [code, other_code])

    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/agencies", {"json": {"code": random_code(), "name": "Sở Giả", "level": "department"}}),
        ("PATCH", f"/v1/agencies/{code}", {"json": {"name": "Tự đổi tên"}}),
        ("PATCH", f"/v1/agencies/{other_code}", {"json": {"parent_code": code}}),
        ("POST", f"/v1/agencies/{other_code}/status", {"json": {"status": "suspended", "reason": "x"}}),
        ("POST", f"/v1/agencies/{code}/status", {"json": {"status": "retired", "successor_code": other_code}}),
        ("POST", "/v1/agency-levels", {"json": {"code": "hamlet", "name": "Xóm"}}),
        ("POST", "/v1/groups", {"json": {"name": "mine", "title": "Của tôi", "members": [code]}}),
        ("PUT", "/v1/groups/kept", {"json": {"title": "Đổi", "members": [code]}}),
        ("DELETE", "/v1/groups/kept", {}),
        (
            "POST",
            f"/v1/agencies/{code}/certificates",
            {"json": {"kind": "seal", "certificate": second.public_bytes(serialization.Encoding.PEM).decode()}},
        ),
        ("DELETE", f"/v1/agencies/{code}/certificates/{certificate_id}", {}),
        ("POST", "/v1/agencies/import", {"content": to_csv([{"code": random_code(), "name": "X", "level": "other"}])}),
        ("GET", "/v1/agencies/export", {"params": {"format": "json"}}),
        ("POST", f"/v1/agencies/{code}/clients", {"json": {"name": "Hệ thống phụ"}}),
        ("POST", f"/v1/clients/{agency.client_id}/rotate", {"json": {"overlap_seconds": 0}}),
        ("POST", f"/v1/clients/{other.client_id}/rotate", {"json": {"overlap_seconds": 0}}),
        ("POST", f"/v1/clients/{other.client_id}/revoke", {}),
        ("PUT", f"/v1/agencies/{other_code}/endpoint", {"json": {"mode": "amqp", "amqp_queue": "steal"}}),
    ]
    for method, path, kwargs in writes:
        response = await api.http.request(method, path, headers=agency.auth, **kwargs)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "forbidden", (method, path)

    assert await snapshot(api, [code, other_code]) == before
    assert (await api.token(agency.client_id, agency.client_secret)).status_code == 200
    assert (await api.token(other.client_id, other.client_secret)).status_code == 200


# --- helpers ---------------------------------------------------------------------------------


def random_word(length: int = 8) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length))


def fresh_codes(count: int) -> list[str]:
    """``count`` distinct random agency codes."""
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(random_code())
    return list(codes)


async def codes_of(api: Api, **params: Any) -> list[str]:
    response = await api.http.get("/v1/agencies", params={"limit": 500, **params}, headers=await api.admin())
    assert response.status_code == 200, response.text
    return [a["code"] for a in response.json()["items"]]


async def get_agency(api: Api, code: str) -> dict[str, Any]:
    response = await api.http.get(f"/v1/agencies/{code}", headers=await api.admin())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def history_of(api: Api, code: str) -> list[dict[str, Any]]:
    response = await api.http.get(f"/v1/agencies/{code}/history", headers=await api.admin())
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def set_status(
    api: Api, code: str, status: str, *, reason: str | None = None, successor: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "reason": reason}
    if successor:
        body["successor_code"] = successor
    response = await api.http.post(f"/v1/agencies/{code}/status", json=body, headers=await api.admin())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def add_level(api: Api, code: str, rank: int) -> None:
    response = await api.http.post(
        "/v1/agency-levels", json={"code": code, "name": f"Cấp {code}", "rank": rank}, headers=await api.admin()
    )
    assert response.status_code == 201, response.text


class Tree:
    """province → district → commune → village → hamlet, plus district2 → commune2 and a department."""

    def __init__(self, **codes: str) -> None:
        self.__dict__.update(codes)

    province: str
    district: str
    commune: str
    village: str
    hamlet: str
    district2: str
    commune2: str
    department: str


async def build_tree(api: Api) -> Tree:
    async def make(level: str, parent: str | None) -> str:
        return str((await api.create_agency(level=level, parent_code=parent))["code"])

    province = await make("province", None)
    district = await make("district", province)
    commune = await make("commune", district)
    village = await make("village", commune)
    hamlet = await make("other", village)
    district2 = await make("district", province)
    commune2 = await make("commune", district2)
    department = await make("department", province)
    return Tree(
        province=province,
        district=district,
        commune=commune,
        village=village,
        hamlet=hamlet,
        district2=district2,
        commune2=commune2,
        department=department,
    )


def shape(node: dict[str, Any]) -> tuple[str, list[Any]]:
    """A tree node as (code, [children's shapes]) in the order given."""
    return node["code"], [shape(child) for child in node["children"]]


async def create_group(
    api: Api,
    name: str,
    *,
    members: list[str] | None = None,
    rules: list[dict[str, str]] | None = None,
    title: str = "Nhóm thử",
) -> dict[str, Any]:
    body = {"name": name, "title": title, "members": members or [], "rules": rules or []}
    response = await api.http.post("/v1/groups", json=body, headers=await api.admin())
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def members_of(api: Api, name: str) -> dict[str, Any]:
    response = await api.http.get(f"/v1/groups/{name}/members", headers=await api.admin())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["count"] == len(result["members"])
    return result


async def member_codes(api: Api, name: str) -> list[str]:
    return sorted(m["code"] for m in (await members_of(api, name))["members"])


def make_certificate(common_name: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed RSA 2048 certificate for signing (digital signature, content commitment)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tỉnh Nghệ An"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


async def upload_certificate(api: Api, code: str, cert: x509.Certificate, kind: str = "seal") -> str:
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    response = await api.http.post(
        f"/v1/agencies/{code}/certificates", json={"kind": kind, "certificate": pem}, headers=await api.admin()
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def row(code: str, **fields: str) -> dict[str, str]:
    return {"code": code, "name": f"Đơn vị {code}", "level": "department", **fields}


def to_csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_HEADER.split(",")[:10])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


async def import_file(
    api: Api, text: str, *, fmt: str = "csv", dry_run: bool = False, headers: dict[str, str] | None = None
) -> httpx.Response:
    params: dict[str, str] = {"format": fmt}
    if dry_run:
        params["dry_run"] = "true"
    return await api.http.post(
        "/v1/agencies/import", params=params, content=text.encode(), headers=headers or await api.admin()
    )


async def snapshot(api: Api, codes: list[str]) -> dict[str, Any]:
    """Everything the authorization test's refused writes could have changed."""
    admin = await api.admin()

    async def read(path: str, **params: Any) -> Any:
        response = await api.http.get(path, params=params, headers=admin)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    state: dict[str, Any] = {
        "agencies": await read("/v1/agencies", limit=500),
        "levels": await read("/v1/agency-levels"),
        "groups": await read("/v1/groups"),
    }
    for code in codes:
        state[code] = {
            "history": await read(f"/v1/agencies/{code}/history"),
            "endpoint": await read(f"/v1/agencies/{code}/endpoint"),
            "certificates": await read(f"/v1/agencies/{code}/certificates"),
            "clients": await read(f"/v1/agencies/{code}/clients"),
        }
    return state
