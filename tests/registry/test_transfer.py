"""Bulk import (CSV and JSON, dry run) and export of the directory, and their round trip."""

from __future__ import annotations

import csv
import io
import json
import unicodedata

import httpx

from shared.auth import Scope
from tests.helpers import (
    EXPORT_HEADER,
    Api,
    add_level,
    agency_codes,
    assert_problem,
    get_agency,
    history_of,
    random_code,
    set_status,
    to_csv,
)


def fresh_codes(count: int) -> list[str]:
    """``count`` distinct random agency codes."""
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(random_code())
    return list(codes)


def row(code: str, **fields: str) -> dict[str, str]:
    return {"code": code, "name": f"Đơn vị {code}", "level": "department", **fields}


async def import_file(
    api: Api, text: str, *, fmt: str = "csv", dry_run: bool = False, headers: dict[str, str] | None = None
) -> httpx.Response:
    params: dict[str, str] = {"format": fmt}
    if dry_run:
        params["dry_run"] = "true"
    return await api.http.post(
        "/v1/agencies/import", params=params, content=text.encode(), headers=headers or await api.admin()
    )


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
    assert await agency_codes(api, subtree=province) == sorted([district, commune, village, department])
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
    assert await agency_codes(api, subtree=district) == []
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
        assert await agency_codes(api) == [existing], name

    not_csv = await import_file(api, "tên,cấp\nx,y\n")
    assert_problem(not_csv, 422, "import_invalid")
    not_json = await import_file(api, "{", fmt="json")
    assert_problem(not_json, 422, "import_invalid")
    assert await agency_codes(api) == [existing]


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
    assert await agency_codes(api) == sorted([a, b, c])


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
    assert await agency_codes(api) == []

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
    assert await agency_codes(api) == [agency.agency_code]
